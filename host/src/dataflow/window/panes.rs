//! Sliding windows of an aggregate, kept as panes.
//!
//! A sliding window of size `s` every `d` is made of panes of
//! `gcd(s, d)` ms, and every window starting in a pane's span holds it
//! whole. Instead of copying each record into its `s / d` windows, the
//! buffer keeps each record once, in its pane; a pane's records are folded
//! into one accumulator (at the latest when the first window holding it
//! fires), and a window that fires hands over the accumulators of its panes,
//! which the aggregate merges: each record is aggregated once, as Flink's
//! sliding window aggregation of the Table API does with slices. Results,
//! their ids, updates and late records are those of the window-by-window
//! layout.

use std::sync::Arc;

use eddy_abi::Record;
use serde::{Deserialize, Serialize};

use super::EncodedRecords;
use super::assigner::start_with_offset;
use super::buffer::{Added, OpenWindow, OpenWindows, WindowBuffer};
use super::due::Due;
use super::{FiredWindow, TimeWindows};
use crate::state::CowMap;

/// Which windows of which keys fired, as `(key, start)`.
type Keyed<T> = CowMap<(Arc<str>, i64), T>;

/// The pane layout of a buffer of sliding windows.
#[derive(Debug)]
pub(super) struct Panes {
    /// Pane length: `gcd(size, slide)`.
    length: i64,
    /// Panes start at `offset` plus multiples of `length`.
    offset: i64,
    size: i64,
    slide: i64,
    window_offset: i64,
    /// Firings so far of the windows that fired and are kept for lateness.
    firings: Keyed<u32>,
    /// `(end - 1 + lateness, key, start)` of those windows.
    forget_at: Due,
    /// `(end - 1, key, start)` of panes holding records not folded yet.
    unfolded: Due,
    /// The clock of the last advance: every window ending by it has fired.
    clock: i64,
}

/// Panes as checkpoints store them.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredPanes {
    panes: OpenWindows,
    firings: Vec<(Arc<str>, i64, u32)>,
    clock: i64,
}

/// Panes as a checkpoint writes them: shared with the buffer (taken in
/// constant time), written as [`StoredPanes`] reads them.
#[derive(Debug, Serialize)]
pub struct PanesSnapshot {
    panes: OpenWindows,
    firings: FiringsSnapshot,
    clock: i64,
}

/// The firings of a [`PanesSnapshot`], written as a sequence of
/// `(key, start, firings)`.
#[derive(Debug)]
struct FiringsSnapshot(Keyed<u32>);

impl PanesSnapshot {
    /// How many panes are open.
    pub fn open_windows(&self) -> usize {
        super::buffer::count_open(&self.panes)
    }
}

impl Serialize for FiringsSnapshot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for ((key, start), n) in self.0.iter() {
            seq.serialize_element(&(key, start, n))?;
        }
        seq.end()
    }
}

impl Panes {
    /// Panes for sliding windows; `None` for other windows.
    pub(super) fn new(windows: TimeWindows) -> Option<Self> {
        let TimeWindows::Sliding {
            size,
            slide,
            offset,
        } = windows
        else {
            return None;
        };
        let length = gcd(size, slide);
        Some(Panes {
            length,
            offset: offset.rem_euclid(length),
            size,
            slide,
            window_offset: offset,
            firings: Keyed::default(),
            forget_at: Due::default(),
            unfolded: Due::default(),
            clock: i64::MIN,
        })
    }

    /// The pane holding `time` (it fits the time range whenever a window
    /// holding `time` does).
    fn pane(&self, time: i64) -> (i64, i64) {
        let start = start_with_offset(time, self.offset, self.length);
        let start = i64::try_from(start).unwrap_or(i64::MIN);
        (start, start.saturating_add(self.length))
    }

    /// The end of the last window holding the pane that starts at `start`.
    fn last_end(&self, start: i64) -> i64 {
        let last = start_with_offset(start, self.window_offset, self.slide);
        i64::try_from(last + i128::from(self.size)).unwrap_or(i64::MAX)
    }
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

impl WindowBuffer {
    /// Adds a record to its pane; windows holding it that already fired
    /// (within the lateness) fire again at once.
    pub(super) fn add_to_pane(
        &mut self,
        record: &Record,
        time: i64,
        now: i64,
        fired: &mut Vec<FiredWindow>,
    ) -> Added {
        let lateness = self.lateness;
        let mut live = false;
        let mut again: Vec<(i64, i64)> = Vec::new();
        if let Err(outside) = self.windows.assign(time, |start, end| {
            if (end - 1).saturating_add(lateness) <= now {
                return;
            }
            live = true;
            if end - 1 <= now {
                again.push((start, end));
            }
        }) {
            return Added::Outside(outside);
        }
        if !live {
            return Added::Late;
        }
        let Some(panes) = &self.panes else {
            return Added::Late;
        };
        let (start, end) = panes.pane(time);
        let key = &record.key;
        let windows = match self.keys.get_mut(&**key) {
            Some(windows) => windows,
            None => self.keys.get_or_insert_with(key.clone(), Vec::new),
        };
        // The newest pane first: in-order input adds to it.
        let found = windows.iter().rposition(|w| w.start == start);
        // For a new pane: the key's newest pane before it, whose windows have their timers.
        let newest = match found {
            Some(_) => None,
            None => windows.iter().map(|w| w.start).max(),
        };
        let index = match found {
            Some(i) => i,
            None => {
                windows.push(OpenWindow::new(start, end, self.typical_bytes));
                windows.len() - 1
            }
        };
        let pane = &mut windows[index];
        Self::counted(&mut self.full, self.fold_records, key, pane);
        pane.encoded.push(record);
        if pane.count == 1 {
            self.unfolded(key, start, end);
        }
        if found.is_none() {
            self.schedule_pane(key, start, newest, now);
        }
        for (start, end) in again {
            fired.push(self.pane_window(key, start, end));
        }
        Added::Buffered
    }

    fn unfolded(&mut self, key: &Arc<str>, start: i64, end: i64) {
        if let Some(panes) = &mut self.panes {
            panes.unfolded.insert(end - 1, key.clone(), start);
        }
    }

    /// Timers of a new pane: the windows holding it that have not fired
    /// (those also holding the key's newest pane before it already have
    /// theirs), and its own removal after the last of them.
    fn schedule_pane(&mut self, key: &Arc<str>, start: i64, newest: Option<i64>, now: i64) {
        let Some(panes) = &self.panes else {
            return;
        };
        let fire_at = &mut self.fire_at;
        // The pane's windows fit: the record's did, and they are the same.
        let _ = self.windows.assign(start, |w_start, w_end| {
            if w_end - 1 > now && newest.is_none_or(|n| w_start > n || n > start) {
                fire_at.insert(w_end - 1, key.clone(), w_start);
            }
        });
        let clean = (panes.last_end(start) - 1).saturating_add(self.lateness);
        self.clean_at.insert(clean, key.clone(), start);
    }

    /// A firing of `key`'s window `[start, end)`: its panes' records and accumulators.
    fn pane_window(&mut self, key: &Arc<str>, start: i64, end: i64) -> FiredWindow {
        let lateness = self.lateness;
        let firing = match &mut self.panes {
            Some(panes) if lateness > 0 => {
                let firings = panes.firings.get_or_insert_with((key.clone(), start), || 0);
                let firing = *firings;
                *firings += 1;
                if firing == 0 {
                    panes
                        .forget_at
                        .insert((end - 1).saturating_add(lateness), key.clone(), start);
                }
                firing
            }
            _ => 0,
        };
        let mut window = FiredWindow {
            key: key.clone(),
            start,
            end,
            firing,
            count: 0,
            encoded: EncodedRecords::default(),
            accs: Vec::new(),
            number: 0,
        };
        if let Some(windows) = self.keys.get(&**key) {
            let holds = |p: &&OpenWindow| p.start >= start && p.end <= end;
            let mut take = |held: &mut dyn Iterator<Item = &OpenWindow>| {
                for pane in held {
                    window.count += pane.count;
                    window.encoded.extend_from(&pane.encoded);
                    window.accs.extend(pane.accs.iter().cloned());
                }
            };
            // In-order input keeps a key's panes in order of start.
            if windows.is_sorted_by_key(|p| p.start) {
                take(&mut windows.iter().filter(holds));
            } else {
                let mut held: Vec<&OpenWindow> = windows.iter().filter(holds).collect();
                held.sort_by_key(|p| p.start);
                take(&mut held.into_iter());
            }
        }
        window
    }

    /// Fires the windows due at `now`, drops the panes no window needs any
    /// more, and forgets the firings of windows past their lateness.
    pub(super) fn advance_panes(&mut self, now: i64, fired: &mut Vec<FiredWindow>) {
        let size = match &self.panes {
            Some(panes) => panes.size,
            None => return,
        };
        while let Some((_, key, start)) = self.fire_at.pop_due(now) {
            fired.push(self.pane_window(&key, start, start.saturating_add(size)));
        }
        while let Some((_, key, start)) = self.clean_at.pop_due(now) {
            self.remove(&key, start);
        }
        if let Some(panes) = &mut self.panes {
            while let Some((_, key, start)) = panes.forget_at.pop_due(now) {
                panes.firings.remove(&(key, start));
            }
            panes.clock = panes.clock.max(now);
        }
    }

    /// Takes out the records not yet folded of every pane that ends by `now`
    /// (so that windows firing at `now` find their panes folded), to be
    /// folded and put back with [`WindowBuffer::put_back`]. Nothing without panes.
    pub fn take_due_panes(&mut self, now: i64) -> Vec<FiredWindow> {
        let Some(panes) = &mut self.panes else {
            return Vec::new();
        };
        let mut due = Vec::new();
        while let Some((_, key, start)) = panes.unfolded.pop_due(now) {
            let Some(pane) = self
                .keys
                .get_mut(&*key)
                .and_then(|w| w.iter_mut().find(|w| w.start == start))
            else {
                continue;
            };
            if pane.count == 0 {
                continue;
            }
            due.push(pane.take_pending(&key));
        }
        due
    }

    /// Whether records are kept in panes.
    pub fn has_panes(&self) -> bool {
        self.panes.is_some()
    }

    /// The panes, for a checkpoint; `None` without panes.
    pub fn panes_snapshot(&self) -> Option<PanesSnapshot> {
        let panes = self.panes.as_ref()?;
        Some(PanesSnapshot {
            panes: self.keys.clone(),
            firings: FiringsSnapshot(panes.firings.clone()),
            clock: panes.clock,
        })
    }

    /// Takes back a checkpoint's panes with their timers. Fails without panes.
    pub fn restore_panes(&mut self, stored: StoredPanes) -> Result<(), String> {
        let Some(panes) = &mut self.panes else {
            return Err("its window kind changed; reset its state to start it afresh".into());
        };
        panes.clock = stored.clock;
        panes.unfolded.clear();
        panes.forget_at.clear();
        panes.firings = stored
            .firings
            .into_iter()
            .map(|(key, start, n)| ((key, start), n))
            .collect();
        let size = panes.size;
        for (key, start) in panes.firings.keys() {
            let end = start.saturating_add(size);
            panes
                .forget_at
                .insert((end - 1).saturating_add(self.lateness), key.clone(), *start);
        }
        self.fire_at.clear();
        self.clean_at.clear();
        self.keys = stored.panes;
        let clock = stored.clock;
        let keys: Vec<(Arc<str>, i64, i64, u32)> = self
            .keys
            .iter()
            .flat_map(|(key, panes)| panes.iter().map(|p| (key.clone(), p.start, p.end, p.count)))
            .collect();
        for (key, start, end, count) in keys {
            if count > 0 {
                self.unfolded(&key, start, end);
            }
            self.schedule_pane(&key, start, None, clock);
        }
        self.note_full();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The times of the records a window holds, from its accumulators and its records.
    fn times(w: &FiredWindow) -> Vec<i64> {
        let mut times: Vec<i64> = w
            .accs
            .iter()
            .flat_map(|acc| acc.chunks(8))
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        times.extend(w.records().iter().map(|r| r.time));
        times.sort_unstable();
        times
    }

    /// Folds as an aggregate whose accumulator is the times of its records.
    fn fold(buf: &mut WindowBuffer, pending: Vec<FiredWindow>) {
        for w in pending {
            let acc = times(&w).iter().flat_map(|t| t.to_le_bytes()).collect();
            buf.put_back(&w.key, w.start, vec![acc]);
        }
    }

    type Fired = Vec<(String, i64, i64, u32, Vec<i64>)>;

    /// Runs `input` (`(key, time)`) through sliding windows, as a window
    /// operator drives its buffer (compaction, panes folded before windows
    /// fire, a checkpoint and restore halfway); returns the firings and the
    /// late records.
    fn run(
        panes: bool,
        input: &[(u8, i64)],
        bound: i64,
        (size, slide, lateness): (u64, u64, u64),
    ) -> (Fired, Vec<(u8, i64)>) {
        let new = || {
            let buf = WindowBuffer::new(TimeWindows::sliding(size, slide, 0), lateness);
            let buf = if panes { buf.aggregating() } else { buf };
            buf.folding_every(3)
        };
        let mut buf = new();
        assert_eq!(buf.has_panes(), panes);
        let (mut fired, mut late) = (Vec::new(), Vec::new());
        let (mut watermark, mut max) = (i64::MIN, i64::MIN);
        for (i, &(key, time)) in input.iter().enumerate() {
            if i == input.len() / 2 {
                // A checkpoint and a restore into a new buffer.
                let mut restored = new();
                // Read back as recovery reads a checkpoint: as it goes.
                fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
                    crate::checkpoint::decode_from(&mut &bytes[..], bytes.len() as u64).unwrap()
                }
                if panes {
                    let bytes = postcard::to_allocvec(&buf.panes_snapshot().unwrap()).unwrap();
                    restored.restore_panes(decode(&bytes)).unwrap();
                } else {
                    let bytes = postcard::to_allocvec(buf.open()).unwrap();
                    restored.restore(decode(&bytes));
                }
                buf = restored;
            }
            let record = Record::new(format!("k{key}"), time);
            match buf.add(&record, time, watermark, &mut fired) {
                Added::Buffered => {}
                Added::Late => late.push((key, time)),
                Added::Outside(e) => panic!("{e}"),
            }
            let pending = buf.take_pending();
            fold(&mut buf, pending);
            max = max.max(time);
            if max - bound - 1 > watermark {
                watermark = max - bound - 1;
                let due = buf.take_due_panes(watermark);
                fold(&mut buf, due);
                buf.advance(watermark, &mut fired);
            }
        }
        let due = buf.take_due_panes(i64::MAX);
        fold(&mut buf, due);
        buf.advance(i64::MAX, &mut fired);
        assert_eq!(buf.open_windows(), 0, "everything fired and cleaned up");
        let fired = fired
            .iter()
            .map(|w| (w.key.to_string(), w.start, w.end, w.firing, times(w)))
            .collect();
        (fired, late)
    }

    proptest! {
        /// Panes give the very firings, updates and late records of the
        /// window-by-window layout, whatever the order of the input, the
        /// window sizes and the lateness.
        #[test]
        fn panes_fire_what_windows_fire(
            input in proptest::collection::vec((0u8..3, 0i64..6000), 1..120),
            bound in 0i64..800,
            size in 1u64..2500,
            slides in 1u64..6,
            lateness in prop_oneof![Just(0u64), 1u64..1500],
        ) {
            let slide = (size / slides).max(1);
            let windows = (size, slide, lateness);
            let by_window = run(false, &input, bound, windows);
            let by_pane = run(true, &input, bound, windows);
            prop_assert_eq!(by_pane, by_window);
        }
    }

    #[test]
    fn a_record_is_kept_once_whatever_the_windows_it_is_in() {
        let mut buf = WindowBuffer::new(TimeWindows::sliding(10_000, 1000, 0), 0).aggregating();
        let mut fired = Vec::new();
        for t in [100, 200, 1100] {
            buf.add(&Record::new("a", t), t, i64::MIN, &mut fired);
        }
        // Two panes, [0, 1000) and [1000, 2000), instead of 11 windows.
        assert_eq!(buf.open_windows(), 2);
        let due = buf.take_due_panes(999);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].start, due[0].end, due[0].count), (0, 1000, 2));
        fold(&mut buf, due);
        buf.advance(999, &mut fired);
        // [-9000, 1000) fired with the folded pane: one accumulator, no records.
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].start, fired[0].end), (-9000, 1000));
        assert_eq!((fired[0].accs.len(), fired[0].count), (1, 0));
        assert_eq!(times(&fired[0]), [100, 200]);
    }

    #[test]
    fn panes_are_as_long_as_the_greatest_common_divisor() {
        let panes = Panes::new(TimeWindows::sliding(1500, 1000, 250)).unwrap();
        assert_eq!((panes.length, panes.offset), (500, 250));
        assert_eq!(panes.pane(1300), (1250, 1750));
        // [1250, 2750) is the last window holding [1250, 1750).
        assert_eq!(panes.last_end(1250), 2750);
        assert!(Panes::new(TimeWindows::tumbling(1000, 0)).is_none());
    }
}
