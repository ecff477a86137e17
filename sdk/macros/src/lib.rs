//! The attribute macros of `eddy-sdk`. Use them through `eddy_sdk::{process, window, on_timer}`.
//!
//! Each macro leaves the author's function as it is and adds, for `wasm32`
//! only, a hidden module with the raw exports that decode a batch and call the
//! function once per record, window or timer. The `process` and `window`
//! macros also embed the plugin's manifest (name and version from Cargo, the
//! ABI version, the kind, and the capabilities given as arguments) in a custom
//! section. On every target they check the function's signature, so a mistake
//! shows up in `cargo check`, not only in the wasm build.

#![warn(missing_docs, unreachable_pub)]

mod args;
mod expand;

use proc_macro::TokenStream;

/// Marks `fn(record: &RecordRef<'_>, ctx: &mut Context<P>) -> Result<()>` as the
/// plugin's `process` entry point, called for each record in arrival order.
///
/// Arguments declare capabilities for the manifest:
/// `state = ["name", …]`, `side_outputs = ["name", …]`, `timers`.
#[proc_macro_attribute]
pub fn process(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(expand::Entry::Process, args.into(), item.into()).into()
}

/// Marks `fn(window: &WindowRef<'_>, ctx: &mut Context<P>) -> Result<()>` as the
/// plugin's `window` entry point, called for each fired window of each key.
///
/// Takes the same arguments as [`macro@process`].
#[proc_macro_attribute]
pub fn window(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(expand::Entry::Window, args.into(), item.into()).into()
}

/// Marks an `impl Aggregate for T` as the plugin's incremental aggregate: the
/// `aggregate`, `result` and `fold_result` entry points. Takes the same arguments as [`macro@process`].
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand_aggregate(args.into(), item.into()).into()
}

/// Marks `fn(timer: &TimerRef<'_>, ctx: &mut Context<P>) -> Result<()>` as the
/// plugin's `on_timer` entry point. Takes no arguments; declare `timers` on the
/// main entry point.
#[proc_macro_attribute]
pub fn on_timer(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(expand::Entry::OnTimer, args.into(), item.into()).into()
}
