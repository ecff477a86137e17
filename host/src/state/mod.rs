//! The state the host keeps for operators: keyed state and timers.
//!
//! Keyed state is addressed by a namespace (the name a plugin gives its state)
//! and a key (a record key). The host owns it, not the plugin instance, so a
//! plugin restarted after a trap finds its state where it left it. Writes made
//! during a plugin call are held in a [`Transaction`] and applied only when
//! the call succeeds: a batch that fails leaves no trace in state.

mod cow_map;
mod keyed;
pub(crate) mod segment_log;
mod timers;
mod transaction;

pub use cow_map::CowMap;
pub use keyed::KeyedState;
pub use timers::{Timer, Timers};
pub use transaction::{TimerOp, Transaction};

/// Everything the host keeps for one operator.
#[derive(Debug, Default)]
pub struct OperatorState {
    /// Keyed state.
    pub keyed: KeyedState,
    /// Timers.
    pub timers: Timers,
}

impl OperatorState {
    /// Empty state.
    pub fn in_memory() -> Self {
        OperatorState::default()
    }

    /// Empty state whose keyed values live `ttl_ms` after their last write.
    pub fn with_ttl(ttl_ms: Option<u64>) -> Self {
        OperatorState {
            keyed: KeyedState::with_ttl(ttl_ms),
            timers: Timers::default(),
        }
    }
}
