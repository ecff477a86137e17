//! How a sink's table becomes a running sink.

use std::fmt;

use eddy_driver::{Context, Invalid};

use crate::{Sink, SinkError, SinkTask};

/// The settings of a sink kind: what its `[sinks.NAME.KIND]` sub-table
/// deserializes into. `eddy check` only validates (no connection, no file
/// created); `eddy run` validates, then opens.
pub trait SinkConfig: fmt::Debug + Send + Sync + 'static {
    /// Checks the settings without touching the outside world.
    fn validate(&self, cx: &Context<'_>) -> Result<(), Invalid>;

    /// Makes the sink. A task connects when the host starts it, so an
    /// unreachable peer is not an error here; a [`SinkError::Config`] error
    /// stops `eddy run`.
    fn open(&self, cx: &Context<'_>) -> Result<OpenedSink, SinkError>;
}

/// An opened sink.
pub enum OpenedSink {
    /// Written to on the pipeline thread.
    Direct(Box<dyn Sink>),
    /// Delivers on the async runtime; the host buffers for it.
    Task(Box<dyn SinkTask>),
    /// Delivers to a broker on the async runtime, from the host's durable
    /// outbox: results wait on disk, not in memory, until the broker has
    /// acknowledged them, and a crash neither loses nor repeats them.
    Outbox(Box<dyn SinkTask>),
}

impl fmt::Debug for OpenedSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpenedSink::Direct(_) => "OpenedSink::Direct",
            OpenedSink::Task(_) => "OpenedSink::Task",
            OpenedSink::Outbox(_) => "OpenedSink::Outbox",
        })
    }
}
