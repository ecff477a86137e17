//! The inputs of the guest entry points.
//!
//! Each input is generic over its containers so that the host can encode from
//! slices of owned values and a guest can decode into borrowed ones; both give
//! the same bytes (a sequence is a varint count then its items). The `…Ref`
//! aliases are the decoded, borrowed forms a guest reads.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::RecordRef;

/// Input of `process`: records in arrival order, and the operator's watermark
/// after the last of them.
///
/// Wire encoding: `watermark` (`i64`), then `records` (a sequence of records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInput<Rs> {
    /// The operator's event-time watermark once this batch is taken in.
    pub watermark: i64,
    /// The records.
    pub records: Rs,
}

/// Input of `window`: windows that fired, in firing order.
///
/// Wire encoding: `watermark` (`i64`), then `windows` (a sequence of [`Window`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowInput<Ws> {
    /// The watermark that fired the last of these windows.
    pub watermark: i64,
    /// The windows.
    pub windows: Ws,
}

/// One fired window of one key.
///
/// Wire encoding: `key` (string), `start`, `end` (`i64`), `firing` (`u32`),
/// `records` (a sequence of records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window<K, Rs> {
    /// The key whose records these are.
    pub key: K,
    /// First millisecond of the window (inclusive).
    pub start: i64,
    /// End of the window (exclusive); results are stamped `end - 1`.
    pub end: i64,
    /// 0 for the first firing of this window; `n > 0` for the n-th update of it,
    /// which replaces what earlier firings emitted.
    pub firing: u32,
    /// The window's records, in arrival order.
    pub records: Rs,
}

/// Input of `on_timer`: timers that came due, in time order.
///
/// Wire encoding: `watermark` (`i64`), then `timers` (a sequence of [`Timer`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimerInput<Ts> {
    /// The event-time watermark that made the event-time timers due.
    pub watermark: i64,
    /// The timers.
    pub timers: Ts,
}

/// One due timer.
///
/// Wire encoding: `key` (string), `time` (`i64`), `domain` ([`TimeDomain`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timer<K> {
    /// The key the timer was set for.
    pub key: K,
    /// The time it was set for.
    pub time: i64,
    /// Which clock it was set on.
    pub domain: TimeDomain,
}

/// Which clock a timer runs on. Also the raw `domain` argument of `timer_set`.
///
/// Wire encoding: a varint, `EventTime` = 0, `ProcessingTime` = 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimeDomain {
    /// Fires when the operator's watermark reaches the time.
    EventTime = 0,
    /// Fires when the host's wall clock reaches the time.
    ProcessingTime = 1,
}

impl TimeDomain {
    /// The domain for a raw `timer_set` argument.
    pub fn from_raw(raw: i32) -> Option<Self> {
        match raw {
            0 => Some(Self::EventTime),
            1 => Some(Self::ProcessingTime),
            _ => None,
        }
    }
}

/// Input of `aggregate`: groups of accumulators and records to fold.
///
/// Wire encoding: `groups` (a sequence of [`Group`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateInput<Gs> {
    /// The groups, each of which gets one new accumulator.
    pub groups: Gs,
}

/// One window's pending work: accumulators to merge (none means a new one), then records to add.
///
/// Wire encoding: `accs` (a sequence of byte strings), `records` (a sequence of records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group<As, Rs> {
    /// Accumulators the guest made earlier, to merge (sessions that merged).
    pub accs: As,
    /// Records to add.
    pub records: Rs,
}

/// Input of `result`: fired windows with their accumulators.
///
/// Wire encoding: `watermark` (`i64`), then `windows` (a sequence of [`AccWindow`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultInput<Ws> {
    /// The watermark that fired the last of these windows.
    pub watermark: i64,
    /// The windows.
    pub windows: Ws,
}

/// One fired window of one key, as its accumulator.
///
/// Wire encoding: `key` (string), `start`, `end` (`i64`), `firing` (`u32`), `acc` (byte string).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccWindow<K, A> {
    /// The key.
    pub key: K,
    /// First millisecond (inclusive).
    pub start: i64,
    /// End (exclusive).
    pub end: i64,
    /// 0 for the first firing, `n` for the n-th update.
    pub firing: u32,
    /// The accumulator.
    pub acc: A,
}

/// Input of `fold_result`: fired windows with their pending work, to fold
/// and emit the results of in one call.
///
/// Wire encoding: `watermark` (`i64`), then `windows` (a sequence of [`GroupWindow`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldResultInput<Ws> {
    /// The watermark that fired the last of these windows.
    pub watermark: i64,
    /// The windows.
    pub windows: Ws,
}

/// One fired window of one key, as the work still to fold into its result.
///
/// Wire encoding: `key` (string), `start`, `end` (`i64`), `firing` (`u32`),
/// then the fields of a [`Group`]: `accs` (a sequence of byte strings),
/// `records` (a sequence of records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupWindow<K, As, Rs> {
    /// The key.
    pub key: K,
    /// First millisecond (inclusive).
    pub start: i64,
    /// End (exclusive).
    pub end: i64,
    /// 0 for the first firing, `n` for the n-th update.
    pub firing: u32,
    /// Accumulators to merge (none means a new one).
    pub accs: As,
    /// Records to add.
    pub records: Rs,
}

/// A group as a guest decodes it.
pub type GroupRef<'a> = Group<Vec<&'a [u8]>, Vec<RecordRef<'a>>>;

/// A fired window as a guest decodes it for `result`.
pub type AccWindowRef<'a> = AccWindow<&'a str, &'a [u8]>;

/// A fired window as a guest decodes it for `fold_result`.
pub type GroupWindowRef<'a> = GroupWindow<&'a str, Vec<&'a [u8]>, Vec<RecordRef<'a>>>;

/// A `window` input as a guest decodes it.
pub type WindowRef<'a> = Window<&'a str, Vec<RecordRef<'a>>>;

/// A timer as a guest decodes it.
pub type TimerRef<'a> = Timer<&'a str>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Record;

    #[test]
    fn host_slices_decode_as_guest_vectors() {
        let records = [
            Record::new("a", 10).with("v", 1.0),
            Record::new("b", 11).with("v", 2.0),
        ];
        let window = Window {
            key: "a",
            start: 0,
            end: 1000,
            firing: 1,
            records: &records[..1],
        };
        let bytes = postcard::to_allocvec(&WindowInput {
            watermark: 999,
            windows: &[window][..],
        })
        .unwrap();
        let back: WindowInput<Vec<WindowRef<'_>>> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.watermark, 999);
        assert_eq!(back.windows.len(), 1);
        assert_eq!(back.windows[0].firing, 1);
        assert_eq!(back.windows[0].records[0].to_owned_record(), records[0]);

        let bytes = postcard::to_allocvec(&ProcessInput {
            watermark: 5,
            records: &records[..],
        })
        .unwrap();
        let back: ProcessInput<Vec<RecordRef<'_>>> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.records.len(), 2);
        assert_eq!(back.records[1].key, "b");

        let acc: &[u8] = &[7, 8];
        let window = GroupWindow {
            key: "a",
            start: 0,
            end: 1000,
            firing: 2,
            accs: &[acc][..],
            records: &records[..],
        };
        let bytes = postcard::to_allocvec(&FoldResultInput {
            watermark: 999,
            windows: &[window][..],
        })
        .unwrap();
        let back: FoldResultInput<Vec<GroupWindowRef<'_>>> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.windows[0].firing, 2);
        assert_eq!(back.windows[0].accs, [acc]);
        assert_eq!(back.windows[0].records[1].to_owned_record(), records[1]);
    }
}
