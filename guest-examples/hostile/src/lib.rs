//! `hostile`: a plugin that misbehaves on purpose, to prove the host survives it.
//!
//! Params: `mode`, one of
//! - `loop`: never returns (the host's deadline must stop it);
//! - `grow`: allocates until memory runs out (the host's memory cap must stop it);
//! - `trap`: panics, which aborts with an `unreachable` trap;
//! - `emit_gigabyte`: emits 1 GiB of records (the host's output cap must stop it);
//! - `fail`: returns an error (a clean failure, no trap);
//! - `echo`: behaves, passing every record on.
//!
//! `after` (default 0): behave for this many records first.
//! `only_key`: misbehave only on records with this key, and echo the others.

use std::cell::Cell;

use eddy_sdk::{Context, Record, RecordRef, Result, Value};
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

/// Misbehaves as the params say.
#[eddy_sdk::process]
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
        Mode::Echo => ctx.emit(&record.to_owned_record()),
    }
}
