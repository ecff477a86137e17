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

    /// Everything handed out so far is safe, as the pipeline's journal
    /// setting makes it (journaled, or covered by a checkpoint): a source
    /// whose peer keeps input until told (an MQTT broker waiting for
    /// PUBACK) may now let it go.
    fn acknowledge(&mut self) {}

    /// Goes to a position [`Driver::position`] returned earlier, so that the
    /// next poll reads what followed it. The host does this when it restores
    /// a checkpoint, before the first poll.
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
    /// Nothing now; the driver rings the [`Doorbell`](crate::Doorbell) it
    /// was opened with when there is.
    Pending,
    /// The input has ended; nothing more will come.
    Ended,
}
