//! Writes of one plugin call, applied only if the call succeeds.

use std::collections::HashMap;
use std::sync::Arc;

use eddy_abi::TimeDomain;

use super::OperatorState;

/// A `(namespace, key)` pair.
type StateKey = (Box<str>, Box<str>);

/// Pending state writes and timer changes of one call; reads see them.
#[derive(Debug, Default)]
pub struct Transaction {
    /// `(namespace, key)` → the new value, or `None` for a delete.
    writes: HashMap<StateKey, Option<Vec<u8>>>,
    timers: Vec<(TimerOp, TimeDomain, Arc<str>, i64)>,
}

/// A change to a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerOp {
    /// Set it.
    Set,
    /// Cancel it.
    Delete,
}

impl Transaction {
    /// The value as this call sees it: its own writes first, then committed state.
    pub fn get<'a>(&'a self, state: &'a OperatorState, ns: &str, key: &str) -> Option<&'a [u8]> {
        if !self.writes.is_empty()
            && let Some(v) = self.writes.get(&(Box::from(ns), Box::from(key)))
        {
            return v.as_deref();
        }
        state.keyed.get(ns, key)
    }

    /// Records a write.
    pub fn put(&mut self, ns: &str, key: &str, value: &[u8]) {
        self.writes
            .insert((ns.into(), key.into()), Some(value.to_vec()));
    }

    /// Records a delete.
    pub fn delete(&mut self, ns: &str, key: &str) {
        self.writes.insert((ns.into(), key.into()), None);
    }

    /// Records a timer being set or cancelled.
    pub fn timer(&mut self, op: TimerOp, domain: TimeDomain, key: Arc<str>, time: i64) {
        self.timers.push((op, domain, key, time));
    }

    /// Applies every recorded change, in order, and empties the transaction.
    pub fn commit(&mut self, state: &mut OperatorState) {
        for ((ns, key), value) in self.writes.drain() {
            match value {
                Some(v) => state.keyed.put(&ns, &key, &v),
                None => state.keyed.delete(&ns, &key),
            }
        }
        for (op, domain, key, time) in self.timers.drain(..) {
            match op {
                TimerOp::Set => state.timers.set(domain, key, time),
                TimerOp::Delete => state.timers.delete(domain, key, time),
            }
        }
    }

    /// Forgets every recorded change.
    pub fn abort(&mut self) {
        self.writes.clear();
        self.timers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_own_writes_and_abort_leaves_state_alone() {
        let mut state = OperatorState::in_memory();
        state.keyed.put("n", "k", b"old");
        let mut tx = Transaction::default();
        tx.put("n", "k", b"new");
        tx.timer(TimerOp::Set, TimeDomain::EventTime, "k".into(), 5);
        assert_eq!(tx.get(&state, "n", "k"), Some(&b"new"[..]));
        tx.abort();
        assert_eq!(tx.get(&state, "n", "k"), Some(&b"old"[..]));
        assert!(!state.timers.event_time_due(10));

        tx.delete("n", "k");
        tx.timer(TimerOp::Set, TimeDomain::EventTime, "k".into(), 5);
        tx.commit(&mut state);
        assert_eq!(state.keyed.get("n", "k"), None);
        assert!(state.timers.event_time_due(10));
    }
}
