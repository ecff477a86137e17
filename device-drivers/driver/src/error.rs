//! What can go wrong with a component: settings that cannot work, and peers
//! that fail for a while.

use std::ops::Range;
use std::time::Duration;

/// A setting that cannot work, found without touching the outside world.
/// The host reports it at `file:line:column` of the setting when `span`
/// says where it is, else at the component's table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// What is wrong, and what was expected.
    pub message: String,
    /// Where in the pipeline file (byte offsets), if known.
    pub span: Option<Range<usize>>,
}

impl Invalid {
    /// An error about the component's table as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        Invalid {
            message: message.into(),
            span: None,
        }
    }

    /// An error about one setting, read with its place in the file.
    pub fn at<T>(setting: &serde_spanned::Spanned<T>, message: impl Into<String>) -> Self {
        Invalid {
            message: message.into(),
            span: Some(setting.span()),
        }
    }
}

/// A device or peer that cannot be reached, timed out, refused or went
/// away, and may come back: sources and sinks retry it with backoff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{peer}: {message}")]
pub struct Unavailable {
    /// The device or peer: an address, a path, a device name.
    pub peer: String,
    /// What went wrong.
    pub message: String,
    /// When the peer said to try again, if it did.
    pub retry_after: Option<Duration>,
}

impl Unavailable {
    /// `peer` failed with `message`.
    pub fn new(peer: impl Into<String>, message: impl ToString) -> Self {
        Unavailable {
            peer: peer.into(),
            message: message.to_string(),
            retry_after: None,
        }
    }
}

/// Why a source could not read.
///
/// The split decides what the host does: a [`DriverError::Config`] error
/// cannot go away by waiting (at start, `eddy run` refuses the pipeline;
/// later, the source is marked failed and tried again now and then), while
/// a [`DriverError::Unavailable`] one is retried with exponential backoff
/// and jitter, the source shown as `retrying` meanwhile. The component
/// never loops on errors itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The configuration cannot work; names what is wrong.
    #[error("{0}")]
    Config(String),
    /// A device or peer failed and may come back.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl DriverError {
    /// A transient failure of `peer`.
    pub fn unavailable(peer: impl Into<String>, message: impl ToString) -> Self {
        DriverError::Unavailable(Unavailable::new(peer, message))
    }

    /// Whether waiting and trying again may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, DriverError::Unavailable(_))
    }

    /// How long the peer asked to be left alone, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DriverError::Unavailable(u) => u.retry_after,
            DriverError::Config(_) => None,
        }
    }
}
