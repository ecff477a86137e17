//! The `mqtt` sink: results published to a broker from the host's durable
//! outbox.

mod config;
mod session;
mod stream;
mod task;

pub use config::MqttSinkConfig;
pub use task::MqttSinkTask;
