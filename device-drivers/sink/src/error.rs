//! What can go wrong when writing.

use std::time::Duration;

use eddy_driver::Unavailable;

/// Why a sink could not write.
///
/// The variant decides what the host does with the records: it keeps them
/// and retries an [`SinkError::Unavailable`] peer with backoff; it sends a
/// [`SinkError::Rejected`] record to the dead-letter log and goes on; it
/// marks a sink whose [`SinkError::Config`] cannot work as failed, keeping
/// its records as for an unavailable peer and trying again at the longest
/// backoff; and it ends the run when the destination is [`SinkError::Closed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The configuration cannot work; names what is wrong.
    #[error("{0}")]
    Config(String),
    /// The peer cannot be reached, timed out, refused or went away; it may
    /// come back. Records are kept and delivered later.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The peer will never take this record (too large, refused by rule).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The destination is gone for good and the run should end, as a Unix
    /// tool ends when its reader goes away (standard output closed).
    #[error("the output was closed")]
    Closed,
}

impl SinkError {
    /// A transient failure of `peer`.
    pub fn unavailable(peer: impl Into<String>, message: impl ToString) -> Self {
        SinkError::Unavailable(Unavailable::new(peer, message))
    }

    /// Whether waiting and trying again may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, SinkError::Unavailable(_))
    }

    /// How long the peer asked to be left alone, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SinkError::Unavailable(u) => u.retry_after,
            _ => None,
        }
    }

    /// An I/O error of a local destination (a file, standard output): a
    /// closed pipe ends the run, a full disk or other I/O failure is retried.
    pub fn from_io(peer: &str, e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::BrokenPipe => SinkError::Closed,
            _ => SinkError::unavailable(peer, e),
        }
    }
}
