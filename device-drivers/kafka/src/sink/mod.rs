//! The `kafka` sink.

mod config;
mod task;

pub use config::{Compression, KafkaSinkConfig, MessageKey};
pub use task::KafkaSinkTask;
