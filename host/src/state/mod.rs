//! The state the host keeps for operators: keyed state and timers.
//!
//! Keyed state is addressed by a namespace (the name a plugin gives its state)
//! and a key (a record key). The host owns it, not the plugin instance, so a
//! plugin restarted after a trap finds its state where it left it. Writes made
//! during a plugin call are held in a [`Transaction`] and applied only when
//! the call succeeds: a batch that fails leaves no trace in state.

mod memory;
mod timers;
mod transaction;

pub use memory::MemoryState;
pub use timers::{Timer, Timers};
pub use transaction::{TimerOp, Transaction};

/// A store of keyed state for one operator.
pub trait KeyedState: Send {
    /// The value of `namespace`/`key`, if any.
    fn get(&self, namespace: &str, key: &str) -> Option<&[u8]>;
    /// Sets the value of `namespace`/`key`.
    fn put(&mut self, namespace: &str, key: &str, value: &[u8]);
    /// Removes the value of `namespace`/`key`.
    fn delete(&mut self, namespace: &str, key: &str);
}

/// Everything the host keeps for one operator.
pub struct OperatorState {
    /// Keyed state.
    pub keyed: Box<dyn KeyedState>,
    /// Timers.
    pub timers: Timers,
}

impl OperatorState {
    /// Empty state held in memory.
    pub fn in_memory() -> Self {
        OperatorState {
            keyed: Box::new(MemoryState::default()),
            timers: Timers::default(),
        }
    }
}
