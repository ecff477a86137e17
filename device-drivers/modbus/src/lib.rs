//! Modbus for eddy: what a device's points are and how to read them, with
//! no I/O, in the words of EdgeX device-modbus.
//!
//! - [`Point`]: one value of a device: its table (`primaryTable`), its
//!   0-based `startingAddress`, its `rawType`, word and byte order for
//!   (`isWordSwap`, `isByteSwap`), a bit within a register,
//!   `scale` and `offset`; [`Point::decode`] turns the registers or bits
//!   of a response into a [`PointValue`].
//! - [`Profile`]: a device's points, checked as a whole (no two points
//!   share a register, every type has its size).
//! - [`plan`]: the requests that read a profile: points of one table whose
//!   addresses are contiguous share a request, up to a maximum size.
//!
//! - [`files`]: EdgeX device profiles and KubeEdge devices (with their
//!   models) read as points.
//! - [`ModbusSourceConfig`]: the `modbus` source: devices on one TCP or RTU
//!   connection (tokio-modbus, tokio-serial), each polled at its interval,
//!   faults counted per device.
//! - [`PointWriter`]: writing a point and reading it back.
//!
//! ```toml
//! [sources.room.modbus]
//! tcp = "10.0.0.7:502"
//! timeout_ms = 500
//!
//! [[sources.room.modbus.devices]]
//! name = "ups-1"
//! unit = 1
//! poll_interval_ms = 1000
//! profile = "profiles/ups.yaml"        # EdgeX or KubeEdge
//!
//! [[sources.room.modbus.devices]]
//! name = "crac-1"
//! unit = 2
//! points = [
//!   { name = "supply_temp", primaryTable = "INPUT_REGISTERS", startingAddress = 0, rawType = "Int16", scale = 0.1 },
//!   { name = "fan_on", primaryTable = "COILS", startingAddress = 0, rawType = "Bool" },
//! ]
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod files;
mod plan;
mod point;
mod profile;
mod source;
mod write;

pub use plan::{Request, plan};
pub use point::{DecodeError, EncodeError, Point, PointValue, RawType, ReadWrite, Table};
pub use profile::{Profile, ProfileError};
pub use source::{DeviceConfig, ModbusSourceConfig, ModbusSourceTask, Parity, RtuConfig};
pub use write::{PointWriter, WriteError};
