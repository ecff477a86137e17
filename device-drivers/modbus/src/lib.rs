//! Modbus for eddy: what a device's points are and how to read them, with
//! no I/O, in the words of EdgeX device-modbus.
//!
//! - [`Point`]: one value of a device: its table (`primaryTable`), its
//!   0-based `startingAddress`, its `rawType`, word and byte order for
//!   32-bit types (`isWordSwap`, `isByteSwap`), a bit within a register,
//!   `scale` and `offset`; [`Point::decode`] turns the registers or bits
//!   of a response into a [`PointValue`].
//! - [`Profile`]: a device's points, checked as a whole (no two points
//!   share a register, every type has its size).
//! - [`plan`]: the requests that read a profile: points of one table whose
//!   addresses are contiguous share a request, up to a maximum size.
//!
//! The TCP and RTU connections that run these plans, and loading EdgeX and
//! KubeEdge profile files, are not built yet.

#![warn(missing_docs, unreachable_pub)]

mod plan;
mod point;
mod profile;

pub use plan::{Request, plan};
pub use point::{DecodeError, Point, PointValue, RawType, ReadWrite, Table};
pub use profile::{Profile, ProfileError};
