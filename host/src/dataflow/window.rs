//! Event-time windows: assignment, buffering per key, and firing.
//!
//! A window's records are kept already encoded in the plugin ABI's format:
//! each record is encoded once when it arrives and its memory released, and
//! firing a window copies bytes instead of serializing records. Window state
//! is therefore small, and is plain bytes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use eddy_abi::{Record, encode};

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

/// A window that fired, with its records encoded back to back in arrival order.
#[derive(Debug)]
pub struct FiredWindow {
    /// The key.
    pub key: Arc<str>,
    /// Start (inclusive).
    pub start: i64,
    /// End (exclusive).
    pub end: i64,
    /// How many records.
    pub count: u32,
    /// The records, each encoded as in the plugin ABI.
    pub encoded: Vec<u8>,
}

impl FiredWindow {
    /// Appends this window to a plugin's `window` input (see `eddy_abi::Window`).
    pub fn encode(&self, firing: u32, out: &mut Vec<u8>) {
        encode::bytes(self.key.as_bytes(), out);
        encode::i64(self.start, out);
        encode::i64(self.end, out);
        encode::varint(u64::from(firing), out);
        encode::varint(u64::from(self.count), out);
        out.extend_from_slice(&self.encoded);
    }

    /// The records, decoded again (for the dead-letter log).
    pub fn records(&self) -> Vec<Record> {
        let mut records = Vec::with_capacity(self.count as usize);
        let mut rest = &self.encoded[..];
        while let Ok((record, tail)) = postcard::take_from_bytes::<Record>(rest) {
            records.push(record);
            rest = tail;
        }
        records
    }
}

/// One key's open window.
#[derive(Debug)]
struct OpenWindow {
    start: i64,
    count: u32,
    encoded: Vec<u8>,
}

/// Open windows per key, and the order they fire in.
#[derive(Debug, Default)]
pub struct WindowBuffer {
    open: HashMap<Arc<str>, Vec<OpenWindow>, foldhash::fast::RandomState>,
    /// `(end - 1, key, start)`: fires when the watermark reaches `end - 1`.
    due: BTreeSet<(i64, Arc<str>, i64)>,
    /// Encoded size of the last window fired: new windows start with room
    /// for about as much, instead of growing by doubling.
    typical_bytes: usize,
}

impl WindowBuffer {
    /// Adds a record to the window `[start, end)` of its key.
    pub fn add(&mut self, start: i64, end: i64, record: &Record) {
        let windows = match self.open.get_mut(&*record.key) {
            Some(windows) => windows,
            None => self.open.entry(record.key.clone()).or_default(),
        };
        let window = match windows.iter_mut().position(|w| w.start == start) {
            Some(i) => &mut windows[i],
            None => {
                self.due.insert((end - 1, record.key.clone(), start));
                windows.push(OpenWindow {
                    start,
                    count: 0,
                    encoded: Vec::with_capacity(self.typical_bytes),
                });
                windows.last_mut().expect("just pushed")
            }
        };
        window.count += 1;
        encode::record(record, &mut window.encoded);
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
            let Some(windows) = self.open.get_mut(&key) else {
                continue;
            };
            let Some(i) = windows.iter().position(|w| w.start == start) else {
                continue;
            };
            let window = windows.swap_remove(i);
            if windows.is_empty() {
                self.open.remove(&key);
            }
            self.typical_bytes = window.encoded.len() + window.encoded.len() / 8;
            fired.push(FiredWindow {
                key,
                start,
                end: last + 1,
                count: window.count,
                encoded: window.encoded,
            });
        }
    }

    /// How many windows are open.
    pub fn open_windows(&self) -> usize {
        self.open.values().map(Vec::len).sum()
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
            buf.add(s, e, &Record::new(key, t).with("v", t as f64));
        }
        let mut fired = Vec::new();
        buf.fire(998, &mut fired);
        assert!(fired.is_empty());
        buf.fire(999, &mut fired);
        let got: Vec<(&str, i64, u32)> =
            fired.iter().map(|f| (&*f.key, f.start, f.count)).collect();
        assert_eq!(got, [("a", 0, 1), ("b", 0, 2)]);
        assert_eq!(
            fired[1].records(),
            [
                Record::new("b", 10).with("v", 10.0),
                Record::new("b", 999).with("v", 999.0)
            ]
        );
        assert_eq!(buf.open_windows(), 1);
    }

    #[test]
    fn a_fired_window_encodes_as_the_abi_window() {
        let mut buf = WindowBuffer::default();
        let records = [Record::new("k", 5).with("v", 1.0), Record::new("k", 7)];
        for r in &records {
            buf.add(0, 10, r);
        }
        let mut fired = Vec::new();
        buf.fire(9, &mut fired);
        let mut ours = Vec::new();
        fired[0].encode(2, &mut ours);
        let theirs = postcard::to_allocvec(&eddy_abi::Window {
            key: "k",
            start: 0,
            end: 10,
            firing: 2u32,
            records: &records[..],
        })
        .unwrap();
        assert_eq!(ours, theirs);
    }
}
