//! The `modbus` source: devices on one TCP or RTU connection, polled at
//! intervals.

mod config;
mod link;
mod record;
mod task;

pub use config::{DeviceConfig, ModbusSourceConfig, Parity, RtuConfig};
pub use task::ModbusSourceTask;
