//! What a measurement gives, and why it may give nothing.

use embedded_hal::i2c::ErrorKind;

/// One measured value: a field name with its unit, and the value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The field it becomes in a record, e.g. `temperature_c`.
    pub name: &'static str,
    /// The value in the unit the name says.
    pub value: f64,
}

/// Why a sensor gave no measurement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SensorError {
    /// The bus failed: a NAK (nothing at that address, or busy), arbitration
    /// lost, a bus error.
    #[error("I2C: {0:?}")]
    Bus(ErrorKind),
    /// A word's CRC did not match: the bytes were damaged on the way.
    #[error("CRC mismatch: got 0x{got:02X}, computed 0x{computed:02X}")]
    Crc {
        /// The CRC the sensor sent.
        got: u8,
        /// The CRC of the bytes that came.
        computed: u8,
    },
    /// Something answered, but not this sensor.
    #[error("not a {expected}: chip id 0x{id:02X}")]
    WrongChip {
        /// The sensor expected.
        expected: &'static str,
        /// The id that came.
        id: u8,
    },
}

impl SensorError {
    /// A bus error, by its kind.
    pub(crate) fn bus(e: impl embedded_hal::i2c::Error) -> Self {
        SensorError::Bus(e.kind())
    }
}
