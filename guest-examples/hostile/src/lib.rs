//! `hostile`: a plugin that misbehaves on purpose, to prove the host survives it.
//!
//! Params: `mode`, one of
//! - `loop`: never returns (the host's deadline must stop it);
//! - `grow`: allocates until memory runs out (the host's memory cap must stop it);
//! - `trap`: panics, which aborts with an `unreachable` trap;
//! - `emit_gigabyte`: emits 1 GiB of records (the host's output cap must stop it);
//! - `fail`: returns an error (a clean failure, no trap);
//! - `recurse`: recurses without end (the wasm stack overflows);
//! - `bad_pointer`: hands the host's `emit` a range outside its memory;
//! - `state_flood`: writes 256 KiB of keyed state under a new key (the
//!   record's key and time) for every record, without end (the host's state
//!   cap must stop it);
//! - `timer_flood`: sets 1000 event-time timers for every record, far in the
//!   future, and one more already due for every timer that fires (the
//!   host's timer cap and its bounded firing must stop it);
//! - `emit_flood`: emits 10 000 small records for every record (the host's
//!   cap on records per call must stop it);
//! - `echo`: behaves, passing every record on.
//!
//! `after` (default 0): behave for this many records first.
//! `only_key`: misbehave only on records with this key, and echo the others.

use std::cell::Cell;

use eddy_sdk::{Context, Record, RecordRef, Result, TimerRef, Value};
use serde::Deserialize;

/// How to misbehave.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Spin forever.
    Loop,
    /// Allocate without bound.
    Grow,
    /// Trap.
    Trap,
    /// Emit a gigabyte.
    EmitGigabyte,
    /// Return an error.
    Fail,
    /// Recurse until the stack overflows.
    Recurse,
    /// Hand a host call an out-of-bounds pointer.
    BadPointer,
    /// Make the host hold ever more keyed state.
    StateFlood,
    /// Make the host hold ever more timers.
    TimerFlood,
    /// Emit ever more small records.
    EmitFlood,
    /// Pass records on.
    Echo,
}

/// The operator's params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// How to misbehave.
    pub mode: Mode,
    /// Records to pass on before misbehaving.
    #[serde(default)]
    pub after: u64,
    /// Misbehave only on this key.
    pub only_key: Option<String>,
}

thread_local! {
    static SEEN: Cell<u64> = const { Cell::new(0) };
}

/// Recursion that is not a tail call, so it cannot become a loop.
fn deeper(n: u64) -> u64 {
    if std::hint::black_box(n) == u64::MAX {
        return 0;
    }
    std::hint::black_box(deeper(n + 1)) + 1
}

/// Calls the host's `emit` with a range far outside the guest's memory.
#[cfg(target_arch = "wasm32")]
fn bad_pointer() {
    #[link(wasm_import_module = "eddy")]
    unsafe extern "C" {
        fn emit(out_ptr: *const u8, out_len: usize, ptr: *const u8, len: usize) -> i32;
    }
    let far = 0xfff0_0000usize as *const u8;
    // SAFETY: the host checks every range a guest hands it; this one is
    // deliberately out of bounds, and the host must refuse it.
    unsafe { emit(b"".as_ptr(), 0, far, 4096) };
}

/// Natively there is no host memory to point outside of.
#[cfg(not(target_arch = "wasm32"))]
fn bad_pointer() {}

/// Misbehaves as the params say.
#[eddy_sdk::process(state = ["flood"], timers)]
pub fn hostile(record: &RecordRef<'_>, ctx: &mut Context<Params>) -> Result<()> {
    let seen = SEEN.with(|s| {
        s.set(s.get() + 1);
        s.get()
    });
    let spared = ctx
        .params()
        .only_key
        .as_deref()
        .is_some_and(|k| k != record.key);
    if seen <= ctx.params().after || spared {
        return ctx.emit(&record.to_owned_record());
    }
    match ctx.params().mode {
        Mode::Loop => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Mode::Grow => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
        }
        Mode::Trap => panic!("hostile plugin traps on purpose"),
        Mode::EmitGigabyte => {
            let chunk = Record::new(record.key, record.time)
                .with("blob", Value::Bytes(vec![0u8; 1 << 20].into()));
            for _ in 0..1024 {
                ctx.emit(&chunk)?;
            }
            Ok(())
        }
        Mode::Fail => Err("hostile plugin fails on purpose".into()),
        Mode::Recurse => {
            let depth = deeper(std::hint::black_box(0));
            ctx.emit(&Record::new(record.key, record.time).with("depth", depth as i64))
        }
        Mode::BadPointer => {
            bad_pointer();
            Ok(())
        }
        Mode::StateFlood => {
            let key = format!("{}-{}", record.key, record.time);
            ctx.state::<Vec<u8>>("flood")
                .put(&key, &vec![7u8; 256 << 10])
        }
        Mode::TimerFlood => {
            let far = record.time.saturating_add(1 << 40);
            for i in 0..1000 {
                ctx.timers()
                    .set_event_time(&format!("{}-{seen}-{i}", record.key), far + i);
            }
            Ok(())
        }
        Mode::EmitFlood => {
            for i in 0..10_000i64 {
                ctx.emit(&Record::new(record.key, record.time).with("i", i))?;
            }
            Ok(())
        }
        Mode::Echo => ctx.emit(&record.to_owned_record()),
    }
}

/// Timers: in `timer_flood`, each one that fires sets another already due.
#[eddy_sdk::on_timer]
pub fn on_timer(timer: &TimerRef<'_>, ctx: &mut Context<Params>) -> Result<()> {
    if let Mode::TimerFlood = ctx.params().mode {
        let again = format!("{}+", timer.key);
        ctx.timers().set_event_time(&again, timer.time);
    }
    Ok(())
}
