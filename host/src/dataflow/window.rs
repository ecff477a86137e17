//! Event-time windows: assignment, buffering per key, and firing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use eddy_abi::Record;

/// Tumbling windows of `size` ms, aligned to the epoch plus `offset` ms.
#[derive(Debug, Clone, Copy)]
pub struct Tumbling {
    size: i64,
    offset: i64,
}

impl Tumbling {
    /// Windows of `size_ms` (at least 1), shifted by `offset_ms`.
    pub fn new(size_ms: u64, offset_ms: i64) -> Self {
        let size = size_ms.clamp(1, i64::MAX as u64) as i64;
        Tumbling {
            size,
            offset: offset_ms.rem_euclid(size),
        }
    }

    /// The `[start, end)` of the window holding `time` (Flink's
    /// `TimeWindow.getWindowStartWithOffset`).
    pub fn assign(&self, time: i64) -> (i64, i64) {
        let start = time - (time - self.offset).rem_euclid(self.size);
        (start, start.saturating_add(self.size))
    }
}

/// A window that fired, with its records in arrival order.
#[derive(Debug)]
pub struct FiredWindow {
    /// The key.
    pub key: Arc<str>,
    /// Start (inclusive).
    pub start: i64,
    /// End (exclusive).
    pub end: i64,
    /// Its records.
    pub records: Vec<Record>,
}

/// Open windows per key, and the order they fire in.
#[derive(Debug, Default)]
pub struct WindowBuffer {
    open: HashMap<(Arc<str>, i64), Vec<Record>>,
    /// `(end - 1, key, start)`: fires when the watermark reaches `end - 1`.
    due: BTreeSet<(i64, Arc<str>, i64)>,
}

impl WindowBuffer {
    /// Adds a record to the window `[start, end)` of its key.
    pub fn add(&mut self, start: i64, end: i64, record: Record) {
        match self.open.get_mut(&(record.key.clone(), start)) {
            Some(records) => records.push(record),
            None => {
                self.due.insert((end - 1, record.key.clone(), start));
                self.open.insert((record.key.clone(), start), vec![record]);
            }
        }
    }

    /// Removes the windows the watermark fires, in order of end, then key.
    pub fn fire(&mut self, watermark: i64, fired: &mut Vec<FiredWindow>) {
        while self
            .due
            .first()
            .is_some_and(|(last, _, _)| *last <= watermark)
        {
            let Some((last, key, start)) = self.due.pop_first() else {
                break;
            };
            let records = self.open.remove(&(key.clone(), start)).unwrap_or_default();
            fired.push(FiredWindow {
                key,
                start,
                end: last + 1,
                records,
            });
        }
    }

    /// How many windows are open.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_assignment_matches_flink() {
        let w = Tumbling::new(1000, 0);
        assert_eq!(w.assign(0), (0, 1000));
        assert_eq!(w.assign(999), (0, 1000));
        assert_eq!(w.assign(1000), (1000, 2000));
        assert_eq!(w.assign(-1), (-1000, 0));
        let shifted = Tumbling::new(1000, 250);
        assert_eq!(shifted.assign(100), (-750, 250));
        assert_eq!(shifted.assign(250), (250, 1250));
    }

    #[test]
    fn a_window_fires_when_the_watermark_reaches_its_last_millisecond() {
        let w = Tumbling::new(1000, 0);
        let mut buf = WindowBuffer::default();
        for (key, t) in [("b", 10), ("a", 20), ("a", 1500), ("b", 999)] {
            let (s, e) = w.assign(t);
            buf.add(s, e, Record::new(key, t));
        }
        let mut fired = Vec::new();
        buf.fire(998, &mut fired);
        assert!(fired.is_empty());
        buf.fire(999, &mut fired);
        let got: Vec<(&str, i64, usize)> = fired
            .iter()
            .map(|f| (&*f.key, f.start, f.records.len()))
            .collect();
        assert_eq!(got, [("a", 0, 1), ("b", 0, 2)]);
        assert_eq!(buf.open_windows(), 1);
    }
}
