//! The `kafka` source.

mod config;
mod partitions;
mod task;

pub(crate) use config::check_topic;
pub use config::{KafkaSourceConfig, Start};
pub use task::KafkaSourceTask;
