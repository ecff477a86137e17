//! The `mqtt` source: subscriptions whose messages become records.

mod config;
mod task;
mod topics;

pub use config::MqttSourceConfig;
pub use task::MqttSourceTask;
