//! The `kafka` sink.

mod config;
mod producers;
mod task;

pub use config::{Compression, KafkaSinkConfig, MessageKey};
pub use task::KafkaSinkTask;
