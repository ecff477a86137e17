//! The `ble` source: a passive scan of Bluetooth LE advertisements.

mod advert;
mod config;
mod scan;

pub use config::{BleSourceConfig, DeviceConfig};
pub use scan::BleSourceTask;
