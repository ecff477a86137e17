//! The driver trait: how eddy reads devices, whatever their protocol.
//!
//! A driver turns a device's readings into [`Record`]s: a key (the device or
//! point), an event time and named fields. The host polls each source's
//! driver from the pipeline's own thread; a driver answers at once with what
//! is ready, and says when to ask again ([`Poll::WaitUntil`]) or that its
//! input has ended ([`Poll::Ended`], for bounded inputs such as files).
//! A driver whose input can be read again (a file, a Kafka partition)
//! reports its [`Driver::position`] and can [`Driver::seek`] back to it; the
//! host stores positions in its checkpoints and rewinds after a crash.
//! Drivers live in their own crates beside this one (`sim`, and one per
//! protocol family); this crate holds nothing but the contract.
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

use std::time::Instant;

pub use eddy_abi::{Record, Value};

/// A source of records from devices.
pub trait Driver: Send {
    /// Appends at most `max` records that are ready now to `out`, without blocking.
    fn poll(&mut self, out: &mut Vec<Record>, max: usize) -> Result<Poll, DriverError>;

    /// Takes the input read since the last call that could not become a
    /// record (a malformed line, an undecodable payload). The host writes it
    /// to the dead-letter log, so bad input is never silently lost.
    fn take_rejected(&mut self) -> Vec<Rejected> {
        Vec::new()
    }

    /// Where the driver is in its input, as opaque bytes, when it can go
    /// back there with [`Driver::seek`] (a file offset, a Kafka offset).
    /// `None` for live inputs that cannot be read again: the host then keeps
    /// what it read in its ingest journal, if the pipeline asks for one.
    fn position(&self) -> Option<Vec<u8>> {
        None
    }

    /// Goes to a position [`Driver::position`] returned earlier, so that the
    /// next poll reads what followed it. The host does this when it restores
    /// a checkpoint.
    fn seek(&mut self, _position: &[u8]) -> Result<(), DriverError> {
        Err(DriverError::Config(
            "this driver cannot go back to an earlier position".into(),
        ))
    }
}

/// Input a driver could not turn into a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Where it came from, e.g. `readings.csv:17`.
    pub origin: String,
    /// The input as read.
    pub input: String,
    /// Why it was rejected.
    pub reason: String,
}

/// What a driver says after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// More may be ready: poll again soon.
    Ready,
    /// Nothing more before this instant.
    WaitUntil(Instant),
    /// The input has ended; nothing more will come.
    Ended,
}

/// Why a driver could not read.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The driver's configuration cannot work; names what is wrong.
    #[error("invalid driver configuration: {0}")]
    Config(String),
    /// A device could not be read.
    #[error("device {device}: {message}")]
    Device {
        /// The device's name or address.
        device: String,
        /// What went wrong.
        message: String,
    },
}
