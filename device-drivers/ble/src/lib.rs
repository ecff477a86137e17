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
//! The scanning source that feeds them through btleplug is not built yet.

#![warn(missing_docs, unreachable_pub)]

pub mod bthome;
pub mod ess;
mod reading;
pub mod ruuvi;

pub use reading::{DecodeError, Reading};
