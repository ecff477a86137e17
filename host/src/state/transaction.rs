//! Writes of one plugin call, applied only if the call succeeds.
//!
//! The transaction knows what committing it would change: how many values
//! and bytes of keyed state, and how many timers. The host checks those
//! against the operator's caps on every write, before anything is committed.

use std::collections::HashMap;
use std::sync::Arc;

use eddy_abi::TimeDomain;

use super::OperatorState;
use super::keyed::entry_bytes;

/// A `(namespace, key)` pair.
type StateKey = (Box<str>, Box<str>);

/// One timer: its clock, key and time.
type TimerKey = (TimeDomain, Arc<str>, i64);

/// Pending state writes and timer changes of one call; reads see them.
#[derive(Debug, Default)]
pub struct Transaction {
    /// `(namespace, key)` → the new value, or `None` for a delete.
    writes: HashMap<StateKey, Option<Vec<u8>>>,
    /// Timer → whether it ends up set; the last change to a timer wins.
    timers: HashMap<TimerKey, TimerOp>,
    /// What committing changes in keyed state: values and bytes.
    keys_delta: isize,
    bytes_delta: isize,
    /// What committing changes in the number of timers.
    timers_delta: isize,
}

/// A change to a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerOp {
    /// Set it.
    Set,
    /// Cancel it.
    Delete,
}

/// The size of a held value, as [`entry_bytes`] charges it; 0 when absent.
fn charged(key: &str, value: Option<usize>) -> isize {
    value.map_or(0, |len| entry_bytes(key, len) as isize)
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

    /// Records a write, or a delete with `None`.
    pub fn write(&mut self, state: &OperatorState, ns: &str, key: &str, value: Option<&[u8]>) {
        let slot = (Box::from(ns), Box::from(key));
        let before = match self.writes.get(&slot) {
            Some(pending) => pending.as_ref().map(Vec::len),
            None => state.keyed.held_len(ns, key),
        };
        let after = value.map(<[u8]>::len);
        self.bytes_delta += charged(key, after) - charged(key, before);
        self.keys_delta += isize::from(after.is_some()) - isize::from(before.is_some());
        match self.writes.get_mut(&slot) {
            Some(pending) => match (pending, value) {
                (Some(old), Some(new)) => {
                    old.clear();
                    old.extend_from_slice(new);
                }
                (pending, value) => *pending = value.map(<[u8]>::to_vec),
            },
            None => {
                self.writes.insert(slot, value.map(<[u8]>::to_vec));
            }
        }
    }

    /// Records a write.
    pub fn put(&mut self, state: &OperatorState, ns: &str, key: &str, value: &[u8]) {
        self.write(state, ns, key, Some(value));
    }

    /// Records a delete.
    pub fn delete(&mut self, state: &OperatorState, ns: &str, key: &str) {
        self.write(state, ns, key, None);
    }

    /// Records a timer being set or cancelled.
    pub fn timer(
        &mut self,
        state: &OperatorState,
        op: TimerOp,
        domain: TimeDomain,
        key: Arc<str>,
        time: i64,
    ) {
        let timer = (domain, key, time);
        let set_before = match self.timers.get(&timer) {
            Some(pending) => *pending == TimerOp::Set,
            None => state.timers.contains(domain, &timer.1, time),
        };
        self.timers_delta += isize::from(op == TimerOp::Set) - isize::from(set_before);
        self.timers.insert(timer, op);
    }

    /// How many values keyed state would hold after a commit.
    pub fn keys_after(&self, state: &OperatorState) -> usize {
        state.keyed.len().saturating_add_signed(self.keys_delta)
    }

    /// What keyed state would take after a commit, as the state cap counts it.
    pub fn bytes_after(&self, state: &OperatorState) -> usize {
        state.keyed.bytes().saturating_add_signed(self.bytes_delta)
    }

    /// How many timers would be set after a commit.
    pub fn timers_after(&self, state: &OperatorState) -> usize {
        state.timers.len().saturating_add_signed(self.timers_delta)
    }

    /// Applies every recorded change and empties the transaction.
    pub fn commit(&mut self, state: &mut OperatorState) {
        for ((ns, key), value) in self.writes.drain() {
            match value {
                Some(v) => state.keyed.put(&ns, &key, &v),
                None => state.keyed.delete(&ns, &key),
            }
        }
        for ((domain, key, time), op) in self.timers.drain() {
            match op {
                TimerOp::Set => state.timers.set(domain, key, time),
                TimerOp::Delete => state.timers.delete(domain, key, time),
            }
        }
        self.reset_deltas();
    }

    /// Forgets every recorded change.
    pub fn abort(&mut self) {
        self.writes.clear();
        self.timers.clear();
        self.reset_deltas();
    }

    fn reset_deltas(&mut self) {
        self.keys_delta = 0;
        self.bytes_delta = 0;
        self.timers_delta = 0;
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
        tx.put(&state, "n", "k", b"new");
        tx.timer(&state, TimerOp::Set, TimeDomain::EventTime, "k".into(), 5);
        assert_eq!(tx.get(&state, "n", "k"), Some(&b"new"[..]));
        tx.abort();
        assert_eq!(tx.get(&state, "n", "k"), Some(&b"old"[..]));
        assert!(!state.timers.event_time_due(10));

        tx.delete(&state, "n", "k");
        tx.timer(&state, TimerOp::Set, TimeDomain::EventTime, "k".into(), 5);
        tx.commit(&mut state);
        assert_eq!(state.keyed.get("n", "k"), None);
        assert!(state.timers.event_time_due(10));
    }

    #[test]
    fn what_a_commit_would_hold_is_known_before_it() {
        let mut state = OperatorState::in_memory();
        state.keyed.put("n", "a", b"12345");
        state.timers.set(TimeDomain::EventTime, "a".into(), 10);
        let mut tx = Transaction::default();
        // Overwrite a committed value, add one, add and delete another.
        tx.put(&state, "n", "a", b"1");
        tx.put(&state, "n", "b", b"22");
        tx.put(&state, "n", "c", b"333");
        tx.delete(&state, "n", "c");
        tx.delete(&state, "n", "never");
        // Set a timer twice, cancel the committed one, set and cancel another.
        for _ in 0..2 {
            tx.timer(&state, TimerOp::Set, TimeDomain::EventTime, "b".into(), 20);
        }
        tx.timer(
            &state,
            TimerOp::Delete,
            TimeDomain::EventTime,
            "a".into(),
            10,
        );
        tx.timer(
            &state,
            TimerOp::Set,
            TimeDomain::ProcessingTime,
            "c".into(),
            1,
        );
        tx.timer(
            &state,
            TimerOp::Delete,
            TimeDomain::ProcessingTime,
            "c".into(),
            1,
        );
        let (keys, bytes, timers) = (
            tx.keys_after(&state),
            tx.bytes_after(&state),
            tx.timers_after(&state),
        );
        tx.commit(&mut state);
        assert_eq!(keys, state.keyed.len());
        assert_eq!(bytes, state.keyed.bytes());
        assert_eq!(timers, state.timers.len());
        assert_eq!(
            (keys, bytes, timers),
            (2, entry_bytes("a", 1) + entry_bytes("b", 2), 1)
        );
    }
}
