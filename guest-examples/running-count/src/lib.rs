//! Running count per key, kept in the plugin's own memory rather than in the
//! host's keyed state, and carried across restarts by a memory snapshot
//! (`eddy_sdk::snapshot_state!`): the host saves it at every checkpoint and
//! hands it back when the pipeline starts again from one.
//!
//! Every `every`-th record of a key it emits `{count}` for that key, at that
//! record's time.
//!
//! ```toml
//! [operators.counts]
//! inputs = ["ups"]
//! plugin = "target/plugins/running_count.wasm"
//! params = { every = 100 }
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;

use eddy_sdk::{Context, Error, Record, RecordRef, Result};
use serde::Deserialize;

/// The operator's params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Emit a key's count every this many of its records.
    pub every: u64,
}

thread_local! {
    /// Records seen per key since the operator's state began.
    static COUNTS: RefCell<BTreeMap<String, u64>> = const { RefCell::new(BTreeMap::new()) };
}

/// Counts the record; emits the key's count every `every` records.
#[eddy_sdk::process(state_version = 1)]
pub fn running_count(record: &RecordRef<'_>, ctx: &mut Context<Params>) -> Result<()> {
    let count = COUNTS.with(|c| {
        let mut counts = c.borrow_mut();
        let count = counts.entry(record.key.to_owned()).or_default();
        *count += 1;
        *count
    });
    if count.is_multiple_of(ctx.params().every.max(1)) {
        ctx.emit(&Record::new(record.key, record.time).with("count", count as i64))?;
    }
    Ok(())
}

/// The counts, for a checkpoint.
fn save() -> Result<Vec<u8>> {
    COUNTS.with(|c| postcard::to_allocvec(&*c.borrow()).map_err(Error::from))
}

/// The counts of a checkpoint, back.
fn restore(bytes: &[u8]) -> Result<()> {
    let counts: BTreeMap<String, u64> = postcard::from_bytes(bytes)?;
    COUNTS.with(|c| *c.borrow_mut() = counts);
    Ok(())
}

eddy_sdk::snapshot_state!(save, restore);

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_sdk::native;

    #[test]
    fn counts_survive_a_snapshot_and_restore() {
        let mut ctx = Context::new(Params { every: 2 }, 0);
        let a = Record::new("a", 1);
        for _ in 0..3 {
            running_count(&a.as_ref(), &mut ctx).unwrap();
        }
        let saved = save().unwrap();
        restore(&postcard::to_allocvec(&BTreeMap::<String, u64>::new()).unwrap()).unwrap();
        restore(&saved).unwrap();
        running_count(&a.as_ref(), &mut ctx).unwrap();
        ctx.flush();
        let counts: Vec<_> = native::take_emitted()
            .into_iter()
            .map(|(_, r)| r.get("count").cloned())
            .collect();
        assert_eq!(
            counts,
            [Some(eddy_sdk::Value::I64(2)), Some(eddy_sdk::Value::I64(4))]
        );
    }
}
