//! The host calls, as safe functions.
//!
//! On `wasm32` these are the raw imports of module `eddy` (see `eddy-abi`). On
//! any other target they are served in memory by [`native`], so an author can
//! unit-test operator functions with `cargo test`.

use eddy_abi::{LogLevel, TimeDomain};

#[cfg(target_arch = "wasm32")]
mod raw {
    #[link(wasm_import_module = "eddy")]
    unsafe extern "C" {
        pub(super) fn emit(out_ptr: *const u8, out_len: usize, ptr: *const u8, len: usize) -> i32;
        pub(super) fn state_get(
            ns_ptr: *const u8,
            ns_len: usize,
            key_ptr: *const u8,
            key_len: usize,
            buf_ptr: *mut u8,
            buf_cap: usize,
        ) -> i32;
        pub(super) fn state_put(
            ns_ptr: *const u8,
            ns_len: usize,
            key_ptr: *const u8,
            key_len: usize,
            val_ptr: *const u8,
            val_len: usize,
        );
        pub(super) fn state_delete(
            ns_ptr: *const u8,
            ns_len: usize,
            key_ptr: *const u8,
            key_len: usize,
        );
        pub(super) fn timer_set(domain: i32, key_ptr: *const u8, key_len: usize, time: i64);
        pub(super) fn timer_delete(domain: i32, key_ptr: *const u8, key_len: usize, time: i64);
        pub(super) fn params(buf_ptr: *mut u8, buf_cap: usize) -> i32;
        pub(super) fn log(level: i32, ptr: *const u8, len: usize);
        pub(super) fn processing_time() -> i64;
        pub(super) fn accumulator(ptr: *const u8, len: usize);
        pub(super) fn cause(index: u32);
        pub(super) fn save_snapshot(ptr: *const u8, len: usize);
    }
}

/// Tells the host which input item the next emits derive from.
#[cfg(target_arch = "wasm32")]
pub(crate) fn cause(index: u32) {
    // SAFETY: no pointers.
    unsafe { raw::cause(index) };
}

/// Hands the host the plugin's in-memory state, during `snapshot`.
#[cfg(target_arch = "wasm32")]
pub(crate) fn save_snapshot(bytes: &[u8]) {
    // SAFETY: the bytes are a live borrow for the call.
    unsafe { raw::save_snapshot(bytes.as_ptr(), bytes.len()) };
}

/// Hands the host the next group's new accumulator.
#[cfg(target_arch = "wasm32")]
pub(crate) fn accumulator(bytes: &[u8]) {
    // SAFETY: the bytes are a live borrow for the call.
    unsafe { raw::accumulator(bytes.as_ptr(), bytes.len()) };
}

/// Appends encoded records to an output (`""` is the main output).
#[cfg(target_arch = "wasm32")]
pub(crate) fn emit(output: &str, data: &[u8]) {
    // SAFETY: both ranges are live borrows of guest memory for the call.
    unsafe { raw::emit(output.as_ptr(), output.len(), data.as_ptr(), data.len()) };
}

/// Reads keyed state into `buf`; `false` when there is none.
#[cfg(target_arch = "wasm32")]
pub(crate) fn state_get(ns: &str, key: &str, buf: &mut Vec<u8>) -> bool {
    loop {
        buf.clear();
        // SAFETY: `buf` has `capacity()` writable bytes; the host writes at most that.
        let len = unsafe {
            raw::state_get(
                ns.as_ptr(),
                ns.len(),
                key.as_ptr(),
                key.len(),
                buf.as_mut_ptr(),
                buf.capacity(),
            )
        };
        let Ok(len) = usize::try_from(len) else {
            return false;
        };
        if len <= buf.capacity() {
            // SAFETY: the host wrote `len` bytes.
            unsafe { buf.set_len(len) };
            return true;
        }
        buf.reserve(len);
    }
}

/// Writes keyed state.
#[cfg(target_arch = "wasm32")]
pub(crate) fn state_put(ns: &str, key: &str, value: &[u8]) {
    // SAFETY: all ranges are live borrows for the call.
    unsafe {
        raw::state_put(
            ns.as_ptr(),
            ns.len(),
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        )
    };
}

/// Deletes keyed state.
#[cfg(target_arch = "wasm32")]
pub(crate) fn state_delete(ns: &str, key: &str) {
    // SAFETY: both ranges are live borrows for the call.
    unsafe { raw::state_delete(ns.as_ptr(), ns.len(), key.as_ptr(), key.len()) };
}

/// Registers a timer.
#[cfg(target_arch = "wasm32")]
pub(crate) fn timer_set(domain: TimeDomain, key: &str, time: i64) {
    // SAFETY: the key is a live borrow for the call.
    unsafe { raw::timer_set(domain as i32, key.as_ptr(), key.len(), time) };
}

/// Cancels a timer.
#[cfg(target_arch = "wasm32")]
pub(crate) fn timer_delete(domain: TimeDomain, key: &str, time: i64) {
    // SAFETY: the key is a live borrow for the call.
    unsafe { raw::timer_delete(domain as i32, key.as_ptr(), key.len(), time) };
}

/// The operator's params as JSON.
#[cfg(target_arch = "wasm32")]
pub(crate) fn params() -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    loop {
        // SAFETY: `buf` has `capacity()` writable bytes; the host writes at most that.
        let len = unsafe { raw::params(buf.as_mut_ptr(), buf.capacity()) };
        let len = usize::try_from(len).unwrap_or(0);
        if len <= buf.capacity() {
            // SAFETY: the host wrote `len` bytes.
            unsafe { buf.set_len(len) };
            return buf;
        }
        buf.reserve(len);
    }
}

/// Logs a line.
#[cfg(target_arch = "wasm32")]
pub(crate) fn log(level: LogLevel, message: &str) {
    // SAFETY: the message is a live borrow for the call.
    unsafe { raw::log(level as i32, message.as_ptr(), message.len()) };
}

/// The host's wall clock, ms since the Unix epoch.
#[cfg(target_arch = "wasm32")]
pub(crate) fn processing_time() -> i64 {
    // SAFETY: no arguments.
    unsafe { raw::processing_time() }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::{
    accumulator, cause, emit, log, params, processing_time, save_snapshot, state_delete, state_get,
    state_put, timer_delete, timer_set,
};

#[cfg(not(target_arch = "wasm32"))]
pub mod native {
    //! Host calls served in memory, for unit tests of operator functions on the
    //! build machine. Each test thread has its own host.
    //!
    //! ```
    //! use eddy_sdk::{native, Context, NoParams, Record};
    //!
    //! let mut ctx = Context::new(NoParams {}, 0);
    //! ctx.emit(&Record::new("k", 1).with("v", 2.0)).unwrap();
    //! ctx.flush();
    //! assert_eq!(native::take_emitted(), vec![(String::new(), Record::new("k", 1).with("v", 2.0))]);
    //! ```

    use super::{LogLevel, TimeDomain};
    use eddy_abi::Record;
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};

    #[derive(Default)]
    struct NativeHost {
        state: BTreeMap<(String, String), Vec<u8>>,
        timers: BTreeSet<(TimeDomain, String, i64)>,
        emitted: Vec<(String, Record)>,
        logs: Vec<(LogLevel, String)>,
        accumulators: Vec<Vec<u8>>,
        snapshot: Option<Vec<u8>>,
    }

    thread_local! {
        static HOST: RefCell<NativeHost> = RefCell::default();
    }

    /// Takes the records emitted so far, as `(output, record)`; `""` is the main output.
    pub fn take_emitted() -> Vec<(String, Record)> {
        HOST.with(|h| std::mem::take(&mut h.borrow_mut().emitted))
    }

    /// The timers set and not yet deleted, as `(domain, key, time)`.
    pub fn timers() -> Vec<(TimeDomain, String, i64)> {
        HOST.with(|h| h.borrow().timers.iter().cloned().collect())
    }

    /// Takes the accumulators an aggregate handed over so far.
    pub fn take_accumulators() -> Vec<Vec<u8>> {
        HOST.with(|h| std::mem::take(&mut h.borrow_mut().accumulators))
    }

    pub(crate) fn accumulator(bytes: &[u8]) {
        HOST.with(|h| h.borrow_mut().accumulators.push(bytes.to_vec()));
    }

    /// Takes the snapshot a plugin saved last, if any.
    pub fn take_snapshot() -> Option<Vec<u8>> {
        HOST.with(|h| h.borrow_mut().snapshot.take())
    }

    pub(crate) fn save_snapshot(bytes: &[u8]) {
        HOST.with(|h| h.borrow_mut().snapshot = Some(bytes.to_vec()));
    }

    /// Natively, causes only matter to the host's result ids: nothing to keep.
    pub(crate) fn cause(_index: u32) {}

    /// Takes the lines logged so far.
    pub fn take_logs() -> Vec<(LogLevel, String)> {
        HOST.with(|h| std::mem::take(&mut h.borrow_mut().logs))
    }

    pub(crate) fn emit(output: &str, mut data: &[u8]) {
        HOST.with(|h| {
            let mut h = h.borrow_mut();
            while !data.is_empty() {
                let Ok((record, rest)) = postcard::take_from_bytes::<Record>(data) else {
                    break;
                };
                h.emitted.push((output.to_owned(), record));
                data = rest;
            }
        });
    }

    pub(crate) fn state_get(ns: &str, key: &str, buf: &mut Vec<u8>) -> bool {
        HOST.with(
            |h| match h.borrow().state.get(&(ns.to_owned(), key.to_owned())) {
                Some(v) => {
                    buf.clear();
                    buf.extend_from_slice(v);
                    true
                }
                None => false,
            },
        )
    }

    pub(crate) fn state_put(ns: &str, key: &str, value: &[u8]) {
        HOST.with(|h| {
            h.borrow_mut()
                .state
                .insert((ns.to_owned(), key.to_owned()), value.to_vec())
        });
    }

    pub(crate) fn state_delete(ns: &str, key: &str) {
        HOST.with(|h| {
            h.borrow_mut()
                .state
                .remove(&(ns.to_owned(), key.to_owned()))
        });
    }

    pub(crate) fn timer_set(domain: TimeDomain, key: &str, time: i64) {
        HOST.with(|h| h.borrow_mut().timers.insert((domain, key.to_owned(), time)));
    }

    pub(crate) fn timer_delete(domain: TimeDomain, key: &str, time: i64) {
        HOST.with(|h| {
            h.borrow_mut()
                .timers
                .remove(&(domain, key.to_owned(), time))
        });
    }

    pub(crate) fn params() -> Vec<u8> {
        b"{}".to_vec()
    }

    pub(crate) fn log(level: LogLevel, message: &str) {
        HOST.with(|h| h.borrow_mut().logs.push((level, message.to_owned())));
    }

    pub(crate) fn processing_time() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}
