//! The eddy plugin ABI: everything a plugin and the host agree on, and nothing else.
//!
//! An eddy plugin is a core WebAssembly module (`wasm32-unknown-unknown`). The host
//! calls it once per *batch*, never once per record: the input batch is encoded
//! with [postcard] into the guest's memory, the guest runs, and whatever it emits
//! comes back through a host import. This crate defines that boundary once, for
//! the host (`eddy-host`) and for guests (`eddy-sdk`); it is `no_std` + `alloc`
//! and knows nothing of wasmtime. This page is written so that an author using
//! another language can implement a plugin from it alone.
//!
//! # Versioning
//!
//! [`ABI_VERSION`] is carried in the plugin's [`Manifest`]. The host refuses a
//! plugin whose version differs from its own, naming both versions.
//!
//! # The manifest
//!
//! A custom section named [`MANIFEST_SECTION`] holds the [`Manifest`] as UTF-8
//! JSON, for example:
//!
//! ```json
//! {"name":"window-stats","version":"0.1.0","abi_version":1,"kind":"window",
//!  "state_version":1,"capabilities":{"state":[],"side_outputs":[],"timers":false}}
//! ```
//!
//! `state_version` says which layout of state (keyed state values,
//! accumulators, snapshots) the plugin reads and writes. A new version of a
//! plugin that cannot read its predecessor's state bumps it; the host then
//! refuses to restore old state into it unless the pipeline says to reset it.
//!
//! # Guest exports
//!
//! | export | signature | meaning |
//! | --- | --- | --- |
//! | `memory` | memory | the linear memory all pointers refer to |
//! | `alloc` | `(size: i32) -> i32` | allocate `size` bytes for the host to write an input into; returns the pointer |
//! | `dealloc` | `(ptr: i32, size: i32)` | free what `alloc` returned |
//! | `init` | `() -> i32` | called once after instantiation, before any other entry point; reads params |
//! | `process` | `(ptr: i32, len: i32) -> i32` | kind `process`: a [`ProcessInput`] |
//! | `window` | `(ptr: i32, len: i32) -> i32` | kind `window`: a [`WindowInput`] |
//! | `on_timer` | `(ptr: i32, len: i32) -> i32` | optional: a [`TimerInput`] of timers that came due |
//! | `aggregate` | `(ptr: i32, len: i32) -> i32` | kind `aggregate`: an [`AggregateInput`]; for each group, in order, merge its accumulators (none: a new one) and add its records, then hand the result to `accumulator` |
//! | `result` | `(ptr: i32, len: i32) -> i32` | kind `aggregate`: a [`ResultInput`]; emit each fired window's result from its accumulator |
//! | `fold_result` | `(ptr: i32, len: i32) -> i32` | optional, kind `aggregate`: a [`FoldResultInput`]; for each fired window, fold its group as `aggregate` does and emit its result from that accumulator, as `result` would: one call instead of two, and no accumulator handed over. A host uses it, when exported, for windows whose accumulator it does not keep |
//! | `snapshot` | `() -> i32` | optional: hand state the plugin keeps in its own memory to `save_snapshot`; called at each checkpoint |
//! | `restore` | `(ptr: i32, len: i32) -> i32` | optional: take back what `snapshot` saved; called after a restart, before any input |
//!
//! Entry points return a status: [`STATUS_OK`], or [`STATUS_ERROR`] after logging
//! the reason through `log`. The host owns the input buffer: it `alloc`s it,
//! writes the input, calls the entry point, then `dealloc`s it.
//!
//! # Host imports (module [`IMPORT_MODULE`])
//!
//! Every `(ptr, len)` pair is a byte range in the guest's memory; strings are UTF-8.
//!
//! | import | signature | meaning |
//! | --- | --- | --- |
//! | `emit` | `(out_ptr, out_len, data_ptr, data_len) -> i32` | append records to an output: `out` names it (empty for the main output, otherwise a side output; [`LATE_OUTPUT`] is reserved), `data` is one or more postcard [`Record`]s back to back; returns [`STATUS_OK`] |
//! | `state_get` | `(ns_ptr, ns_len, key_ptr, key_len, buf_ptr, buf_cap) -> i32` | read keyed state `ns`/`key` into `buf`; returns its length, or `-1` when absent. When the length exceeds `buf_cap` nothing is written: call again with a larger buffer |
//! | `state_put` | `(ns_ptr, ns_len, key_ptr, key_len, val_ptr, val_len)` | write keyed state; the value is opaque bytes to the host |
//! | `state_delete` | `(ns_ptr, ns_len, key_ptr, key_len)` | delete keyed state |
//! | `timer_set` | `(domain: i32, key_ptr, key_len, time: i64)` | ask for `on_timer` with this key once `time` is reached in [`TimeDomain`] `domain` (one timer per key, domain and time) |
//! | `timer_delete` | `(domain: i32, key_ptr, key_len, time: i64)` | cancel such a timer |
//! | `params` | `(buf_ptr, buf_cap) -> i32` | the operator's params as JSON; returns the length, copying only when it fits |
//! | `log` | `(level: i32, ptr, len)` | a log line at [`LogLevel`] `level` |
//! | `processing_time` | `() -> i64` | the host's wall clock, ms since the Unix epoch |
//! | `accumulator` | `(ptr, len)` | during `aggregate`: the next group's new accumulator, opaque bytes the host keeps |
//! | `cause` | `(index: i32)` | what is emitted from now on in this call derives from item `index` of the input (a record, window or timer, counted from 0); the host builds each result's id from it |
//! | `save_snapshot` | `(ptr, len)` | during `snapshot`: the plugin's in-memory state, opaque bytes the host stores in the checkpoint |
//!
//! # Result ids
//!
//! Every record a pipeline writes carries an id that is the same when the
//! record is produced again by replay after a crash: pipeline, operator and
//! output, then the cause (the input record's key and sequence number, the
//! window's key, bounds and firing, or the timer's key and time), then the
//! record's number among those the cause produced. A guest that never calls
//! `cause` gets ids by call instead, which are stable only as long as batches
//! are cut the same way.
//!
//! A guest that passes an out-of-bounds range, emits more than the operator's
//! output cap, or runs past its deadline is stopped with a trap; the host
//! dead-letters the batch and starts the plugin again in a fresh instance.
//!
//! # Encodings
//!
//! All structured data is [postcard] (varint integers, zig-zag for signed ones,
//! length-prefixed strings and sequences, enums as a varint variant index then
//! the variant's fields). Times are `i64` milliseconds since the Unix epoch.
//! [`Record`] (owned, for building) and [`RecordRef`] (borrowed, for reading
//! without copying) encode to the same bytes.
//!
//! [postcard]: https://docs.rs/postcard

#![no_std]
#![warn(missing_docs, unreachable_pub)]

extern crate alloc;

pub mod decode;
pub mod encode;
mod input;
mod manifest;
mod record;

pub use input::{
    AccWindow, AccWindowRef, AggregateInput, FoldResultInput, Group, GroupRef, GroupWindow,
    GroupWindowRef, ProcessInput, ResultInput, TimeDomain, Timer, TimerInput, TimerRef, Window,
    WindowInput, WindowRef,
};
pub use manifest::{Capabilities, Manifest, OperatorKind};
pub use record::{Fields, FieldsRef, Record, RecordRef, Value, ValueRef, same_bytes, same_text};

/// The version of this ABI. Bumped on any change a plugin could observe.
pub const ABI_VERSION: u32 = 1;

/// The name of the custom section that holds the plugin's JSON [`Manifest`].
pub const MANIFEST_SECTION: &str = "eddy.manifest";

/// The side output on which a window operator puts records that came after
/// their window fired. Reserved: a plugin cannot emit to it.
pub const LATE_OUTPUT: &str = "late";

/// The module name of every host import.
pub const IMPORT_MODULE: &str = "eddy";

/// The entry point returned without error.
pub const STATUS_OK: i32 = 0;

/// The entry point failed; the guest logged why before returning.
pub const STATUS_ERROR: i32 = 1;

/// Severity of a `log` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum LogLevel {
    /// Detailed diagnostics.
    Debug = 0,
    /// Normal operation.
    Info = 1,
    /// Something unexpected that the plugin handled.
    Warn = 2,
    /// Something failed.
    Error = 3,
}

impl LogLevel {
    /// The level for a raw `log` argument; unknown values count as `Info`.
    pub fn from_raw(raw: i32) -> Self {
        match raw {
            0 => Self::Debug,
            2 => Self::Warn,
            3 => Self::Error,
            _ => Self::Info,
        }
    }
}

/// Names of the guest exports and host imports, shared so neither side misspells them.
pub mod names {
    /// Guest export: linear memory.
    pub const MEMORY: &str = "memory";
    /// Guest export: allocate input space.
    pub const ALLOC: &str = "alloc";
    /// Guest export: free input space.
    pub const DEALLOC: &str = "dealloc";
    /// Guest export: one-time initialisation.
    pub const INIT: &str = "init";
    /// Guest export: the `process` entry point.
    pub const PROCESS: &str = "process";
    /// Guest export: the `window` entry point.
    pub const WINDOW: &str = "window";
    /// Guest export: the `on_timer` entry point.
    pub const ON_TIMER: &str = "on_timer";
    /// Guest export: the `aggregate` entry point.
    pub const AGGREGATE: &str = "aggregate";
    /// Guest export: the `result` entry point.
    pub const RESULT: &str = "result";
    /// Guest export (optional): the `fold_result` entry point.
    pub const FOLD_RESULT: &str = "fold_result";
    /// Host import: hand over an accumulator.
    pub const ACCUMULATOR: &str = "accumulator";
    /// Host import: emit records.
    pub const EMIT: &str = "emit";
    /// Host import: read keyed state.
    pub const STATE_GET: &str = "state_get";
    /// Host import: write keyed state.
    pub const STATE_PUT: &str = "state_put";
    /// Host import: delete keyed state.
    pub const STATE_DELETE: &str = "state_delete";
    /// Host import: register a timer.
    pub const TIMER_SET: &str = "timer_set";
    /// Host import: cancel a timer.
    pub const TIMER_DELETE: &str = "timer_delete";
    /// Host import: read params.
    pub const PARAMS: &str = "params";
    /// Host import: log a line.
    pub const LOG: &str = "log";
    /// Host import: the wall clock.
    pub const PROCESSING_TIME: &str = "processing_time";
    /// Host import: what the following emits derive from.
    pub const CAUSE: &str = "cause";
    /// Guest export (optional): save in-memory state through `save_snapshot`.
    pub const SNAPSHOT: &str = "snapshot";
    /// Guest export (optional): take back a saved snapshot.
    pub const RESTORE: &str = "restore";
    /// Host import: the snapshot's bytes, during `snapshot`.
    pub const SAVE_SNAPSHOT: &str = "save_snapshot";
}

/// Encodes any ABI value with postcard, appending to `out` without reallocating
/// more than the value needs. Host and SDK both build batches with it.
pub fn encode_into<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut alloc::vec::Vec<u8>,
) -> Result<(), postcard::Error> {
    postcard::serialize_with_flavor(value, Append(out))
}

/// A postcard flavor that appends to a borrowed `Vec`.
struct Append<'a>(&'a mut alloc::vec::Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}
