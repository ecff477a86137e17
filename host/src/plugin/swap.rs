//! Swapping a running operator's plugin for another version.
//!
//! A swap happens on the pipeline's thread between two calls: the state moves
//! to the new version, which is then on probation. The old version is kept
//! until the new one has made a few calls; if it fails before that, the old
//! one comes back and makes the failed call itself.

use std::time::Duration;

use eddy_abi::OperatorKind;

use super::PluginFault;
use super::runner::Version;

/// A swap that went in.
#[derive(Debug, Clone, PartialEq)]
pub struct SwapReport {
    /// The version swapped out.
    pub from: String,
    /// The version swapped in.
    pub to: String,
    /// How long the operator could not be called: moving the state and
    /// starting the new instance.
    pub pause: Duration,
}

/// How a swap ended, once the new version's probation is over.
#[derive(Debug, Clone, PartialEq)]
pub enum SwapOutcome {
    /// The new version passed its probation and stays.
    Kept(SwapReport),
    /// The new version failed on probation; the old one is back.
    RolledBack {
        /// The swap that was undone.
        report: SwapReport,
        /// What the new version did.
        fault: PluginFault,
    },
}

/// Why a swap is refused; the running version carries on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SwapError {
    /// The previous swap's new version is still on probation.
    #[error("the previous swap is still on probation; try again once it has ended")]
    InProgress,
    /// The new plugin is another kind of operator.
    #[error(
        "the new plugin is a {} plugin, but the operator runs a {} plugin",
        kind_name(*new),
        kind_name(*old)
    )]
    Kind {
        /// The running kind.
        old: OperatorKind,
        /// The new kind.
        new: OperatorKind,
    },
    /// The new version declares another state version.
    #[error(
        "the new plugin declares state_version {new}, but the operator's state has state_version {old}; \
         swap with a reset of the state (`--reset-state`) to start it empty"
    )]
    StateVersion {
        /// The running version's.
        old: u32,
        /// The new version's.
        new: u32,
    },
    /// The running version keeps state in its memory that the new one cannot take.
    #[error(
        "the running version keeps state in its own memory (it exports `snapshot`), but the new one has no `restore`; \
         swap with `--reset-state` to drop that state"
    )]
    DropsSnapshot,
    /// The new version declares or imports what the operator is not granted.
    #[error("{0}")]
    Grants(String),
    /// The running version could not save its memory.
    #[error("the running version could not save its state: {0}")]
    Snapshot(PluginFault),
    /// The new version could not start, or not take the state.
    #[error("the new plugin could not start: {0}")]
    Start(PluginFault),
    /// The operator does not run a plugin.
    #[error("the operator does not run a WebAssembly plugin")]
    NotAPlugin,
}

/// The version a swap replaced, kept while the new one is on probation.
pub(crate) struct Probation {
    pub(crate) previous: Version,
    /// Whether the new version started with empty state (the old one kept its own).
    pub(crate) reset_state: bool,
    /// Successful calls the new version still has to make.
    pub(crate) calls_left: u32,
    /// The plugin's memory as of the new version's last successful call,
    /// or the old version's at the swap, for a rollback.
    pub(crate) snapshot: Option<Vec<u8>>,
    pub(crate) report: SwapReport,
}

/// `process`, `window` or `aggregate`.
fn kind_name(kind: OperatorKind) -> String {
    format!("{kind:?}").to_lowercase()
}
