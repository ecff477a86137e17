//! Windows: which records are grouped together, and when a group fires.
//!
//! Time windows follow Flink's assigners and `EventTimeTrigger`:
//! [`TimeWindows`] assigns a record to tumbling, sliding or session windows;
//! [`WindowBuffer`] keeps each key's open windows (records kept already
//! encoded in the plugin ABI's format), fires a window when the clock reaches
//! its last millisecond, keeps it for the allowed lateness so that a late
//! record re-fires it as an update, merges sessions a record bridges, and
//! reports records later than that as late. [`CountWindows`] fire every
//! `slide` records of a key over its last `size` records.

mod assigner;
mod buffer;
mod count;
mod due;
mod panes;
mod records;

pub use assigner::{MAX_WINDOWS_PER_RECORD, TimeWindows, Unassignable};
pub use buffer::{Added, FOLD_RECORDS, OpenWindow, OpenWindows, WindowBuffer, count_open};
pub use count::{CountKeys, CountWindows, KeyRecords};
pub use panes::{PanesSnapshot, StoredPanes};
pub use records::EncodedRecords;

use std::sync::Arc;

use eddy_abi::{Record, encode};

use super::result_id::Cause;
use crate::config::{WindowConfig, WindowTime};

/// How a window operator groups records.
#[derive(Debug)]
pub enum Windowing {
    /// Time windows, on event time or on the wall clock.
    Time {
        /// The open windows.
        buffer: WindowBuffer,
        /// Which clock.
        time: WindowTime,
    },
    /// Count windows.
    Count(CountWindows),
}

impl Windowing {
    /// The windowing a config asks for, keeping fired event-time windows
    /// `lateness_ms` for late records; an `aggregate`'s sliding windows
    /// share panes. Says what is wrong with a bad config.
    pub fn new(config: &WindowConfig, lateness_ms: u64, aggregate: bool) -> Result<Self, String> {
        let positive = |name: &str, v: u64| {
            if v == 0 {
                Err(format!("{name} must be at least 1"))
            } else {
                Ok(v)
            }
        };
        let time = |windows, time: WindowTime| {
            let lateness = if time == WindowTime::Event {
                lateness_ms
            } else {
                0
            };
            let buffer = WindowBuffer::new(windows, lateness);
            Windowing::Time {
                buffer: if aggregate {
                    buffer.aggregating()
                } else {
                    buffer
                },
                time,
            }
        };
        Ok(match config {
            WindowConfig::Tumbling(t) => time(
                TimeWindows::tumbling(positive("size_ms", t.size_ms)?, t.offset_ms),
                t.time,
            ),
            WindowConfig::Sliding(s) => {
                let (size, slide) = (
                    positive("size_ms", s.size_ms)?,
                    positive("slide_ms", s.slide_ms)?,
                );
                if size.div_ceil(slide) > MAX_WINDOWS_PER_RECORD {
                    return Err(format!(
                        "size_ms / slide_ms puts each record in {} windows; at most {MAX_WINDOWS_PER_RECORD} are allowed",
                        size.div_ceil(slide)
                    ));
                }
                time(TimeWindows::sliding(size, slide, s.offset_ms), s.time)
            }
            WindowConfig::Session(s) => {
                time(TimeWindows::session(positive("gap_ms", s.gap_ms)?), s.time)
            }
            WindowConfig::Count(c) => {
                let size = positive("size", c.size)?;
                Windowing::Count(CountWindows::new(
                    size,
                    positive("slide", c.slide.unwrap_or(size))?,
                ))
            }
        })
    }
}

/// An aggregate's accumulator, as the plugin encoded it. Shared: the panes
/// of sliding windows hand theirs to every window holding them. Stored and
/// checkpointed as the bytes themselves (as a `Vec<u8>` would be).
pub type Accumulator = Arc<[u8]>;

/// A window that fired, with its records encoded back to back.
#[derive(Debug, Clone)]
pub struct FiredWindow {
    /// The key.
    pub key: Arc<str>,
    /// Start (inclusive).
    pub start: i64,
    /// End (exclusive).
    pub end: i64,
    /// 0 for the first firing; `n` for the n-th update, which replaces earlier ones.
    pub firing: u32,
    /// How many records.
    pub count: u32,
    /// The records, each encoded as in the plugin ABI. For an aggregate,
    /// only those not yet folded into `accs`.
    pub encoded: EncodedRecords,
    /// For an aggregate: accumulators so far (more than one after sessions
    /// merged, one per pane for sliding windows), shared with the open
    /// windows (or panes) they came from.
    pub accs: Vec<Accumulator>,
    /// For count windows: which of its key's windows this is (from 1); 0 for time windows.
    pub number: u64,
}

impl FiredWindow {
    /// What results of this firing derive from, for their ids.
    pub(crate) fn cause(&self) -> Cause {
        Cause::Window {
            key: self.key.clone(),
            start: self.start,
            end: self.end,
            firing: self.firing,
            number: self.number,
        }
    }

    /// Appends what every window input begins a window with: `key`,
    /// `start`, `end`, `firing`.
    pub fn encode_header(&self, out: &mut Vec<u8>) {
        encode::bytes(self.key.as_bytes(), out);
        encode::i64(self.start, out);
        encode::i64(self.end, out);
        encode::varint(u64::from(self.firing), out);
    }

    /// Bytes [`encode_header`](Self::encode_header) appends.
    pub fn header_len(&self) -> usize {
        encode::bytes_len(self.key.len())
            + encode::i64_len(self.start)
            + encode::i64_len(self.end)
            + encode::varint_len(u64::from(self.firing))
    }

    /// Appends this window to a plugin's `window` input (see `eddy_abi::Window`).
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_header(out);
        encode::varint(u64::from(self.count), out);
        self.encoded.write_to(out);
    }

    /// Bytes [`encode`](Self::encode) appends.
    pub fn encoded_len(&self) -> usize {
        self.header_len() + encode::varint_len(u64::from(self.count)) + self.encoded.len()
    }

    /// Bytes [`encode_group`](Self::encode_group) appends.
    pub fn group_len(&self) -> usize {
        encode::varint_len(self.accs.len() as u64)
            + self
                .accs
                .iter()
                .map(|a| encode::bytes_len(a.len()))
                .sum::<usize>()
            + encode::varint_len(u64::from(self.count))
            + self.encoded.len()
    }

    /// Appends this window to an aggregate's `aggregate` input (see `eddy_abi::Group`).
    pub fn encode_group(&self, out: &mut Vec<u8>) {
        encode::varint(self.accs.len() as u64, out);
        for acc in &self.accs {
            encode::bytes(acc, out);
        }
        encode::varint(u64::from(self.count), out);
        self.encoded.write_to(out);
    }

    /// Bytes [`encode_group_window`](Self::encode_group_window) appends.
    pub fn group_window_len(&self) -> usize {
        self.header_len() + self.group_len()
    }

    /// Appends this window to an aggregate's `fold_result` input (see
    /// `eddy_abi::GroupWindow`): the window, then its group.
    pub fn encode_group_window(&self, out: &mut Vec<u8>) {
        self.encode_header(out);
        self.encode_group(out);
    }

    /// The records, decoded again (for the dead-letter log).
    pub fn records(&self) -> Vec<Record> {
        let mut records = Vec::with_capacity(self.count as usize);
        for piece in self.encoded.pieces() {
            let mut rest = piece;
            while let Ok((record, tail)) = postcard::take_from_bytes::<Record>(rest) {
                records.push(record);
                rest = tail;
            }
        }
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fired_window_encodes_as_the_abi_window() {
        let records = [Record::new("k", 5).with("v", 1.0), Record::new("k", 7)];
        let mut encoded = Vec::new();
        for r in &records {
            encode::record(r, &mut encoded);
        }
        let fired = FiredWindow {
            key: "k".into(),
            start: 0,
            end: 10,
            firing: 2,
            count: 2,
            encoded: encoded.into(),
            accs: Vec::new(),
            number: 0,
        };
        let mut ours = Vec::new();
        fired.encode(&mut ours);
        let theirs = postcard::to_allocvec(&eddy_abi::Window {
            key: "k",
            start: 0,
            end: 10,
            firing: 2u32,
            records: &records[..],
        })
        .unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(fired.records(), records);
    }

    #[test]
    fn the_lengths_of_a_fired_window_are_those_it_encodes_to() {
        let mut encoded = Vec::new();
        for i in 0..200 {
            encode::record(
                &Record::new("k", i * 1000).with("v", "x".repeat(i as usize).as_str()),
                &mut encoded,
            );
        }
        for (start, firing, key, accs) in [
            (0, 0, "k".to_owned(), vec![]),
            (
                -1_700_000_000_000,
                300,
                "k".repeat(200),
                vec![vec![1; 3], vec![2; 200]],
            ),
            (i64::MAX - 1, u32::MAX, String::new(), vec![vec![]]),
        ] {
            let fired = FiredWindow {
                key: key.into(),
                start,
                end: start.saturating_add(1000),
                firing,
                count: 200,
                encoded: encoded.clone().into(),
                accs: accs.into_iter().map(Accumulator::from).collect(),
                number: 0,
            };
            let mut out = Vec::new();
            fired.encode(&mut out);
            assert_eq!(fired.encoded_len(), out.len());
            out.clear();
            fired.encode_group(&mut out);
            assert_eq!(fired.group_len(), out.len());
        }
    }
}
