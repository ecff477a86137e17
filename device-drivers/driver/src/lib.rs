//! The source contract: how eddy reads devices and peers, whatever their
//! protocol.
//!
//! A source kind is a crate beside this one (`sim`, `file`, `tcp`, and one
//! per protocol family). Its settings type is what the pipeline file's
//! `[sources.NAME.KIND]` table deserializes into; it implements [`Kind`]
//! (the table's name) and [`SourceConfig`]: [`SourceConfig::validate`]
//! checks the settings without touching the outside world (`eddy check`),
//! [`SourceConfig::open`] makes the source (`eddy run`). A source comes in
//! one of two shapes ([`Source`]):
//!
//! - a [`Driver`] the pipeline thread polls, which answers at once with the
//!   records that are ready ([`Poll::Ready`]), says when to ask again
//!   ([`Poll::WaitUntil`]) or that its input has ended ([`Poll::Ended`]):
//!   files and simulations;
//! - a [`SourceTask`] that does its I/O on the host's async runtime and
//!   hands records through a bounded [`channel`] to the pipeline thread,
//!   ringing a [`Doorbell`] so they are processed at once. When the pipeline
//!   lags, the channel fills and the task waits: back-pressure, never a
//!   silent drop.
//!
//! Errors say what the host should do ([`DriverError`]): settings that
//! cannot work are fatal; a peer that is unreachable, times out or goes
//! away is transient, and the host retries with backoff and shows the
//! source as `retrying`. A component never loops on errors itself.
//!
//! A driver whose input can be read again (a file, a Kafka partition)
//! reports its [`Driver::position`] and can [`Driver::seek`] back to it; the
//! host stores positions in its checkpoints and rewinds after a crash.
//!
//! ```
//! use eddy_driver::{Driver, DriverError, Poll, Record};
//!
//! /// Three readings, then the end.
//! struct Three(i64);
//!
//! impl Driver for Three {
//!     fn poll(&mut self, out: &mut Vec<Record>, _max: usize) -> Result<Poll, DriverError> {
//!         if self.0 == 3 {
//!             return Ok(Poll::Ended);
//!         }
//!         out.push(Record::new("probe", self.0).with("value", 1.0));
//!         self.0 += 1;
//!         Ok(Poll::Ready)
//!     }
//! }
//! ```

#![warn(missing_docs, unreachable_pub)]

mod config;
mod doorbell;
mod driver;
mod error;
mod schedule;
mod services;
mod task;
mod writes;

pub use config::{Context, Kind, Source, SourceConfig, Watermarks};
pub use doorbell::Doorbell;
pub use driver::{Acknowledgement, Driver, Poll, Rejected};
pub use eddy_abi::{Record, Value};
pub use error::{DriverError, Invalid, Unavailable};
pub use schedule::Schedule;
pub use serde_spanned::Spanned;
pub use services::Services;
pub use task::{
    Ack, Batch, BoxFuture, ChannelDriver, SourceEvents, SourceOutput, SourceTask, Starter, channel,
};
pub use writes::{DeviceWriters, PointWrite, WriteRefused, WriteValue};
