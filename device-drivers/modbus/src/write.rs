//! Writing points: setpoints and switches, with the same type, scale and
//! swap rules as reading, confirmed by reading the point back.
//!
//! [`PointWriter`] is the small trait the device twin drives setpoints
//! through; a `tokio_modbus` client context implements it, over TCP or
//! RTU alike.

use std::time::Duration;

use eddy_driver::BoxFuture;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::slave::{Slave, SlaveContext};

use crate::{EncodeError, Point, PointValue, RawType, ReadWrite, Table};

/// Why a write did not take.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The point is read-only (`readWrite: R`), or in a read-only table.
    #[error("point `{0}` cannot be written")]
    ReadOnly(String),
    /// The value does not fit the point.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The device answered with a Modbus exception.
    #[error("point `{point}`: exception {code:#04x} ({message})")]
    Exception {
        /// The point.
        point: String,
        /// The exception code.
        code: u8,
        /// What it means.
        message: String,
    },
    /// No answer in time, or the connection failed.
    #[error("point `{point}`: {message}")]
    Unavailable {
        /// The point.
        point: String,
        /// What happened.
        message: String,
    },
    /// The device took the write but reads back something else (it
    /// clamped the value, or another master wrote in between).
    #[error("point `{point}`: wrote {wrote:?}, read back {read:?}")]
    NotConfirmed {
        /// The point.
        point: String,
        /// The registers or bits written.
        wrote: Vec<u16>,
        /// What was read back.
        read: Vec<u16>,
    },
}

/// Writes a point of a device and reads it back.
pub trait PointWriter {
    /// Writes `value` to `point` of unit `unit` and returns the value read
    /// back, which the device has confirmed.
    fn write_point<'a>(
        &'a mut self,
        unit: u8,
        point: &'a Point,
        value: &'a PointValue,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<PointValue, WriteError>>;
}

impl PointWriter for Context {
    fn write_point<'a>(
        &'a mut self,
        unit: u8,
        point: &'a Point,
        value: &'a PointValue,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<PointValue, WriteError>> {
        Box::pin(async move {
            if point.read_write == ReadWrite::R
                || !matches!(point.table, Table::Coils | Table::HoldingRegisters)
            {
                return Err(WriteError::ReadOnly(point.name.clone()));
            }
            // A point that cannot work (a bit past 15, a size that does not
            // fit its type) is refused before anything is sent.
            crate::Profile {
                points: vec![point.clone()],
            }
            .check()
            .map_err(|e| EncodeError {
                point: point.name.clone(),
                reason: e.to_string(),
            })?;
            let words = point.encode_registers(value)?;
            self.set_slave(Slave(unit));
            let name = &point.name;
            let address = point.address;
            let wrote = match point.table {
                Table::Coils => {
                    let on = words[0] != 0;
                    call(name, timeout, self.write_single_coil(address, on)).await?;
                    vec![u16::from(on)]
                }
                _ if point.raw_type == RawType::Bool => {
                    // One bit of a register: the others stay as they are.
                    let mask = 1u16 << point.bit.unwrap_or(0);
                    let current =
                        call(name, timeout, self.read_holding_registers(address, 1)).await?;
                    let word = current.first().copied().unwrap_or(0) & !mask | words[0] & mask;
                    call(name, timeout, self.write_single_register(address, word)).await?;
                    vec![word]
                }
                _ if words.len() == 1 => {
                    call(name, timeout, self.write_single_register(address, words[0])).await?;
                    words
                }
                _ => {
                    call(
                        name,
                        timeout,
                        self.write_multiple_registers(address, &words),
                    )
                    .await?;
                    words
                }
            };
            let count = wrote.len() as u16;
            let read: Vec<u16> = if point.table == Table::Coils {
                call(name, timeout, self.read_coils(address, 1))
                    .await?
                    .into_iter()
                    .take(1)
                    .map(u16::from)
                    .collect()
            } else {
                call(name, timeout, self.read_holding_registers(address, count)).await?
            };
            // A bit of a register: only that bit is confirmed (the others
            // are the device's, and may change meanwhile).
            let mask = if point.table != Table::Coils && point.raw_type == RawType::Bool {
                1u16 << point.bit.unwrap_or(0)
            } else {
                u16::MAX
            };
            let same = read.len() == wrote.len()
                && read.iter().zip(&wrote).all(|(r, w)| r & mask == w & mask);
            if !same {
                return Err(WriteError::NotConfirmed {
                    point: name.clone(),
                    wrote,
                    read,
                });
            }
            let back = if point.table == Table::Coils {
                point.decode_bits(&[read[0] != 0])
            } else {
                point.decode_registers(&read)
            };
            back.map_err(|e| WriteError::Unavailable {
                point: name.clone(),
                message: e.to_string(),
            })
        })
    }
}

/// One request within `timeout`, its errors named for `point`.
async fn call<T>(
    point: &str,
    timeout: Duration,
    request: impl Future<Output = tokio_modbus::Result<T>>,
) -> Result<T, WriteError> {
    match tokio::time::timeout(timeout, request).await {
        Err(_) => Err(WriteError::Unavailable {
            point: point.to_owned(),
            message: format!("no answer within {} ms", timeout.as_millis()),
        }),
        Ok(Err(e)) => Err(WriteError::Unavailable {
            point: point.to_owned(),
            message: e.to_string(),
        }),
        Ok(Ok(Err(exception))) => Err(WriteError::Exception {
            point: point.to_owned(),
            code: u8::from(exception),
            message: exception.to_string(),
        }),
        Ok(Ok(Ok(value))) => Ok(value),
    }
}
