//! The eddy guest SDK: write a pipeline operator as a plain Rust function.
//!
//! An eddy plugin is a WebAssembly module that the host calls once per batch
//! (see `eddy-abi` for the wire contract). This crate hides that contract: the
//! author writes a function over typed records, marks it with an attribute, and
//! the attribute generates the exports, the manifest and the batch loop.
//!
//! - [`macro@process`] marks `fn(&RecordRef, &mut Context<P>) -> Result<()>`, called
//!   for every record as it arrives.
//! - [`macro@window`] marks `fn(&WindowRef, &mut Context<P>) -> Result<()>`, called
//!   for every window of every key when the host fires it (the pipeline config
//!   says which windows).
//! - [`macro@on_timer`] marks `fn(&TimerRef, &mut Context<P>) -> Result<()>`, called
//!   for timers the plugin set that came due.
//! - [`macro@aggregate`] marks an `impl Aggregate for T`: an incremental
//!   aggregate (Flink's `AggregateFunction`) whose accumulator per window the
//!   host keeps, instead of the window's records.
//!
//! [`Context`] gives the operator's params (deserialized into the author's own
//! type `P` from the pipeline's `params` table), [`Context::emit`] and
//! [`Context::emit_to`] for the main and side outputs, keyed [`State`] and
//! [`Timers`].
//!
//! ```no_run
//! use eddy_sdk::{Context, Record, RecordRef, Result};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Params {
//!     field: String,
//!     above: f64,
//! }
//!
//! /// Passes on the records whose `field` is above `above`.
//! #[eddy_sdk::process]
//! fn filter(record: &RecordRef<'_>, ctx: &mut Context<Params>) -> Result<()> {
//!     if record.f64(&ctx.params().field).is_some_and(|v| v > ctx.params().above) {
//!         ctx.emit(&record.to_owned_record())?;
//!     }
//!     Ok(())
//! }
//! ```
//!
//! A plugin that keeps state in its own memory (rather than in [`State`],
//! which the host keeps) exports it for checkpoints with [`snapshot_state!`]:
//!
//! ```no_run
//! use std::cell::RefCell;
//!
//! thread_local! {
//!     static SEEN: RefCell<u64> = const { RefCell::new(0) };
//! }
//!
//! fn save() -> eddy_sdk::Result<Vec<u8>> {
//!     Ok(SEEN.with(|s| s.borrow().to_le_bytes().to_vec()))
//! }
//!
//! fn restore(bytes: &[u8]) -> eddy_sdk::Result<()> {
//!     let bytes: [u8; 8] = bytes.try_into().map_err(|_| eddy_sdk::Error::msg("bad snapshot"))?;
//!     SEEN.with(|s| *s.borrow_mut() = u64::from_le_bytes(bytes));
//!     Ok(())
//! }
//!
//! eddy_sdk::snapshot_state!(save, restore);
//! ```
//!
//! Built for `wasm32-unknown-unknown`, that is a complete plugin. Built for the
//! machine it is compiled on, the same function can be unit-tested: host calls
//! are then served in memory (see [`native`]).

#![warn(missing_docs, unreachable_pub)]

pub mod aggregate;
mod context;
mod error;
mod host;
mod names;
pub mod pattern;
mod state;
mod timers;

#[doc(hidden)]
pub mod __private;

pub use aggregate::{Aggregate, WindowInfo};
pub use context::{Context, NoParams};
pub use eddy_abi::{
    LogLevel, OperatorKind, Record, RecordRef, TimeDomain, TimerRef, Value, ValueRef, WindowRef,
};
pub use eddy_sdk_macros::{aggregate, on_timer, process, window};
pub use error::{Error, Result};
pub use names::Names;
pub use state::State;
pub use timers::Timers;

#[cfg(not(target_arch = "wasm32"))]
pub use host::native;

/// Exports `snapshot` and `restore` (see `eddy-abi`) for state a plugin
/// keeps in its own memory: `$save: fn() -> Result<Vec<u8>>` is called at
/// every checkpoint, `$restore: fn(&[u8]) -> Result<()>` when the plugin
/// starts again from one, before any input.
#[macro_export]
macro_rules! snapshot_state {
    ($save:ident, $restore:ident) => {
        const _: fn() -> $crate::Result<::std::vec::Vec<u8>> = $save;
        const _: fn(&[u8]) -> $crate::Result<()> = $restore;

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __eddy_snapshot {
            #[unsafe(no_mangle)]
            pub extern "C" fn snapshot() -> i32 {
                $crate::__private::snapshot(super::$save)
            }

            /// # Safety
            ///
            /// Called by the host with a range it wrote.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn restore(ptr: *const u8, len: usize) -> i32 {
                // SAFETY: the host wrote `ptr..ptr + len` for this call.
                unsafe { $crate::__private::restore(ptr, len, super::$restore) }
            }
        }
    };
}

/// The README's plugin example, compiled as a doc test so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExample;
