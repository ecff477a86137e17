//! The `i2c` source: sensors on a Linux I2C bus, measured at intervals.

mod config;
mod task;

pub use config::{I2cSourceConfig, SensorConfig, SensorModel};
pub use task::I2cSourceTask;
