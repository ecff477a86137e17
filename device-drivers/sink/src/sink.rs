//! Sinks the pipeline thread writes to directly, and tasks that deliver on
//! the async runtime.

use std::sync::Arc;

use eddy_abi::Record;
use eddy_driver::BoxFuture;

use crate::SinkError;

/// One record on its way out: the node output it came from (`stats`,
/// `alerts.cleared`) and its result id (the same again when replay after a
/// crash produces it, so a consumer can drop repeats).
#[derive(Debug, Clone, Copy)]
pub struct Out<'a> {
    /// The node output.
    pub output: &'a str,
    /// The result id.
    pub id: &'a str,
    /// The record.
    pub record: &'a Record,
}

/// An [`Out`] that owns its parts, for tasks on another thread and for a
/// sink's buffer in a checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OwnedOut {
    /// The node output.
    pub output: Arc<str>,
    /// The result id.
    pub id: String,
    /// The record.
    pub record: Record,
}

impl OwnedOut {
    /// Borrowed, as [`Sink::write`] takes it.
    pub fn as_out(&self) -> Out<'_> {
        Out {
            output: &self.output,
            id: &self.id,
            record: &self.record,
        }
    }
}

/// A destination the pipeline thread writes to directly: one that answers
/// at once (standard output, a local file).
pub trait Sink: Send {
    /// Takes one record. Once this returns `Ok`, the sink has it.
    fn write(&mut self, out: &Out<'_>) -> Result<(), SinkError>;

    /// Makes everything taken so far visible or durable. After an error,
    /// the sink still holds what it took, and the host calls `flush` again.
    fn flush(&mut self) -> Result<(), SinkError>;

    /// At a checkpoint: makes everything written so far durable and returns
    /// the position after it (a file's length), or `None` for a sink that
    /// cannot go back (standard output).
    fn commit(&mut self) -> Result<Option<u64>, SinkError> {
        self.flush()?;
        Ok(None)
    }

    /// After a crash: drops what was written after `position`, which
    /// [`Sink::commit`] returned, because replay writes it again.
    fn rewind(&mut self, _position: u64) -> Result<(), SinkError> {
        Ok(())
    }
}

/// What a delivery gave: every record of the batch was taken, except those
/// listed, which the peer refused for good (index in the batch, reason);
/// the host dead-letters those.
pub type Refused = Vec<(usize, String)>;

/// A sink whose I/O runs on the host's async runtime (a network peer). The
/// host keeps its records in a bounded buffer, in order, and calls
/// [`SinkTask::deliver`] with batches from the front; a batch leaves the
/// buffer only once delivered. After a failure the host waits out a
/// backoff, calls [`SinkTask::connect`] again, and delivers the same batch
/// again: at least once, the result ids telling repeats apart.
pub trait SinkTask: Send + 'static {
    /// Connects to the peer: at start and after every failure.
    fn connect(&mut self) -> BoxFuture<'_, Result<(), SinkError>>;

    /// Delivers a batch, in order; returns once the peer has it, as far as
    /// its protocol can tell.
    fn deliver<'a>(
        &'a mut self,
        batch: &'a [OwnedOut],
    ) -> BoxFuture<'a, Result<Refused, SinkError>>;

    /// Keeps a connected peer's connection alive while no records wait
    /// (a protocol's pings); returns only when the connection is gone,
    /// and the host then connects again before the next batch. The host
    /// drops this future as soon as records come, so it must be
    /// cancel-safe. By default the connection needs nothing.
    fn idle(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(std::future::pending())
    }
}
