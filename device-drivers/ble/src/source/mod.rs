//! The `ble` source: a passive scan of Bluetooth LE advertisements, and
//! GATT connections to the devices that serve Environmental Sensing.

mod advert;
mod config;
mod gatt;
mod scan;

pub use config::{BleSourceConfig, DeviceConfig};
pub use scan::BleSourceTask;
