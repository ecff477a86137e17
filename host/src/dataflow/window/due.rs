//! Timers of windows and panes: `(time, key, start)`, taken in order of
//! time, then key, then start, each at most once.
//!
//! Most timers of a buffer share a handful of times (every key's window
//! ends at the same millisecond), so they are kept by time, unordered
//! within a time until the first of them is due: a timer costs an append,
//! and each time's timers are sorted once, instead of each being placed
//! among thousands of others by comparing keys. A removed timer is noted,
//! and skipped when its time comes. Session windows, which remove a timer
//! at every merge, keep theirs in an ordered set instead.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

type Timer = (Arc<str>, i64);

/// The timers of one time.
#[derive(Debug, Default)]
pub(super) struct Slot {
    /// `(key, start)`; those before `next` were taken already.
    timers: Vec<Timer>,
    next: usize,
    /// Whether `timers[next..]` is in order and without repeats.
    sorted: bool,
    /// Timers removed since they were added: skipped, not taken.
    removed: HashSet<Timer, foldhash::fast::RandomState>,
}

impl Slot {
    fn sort(&mut self) {
        if !self.sorted {
            self.timers.drain(..self.next);
            self.next = 0;
            self.timers.sort_unstable();
            self.timers.dedup();
            self.sorted = true;
        }
    }

    fn is_empty(&self) -> bool {
        self.next == self.timers.len()
    }
}

/// Timers `(time, key, start)`, as a set ordered by time, key, then start.
#[derive(Debug)]
pub(super) enum Due {
    /// By time, for timers rarely removed. Never holds an empty slot.
    ByTime(BTreeMap<i64, Slot>),
    /// One ordered set, for timers often removed (sessions).
    Ordered(BTreeSet<(i64, Arc<str>, i64)>),
}

impl Default for Due {
    fn default() -> Self {
        Due::ByTime(BTreeMap::new())
    }
}

impl Due {
    /// Timers that are often removed before they are due (session windows
    /// that merge), or rarely.
    pub(super) fn new(often_removed: bool) -> Self {
        if often_removed {
            Due::Ordered(BTreeSet::new())
        } else {
            Due::default()
        }
    }

    /// Adds a timer (once: adding it again changes nothing).
    pub(super) fn insert(&mut self, time: i64, key: Arc<str>, start: i64) {
        let by_time = match self {
            Due::ByTime(by_time) => by_time,
            Due::Ordered(set) => {
                set.insert((time, key, start));
                return;
            }
        };
        let slot = by_time.entry(time).or_default();
        let timer = (key, start);
        if !slot.removed.is_empty() {
            slot.removed.remove(&timer);
        }
        match slot.timers.last() {
            // Kept in order by appending in order (or nothing to order yet).
            None => slot.sorted = true,
            Some(last) if slot.sorted && *last == timer => return,
            Some(last) => slot.sorted &= *last < timer,
        }
        slot.timers.push(timer);
    }

    /// Removes a timer, if it is set.
    pub(super) fn remove(&mut self, time: i64, key: &Arc<str>, start: i64) {
        match self {
            Due::ByTime(by_time) => {
                if let Some(slot) = by_time.get_mut(&time) {
                    slot.removed.insert((key.clone(), start));
                }
            }
            Due::Ordered(set) => {
                set.remove(&(time, key.clone(), start));
            }
        }
    }

    /// Takes the first timer if its time is at most `now`.
    pub(super) fn pop_due(&mut self, now: i64) -> Option<(i64, Arc<str>, i64)> {
        let by_time = match self {
            Due::ByTime(by_time) => by_time,
            Due::Ordered(set) => {
                let due = set.first().is_some_and(|(time, _, _)| *time <= now);
                return if due { set.pop_first() } else { None };
            }
        };
        loop {
            let mut first = by_time.first_entry()?;
            let time = *first.key();
            if time > now {
                return None;
            }
            let slot = first.get_mut();
            slot.sort();
            let mut taken = None;
            while taken.is_none() && !slot.is_empty() {
                let timer = slot.timers[slot.next].clone();
                slot.next += 1;
                if slot.removed.is_empty() || !slot.removed.remove(&timer) {
                    taken = Some(timer);
                }
            }
            if slot.is_empty() {
                first.remove();
            }
            if let Some((key, start)) = taken {
                return Some((time, key, start));
            }
        }
    }

    /// Removes every timer.
    pub(super) fn clear(&mut self) {
        match self {
            Due::ByTime(by_time) => by_time.clear(),
            Due::Ordered(set) => set.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The same operations on `Due` and on the ordered set it stands for
    /// give the same timers in the same order.
    #[test]
    fn timers_come_out_as_from_an_ordered_set() {
        for often_removed in [false, true] {
            same_as_an_ordered_set(Due::new(often_removed));
        }
    }

    fn same_as_an_ordered_set(mut due: Due) {
        let keys: Vec<Arc<str>> = ["b", "a", "c", "aa", "d"].map(Arc::from).to_vec();
        let mut seed = 12345u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let mut set = BTreeSet::new();
        let mut now = 0;
        for _ in 0..20_000 {
            let time = now + next(6) as i64;
            let key = keys[next(5) as usize].clone();
            let start = next(3) as i64;
            match next(10) {
                0..=5 => {
                    due.insert(time, key.clone(), start);
                    set.insert((time, key, start));
                }
                6 => {
                    due.remove(time, &key, start);
                    set.remove(&(time, key, start));
                }
                _ => {
                    now += next(2) as i64;
                    for _ in 0..next(8) {
                        let expected = set.first().filter(|(t, _, _)| *t <= now).cloned();
                        if expected.is_some() {
                            set.pop_first();
                        }
                        assert_eq!(due.pop_due(now), expected);
                    }
                }
            }
        }
        while let Some(expected) = set.pop_first() {
            assert_eq!(due.pop_due(i64::MAX), Some(expected));
        }
        assert_eq!(due.pop_due(i64::MAX), None);
        due.insert(1, keys[0].clone(), 0);
        due.clear();
        assert_eq!(due.pop_due(i64::MAX), None);
    }
}
