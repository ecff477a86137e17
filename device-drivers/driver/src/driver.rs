//! Drivers the pipeline thread polls: files, simulations, anything that
//! answers at once.

use std::time::Instant;

use eddy_abi::Record;

use crate::DriverError;

/// A source of records polled on the pipeline's thread.
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

    /// The source's own watermark after what it has handed out, for a
    /// source that keeps one (Kafka: the minimum over its partitions'
    /// watermarks, idle partitions left out, as Flink's Kafka source does).
    /// `None` (the default) lets the host derive the watermark from the
    /// records' times with the source's `bounded_out_of_orderness_ms`.
    fn watermark(&self) -> Option<i64> {
        None
    }

    /// Takes what lets go of everything handed out so far, to be sent once
    /// that is safe: the host holds it until the checkpoint covering those
    /// records is durable, while the driver goes on reading. A source whose
    /// peer keeps input until told (an MQTT broker waiting for PUBACK)
    /// returns its pending acknowledgements; others, nothing.
    fn take_acknowledgement(&mut self) -> Acknowledgement {
        Acknowledgement::default()
    }

    /// Everything handed out so far is safe, as the pipeline's journal
    /// setting makes it (journaled, or covered by a checkpoint): sends
    /// [`Driver::take_acknowledgement`] now.
    fn acknowledge(&mut self) {
        self.take_acknowledgement().send();
    }

    /// Goes to a position [`Driver::position`] returned earlier, so that the
    /// next poll reads what followed it. The host does this when it restores
    /// a checkpoint, before the first poll.
    fn seek(&mut self, _position: &[u8]) -> Result<(), DriverError> {
        Err(DriverError::Config(
            "this driver cannot go back to an earlier position".into(),
        ))
    }
}

/// Acknowledgements of input a driver handed out, to be sent to its peer
/// once the input is safe ([`Driver::take_acknowledgement`]).
#[derive(Default)]
#[must_use = "dropping it never acknowledges the input it covers"]
pub struct Acknowledgement(Vec<Box<dyn FnOnce() + Send>>);

impl Acknowledgement {
    /// Acknowledgements to be sent by calling each of `acks`.
    pub fn new(acks: Vec<Box<dyn FnOnce() + Send>>) -> Self {
        Acknowledgement(acks)
    }

    /// Adds `later`'s acknowledgements after these.
    pub fn append(&mut self, mut later: Acknowledgement) {
        self.0.append(&mut later.0);
    }

    /// Whether it acknowledges nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sends them, oldest first.
    pub fn send(self) {
        for ack in self.0 {
            ack();
        }
    }
}

impl std::fmt::Debug for Acknowledgement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Acknowledgement({})", self.0.len())
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
    /// Nothing now; the driver rings the [`Doorbell`](crate::Doorbell) it
    /// was opened with when there is.
    Pending,
    /// The input has ended; nothing more will come.
    Ended,
}
