//! Bluetooth LE sensors for eddy: what battery-powered sensors in a rack
//! send, decoded without I/O.
//!
//! - [`bthome`]: BTHome v2 service data (UUID 0xFCD2), the open format of
//!   Shelly BLU and many DIY sensors;
//! - [`ruuvi`]: Ruuvi RAWv2 manufacturer data (company 0x0499, format 5);
//! - [`ess`]: values of the Environmental Sensing service's characteristics
//!   (temperature 0x2A6E, humidity 0x2A6F, pressure 0x2A6D), as read or
//!   notified over GATT.
//!
//! Each decoder takes the bytes as they came over the air and gives
//! [`Reading`]s (a field name and a value in the unit the name says), or a
//! [`DecodeError`] saying why the bytes are not what they claim. A value
//! the sensor marks as unknown is left out rather than given as a number.
//! [`BleSourceConfig`] is the `ble` source: a passive scan through
//! btleplug (BlueZ on Linux) whose advertisements go through these
//! decoders, filtered by address and name, repeats dropped by packet
//! counter; devices marked `gatt` are connected to and their
//! Environmental Sensing characteristics subscribed to (or read at an
//! interval when they cannot notify), the connection made again when it
//! drops.
//!
//! ```toml
//! [sources.racks.ble]
//! name_prefixes = ["SBHT", "Ruuvi"]
//! devices = [
//!   { address = "A4:C1:38:0B:5E:01", name = "rack-3-top" },
//!   { address = "7C:C6:B6:61:E4:02", name = "rack-4-top", bindkey = "231d39c1d7cc1ab1aee224cd096db932" },
//!   { address = "C0:FF:EE:10:20:30", name = "rack-5-ess", gatt = true },
//! ]
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod bthome;
pub mod ess;
mod reading;
pub mod ruuvi;
mod source;

pub use reading::{DecodeError, Reading};
pub use source::{BleSourceConfig, BleSourceTask, DeviceConfig};
