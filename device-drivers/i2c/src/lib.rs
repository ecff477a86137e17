//! I2C sensors for eddy: drivers generic over embedded-hal 1.0's
//! [`I2c`](embedded_hal::i2c::I2c) and [`DelayNs`](embedded_hal::delay::DelayNs),
//! so that the same code runs on a Linux gateway's `/dev/i2c-N` and against
//! scripted buses in tests.
//!
//! - [`Sht3x`]: Sensirion SHT3x temperature and humidity, single-shot,
//!   every word CRC-8 checked;
//! - [`Bme280`]: Bosch BME280 temperature, humidity and pressure, forced
//!   mode, with the datasheet's compensation.
//!
//! A measurement is a list of [`Reading`]s; a NAK, a bus error or a CRC
//! mismatch is a [`SensorError`] (a counted fault for the source, never a
//! record). [`I2cSourceConfig`] is the `i2c` source: the sensors of a Linux
//! bus (`/dev/i2c-N`, through linux-embedded-hal) measured at intervals on
//! a blocking thread, never on the async workers.
//!
//! ```toml
//! [sources.rack.i2c]
//! bus = "/dev/i2c-1"
//! sensors = [
//!   { name = "rack-3-top", model = "sht3x", poll_interval_ms = 5000 },
//!   { name = "rack-3-inlet", model = "bme280", address = 0x77 },
//! ]
//! ```

#![warn(missing_docs, unreachable_pub)]

mod bme280;
mod crc;
mod error;
mod sht3x;
mod source;

pub use bme280::{Bme280, Calibration};
pub use crc::crc8;
pub use error::{Reading, SensorError};
pub use sht3x::Sht3x;
pub use source::{I2cSourceConfig, I2cSourceTask, SensorConfig, SensorModel};
