//! Why a plugin call failed.

use std::time::Duration;

use wasmtime::Trap;

use super::Cap;

/// A failed plugin call. Its `Display` is the reason written to the dead-letter log.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginFault {
    /// The call ran past its CPU deadline.
    #[error("ran past its deadline of {} ms", .0.as_millis())]
    Deadline(Duration),
    /// The guest tried to grow its memory past the cap.
    #[error("hit its memory cap of {cap} bytes (asked for {wanted} bytes; `memory_limit_bytes`)")]
    MemoryCap {
        /// The cap.
        cap: usize,
        /// What the guest asked for.
        wanted: usize,
    },
    /// The guest made the host hold more than one of its caps allows.
    #[error("{} (`{}`)", .cap.describe(*.limit), .cap.setting())]
    Cap {
        /// Which cap.
        cap: Cap,
        /// Its value.
        limit: usize,
    },
    /// The guest handed a host call a range outside its memory.
    #[error("handed `{import}` an out-of-bounds range (ptr {ptr}, len {len})")]
    BadPointer {
        /// The host call.
        import: &'static str,
        /// The pointer.
        ptr: u32,
        /// The length.
        len: u32,
    },
    /// The guest handed a host call bytes that do not decode.
    #[error("handed `{import}` malformed data: {detail}")]
    Malformed {
        /// The host call.
        import: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The guest used state or a side output it was not granted.
    #[error("used {what} through `{import}`, which is not granted to it")]
    Ungranted {
        /// The host call.
        import: &'static str,
        /// What it tried to use.
        what: String,
    },
    /// The guest trapped.
    #[error("trapped: {0}")]
    Trap(String),
    /// The guest returned an error status, with the reason it logged.
    #[error("returned an error: {0}")]
    Failed(String),
    /// The plugin failed earlier and waits out its restart backoff.
    #[error("is restarting after a failure (next start in {} ms)", .0.as_millis())]
    Restarting(Duration),
    /// A fresh instance could not be started.
    #[error("could not start: {0}")]
    Start(String),
    /// The instance does not export this optional entry point (one built
    /// with an older SDK, say): the caller uses the entry points it has.
    #[error("exports no `{0}`")]
    NoEntry(&'static str),
    /// The plugin kept failing and is not called until it is swapped or reset.
    #[error("{0}")]
    Quarantined(String),
}

impl PluginFault {
    /// Whether the instance must be thrown away: everything but a clean error
    /// return leaves a guest in a state it cannot be trusted in.
    pub fn needs_restart(&self) -> bool {
        !matches!(
            self,
            PluginFault::Failed(_)
                | PluginFault::Restarting(_)
                | PluginFault::Quarantined(_)
                | PluginFault::NoEntry(_)
        )
    }

    /// The fault behind a wasmtime error: one the host raised itself, a
    /// deadline interrupt, or another trap.
    pub(crate) fn from_wasmtime(error: wasmtime::Error, deadline: Duration) -> Self {
        if let Some(fault) = error.downcast_ref::<PluginFault>() {
            return fault.clone();
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PluginFault::Deadline(deadline),
            Some(trap) => PluginFault::Trap(trap.to_string()),
            None => PluginFault::Trap(format!("{error:#}")),
        }
    }
}
