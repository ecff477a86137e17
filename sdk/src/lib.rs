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
//! Built for `wasm32-unknown-unknown`, that is a complete plugin. Built for the
//! machine it is compiled on, the same function can be unit-tested: host calls
//! are then served in memory (see [`native`]).

#![warn(missing_docs, unreachable_pub)]

pub mod aggregate;
mod context;
mod error;
mod host;
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
pub use state::State;
pub use timers::Timers;

#[cfg(not(target_arch = "wasm32"))]
pub use host::native;

/// The README's plugin example, compiled as a doc test so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExample;
