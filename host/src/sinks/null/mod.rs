//! The `null` sink: records counted and dropped.

mod config;
mod sink;

pub use config::NullConfig;
pub use sink::NullSink;
