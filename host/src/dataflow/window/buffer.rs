//! Open time windows per key: buffering, firing, lateness, session merging.

use std::sync::Arc;

use eddy_abi::Record;

use serde::{Deserialize, Serialize};

use super::assigner::Unassignable;
use super::due::Due;
use super::panes::Panes;
use super::{Accumulator, EncodedRecords, FiredWindow, TimeWindows};
use crate::state::CowMap;

/// Open windows by key, as checkpoints store them; a clone is a snapshot
/// taken in constant time.
pub type OpenWindows = CowMap<Arc<str>, Vec<OpenWindow>>;

/// An aggregate's open window (or pane) is folded once it holds this many
/// unfolded records.
pub const FOLD_RECORDS: u32 = 64;

/// How many windows (or panes) `keys` holds.
pub fn count_open(keys: &OpenWindows) -> usize {
    keys.values().map(Vec::len).sum()
}

/// What became of a record handed to [`WindowBuffer::add`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// It is in at least one window.
    Buffered,
    /// Every window it belongs to is past its allowed lateness: it goes to the late output.
    Late,
    /// Its windows do not fit the time range: it goes to the dead-letter log.
    Outside(Unassignable),
}

/// One key's open window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenWindow {
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) count: u32,
    pub(super) encoded: EncodedRecords,
    /// Times it fired so far.
    pub(super) firings: u32,
    /// For an aggregate: accumulators of the records folded so far.
    pub(super) accs: Vec<Accumulator>,
}

impl OpenWindow {
    /// An empty window (or pane) `[start, end)`, expecting about `bytes` of records.
    pub(super) fn new(start: i64, end: i64, bytes: usize) -> Self {
        OpenWindow {
            start,
            end,
            count: 0,
            encoded: EncodedRecords::expecting(bytes),
            firings: 0,
            accs: Vec::new(),
        }
    }

    /// Its records not folded yet (with its accumulators), taken out to be folded.
    pub(super) fn take_pending(&mut self, key: &Arc<str>) -> FiredWindow {
        FiredWindow {
            key: key.clone(),
            start: self.start,
            end: self.end,
            firing: self.firings,
            count: std::mem::take(&mut self.count),
            encoded: std::mem::take(&mut self.encoded),
            accs: std::mem::take(&mut self.accs),
            number: 0,
        }
    }
}

/// Open time windows per key, and the timers that fire and clean them up.
///
/// `add` and `advance` take the current time of the operator's clock: its
/// event-time watermark, or the wall clock for processing-time windows.
/// Following Flink's `EventTimeTrigger` with allowed lateness `L`:
/// - a window fires when the clock reaches `end - 1`;
/// - it is kept until the clock reaches `end - 1 + L`; a record for it before
///   then is added and fires it again at once, as update `firing = n`;
/// - a record all of whose windows are past `end - 1 + L` is late.
#[derive(Debug)]
pub struct WindowBuffer {
    pub(super) windows: TimeWindows,
    pub(super) lateness: i64,
    /// Open windows by key (with panes: open panes).
    pub(super) keys: OpenWindows,
    /// `(end - 1, key, start)` of windows that have not fired on time yet.
    pub(super) fire_at: Due,
    /// `(end - 1 + lateness, key, start)` of windows kept for late records
    /// (with panes: of panes, after the last window holding them).
    pub(super) clean_at: Due,
    /// Encoded size of the last window fired: new windows expect about as
    /// much, and size their room by it instead of growing by doubling.
    pub(super) typical_bytes: usize,
    /// For an aggregate's sliding windows: records kept once, in panes.
    pub(super) panes: Option<Box<Panes>>,
    /// A window (or pane) is taken out to be folded once it holds this
    /// many unfolded records (`u32::MAX`: never).
    pub(super) fold_records: u32,
    /// `(key, start)` of the windows (or panes) that reached `fold_records`
    /// since the last [`WindowBuffer::take_pending`], so that it does not
    /// look through every key. Some may have fired or been taken since.
    pub(super) full: Vec<(Arc<str>, i64)>,
}

impl WindowBuffer {
    /// A buffer for these windows, keeping fired windows `lateness_ms` for late records.
    pub fn new(windows: TimeWindows, lateness_ms: u64) -> Self {
        WindowBuffer {
            windows,
            lateness: lateness_ms.min(i64::MAX as u64 / 2) as i64,
            keys: OpenWindows::default(),
            // Sessions remove their timers at every merge.
            fire_at: Due::new(windows.merging()),
            clean_at: Due::new(windows.merging()),
            typical_bytes: 0,
            panes: None,
            fold_records: u32::MAX,
            full: Vec::new(),
        }
    }

    /// For an aggregate: sliding windows keep each record once, in a pane
    /// the windows share (see `panes.rs`); other windows are unchanged.
    /// Windows are folded every [`FOLD_RECORDS`] records.
    pub fn aggregating(mut self) -> Self {
        self.panes = Panes::new(self.windows).map(Box::new);
        self.folding_every(FOLD_RECORDS)
    }

    /// Windows (or panes) are taken out by [`WindowBuffer::take_pending`]
    /// once they hold `records` unfolded records.
    pub fn folding_every(mut self, records: u32) -> Self {
        self.fold_records = records.max(1);
        self
    }

    /// Counts a record added to `key`'s window (or pane) `window`, noting
    /// it when it has gathered enough records to be folded.
    pub(super) fn counted(
        full: &mut Vec<(Arc<str>, i64)>,
        fold_records: u32,
        key: &Arc<str>,
        window: &mut OpenWindow,
    ) {
        window.count += 1;
        if window.count == fold_records {
            full.push((key.clone(), window.start));
        }
    }

    fn late(&self, end: i64, now: i64) -> bool {
        (end - 1).saturating_add(self.lateness) <= now
    }

    /// Adds a record assigned at `time` (its event time, or the wall clock),
    /// when the operator's clock reads `now`. Windows it fires again (late
    /// records within the lateness) are appended to `fired`.
    pub fn add(
        &mut self,
        record: &Record,
        time: i64,
        now: i64,
        fired: &mut Vec<FiredWindow>,
    ) -> Added {
        if self.windows.merging() {
            return self.add_to_session(record, time, now, fired);
        }
        if self.panes.is_some() {
            return self.add_to_pane(record, time, now, fired);
        }
        let mut added = Added::Late;
        let windows = self.windows;
        let assigned = windows.assign(time, |start, end| {
            if self.late(end, now) {
                return;
            }
            added = Added::Buffered;
            self.add_to_window(record, start, end, now, fired);
        });
        match assigned {
            Ok(()) => added,
            Err(outside) => Added::Outside(outside),
        }
    }

    /// Sessions: the record's own window, merged with every window of its key
    /// that it overlaps (Flink's `TimeWindow.intersects` and `mergeWindows`).
    fn add_to_session(
        &mut self,
        record: &Record,
        time: i64,
        now: i64,
        fired: &mut Vec<FiredWindow>,
    ) -> Added {
        let (mut start, mut end) = (0, 0);
        if let Err(outside) = self.windows.assign(time, |s, e| (start, end) = (s, e)) {
            return Added::Outside(outside);
        }
        let open = self.keys.get(&*record.key).map_or(&[][..], |w| &w[..]);
        let overlapping: Vec<usize> = open
            .iter()
            .enumerate()
            .filter(|(_, w)| w.start <= end && w.end >= start)
            .map(|(i, _)| i)
            .collect();
        for &i in &overlapping {
            start = start.min(open[i].start);
            end = end.max(open[i].end);
        }
        if self.late(end, now) {
            return Added::Late;
        }
        let index = if overlapping.is_empty() {
            self.window(&record.key, start, end)
        } else {
            self.merge(&record.key, &overlapping, start, end)
        };
        self.push(record, index, now, fired);
        Added::Buffered
    }

    /// Replaces windows `merged` of `key` by one `[start, end)` holding all
    /// their records (in order of start) and the most firings any of them had.
    fn merge(&mut self, key: &Arc<str>, merged: &[usize], start: i64, end: i64) -> usize {
        let lateness = self.lateness;
        let windows = self.keys.get_mut(&**key).expect("merged windows exist");
        let mut parts: Vec<OpenWindow> = Vec::with_capacity(merged.len());
        for &i in merged.iter().rev() {
            parts.push(windows.swap_remove(i));
        }
        parts.sort_by_key(|w| w.start);
        for part in &parts {
            self.fire_at.remove(part.end - 1, key, part.start);
            self.clean_at
                .remove((part.end - 1).saturating_add(lateness), key, part.start);
        }
        let mut window = OpenWindow {
            start,
            end,
            count: 0,
            encoded: EncodedRecords::default(),
            firings: 0,
            accs: Vec::new(),
        };
        for part in parts {
            window.count += part.count;
            window.encoded.extend_from(&part.encoded);
            window.firings = window.firings.max(part.firings);
            window.accs.extend(part.accs);
        }
        self.schedule(key, start, end);
        if window.count >= self.fold_records {
            self.full.push((key.clone(), start));
        }
        let windows = self.keys.get_mut(&**key).expect("key exists");
        windows.push(window);
        windows.len() - 1
    }

    /// The index of `key`'s window `[start, end)`, created if needed.
    fn window(&mut self, key: &Arc<str>, start: i64, end: i64) -> usize {
        let windows = match self.keys.get_mut_shared(key) {
            Some(windows) => windows,
            None => self.keys.get_or_insert_with(key.clone(), Vec::new),
        };
        if let Some(i) = windows
            .iter()
            .position(|w| w.start == start && w.end == end)
        {
            return i;
        }
        windows.push(OpenWindow::new(start, end, self.typical_bytes));
        let index = windows.len() - 1;
        self.schedule(key, start, end);
        index
    }

    /// Adds the record to its key's window `[start, end)`, created if
    /// needed, with one lookup of the key; fires the window at once if the
    /// clock is already past its end (a late record within the lateness).
    fn add_to_window(
        &mut self,
        record: &Record,
        start: i64,
        end: i64,
        now: i64,
        fired: &mut Vec<FiredWindow>,
    ) {
        let key = &record.key;
        let windows = match self.keys.get_mut_shared(key) {
            Some(windows) => windows,
            None => self.keys.get_or_insert_with(key.clone(), Vec::new),
        };
        let found = windows
            .iter()
            .position(|w| w.start == start && w.end == end);
        let index = found.unwrap_or_else(|| {
            windows.push(OpenWindow::new(start, end, self.typical_bytes));
            windows.len() - 1
        });
        let window = &mut windows[index];
        Self::counted(&mut self.full, self.fold_records, key, window);
        window.encoded.push(record);
        let fire_now = end - 1 <= now;
        if fire_now {
            fired.push(fire(key, window));
        }
        if found.is_none() {
            self.schedule(key, start, end);
        }
        if fire_now {
            self.fire_at.remove(end - 1, key, start);
        }
    }

    /// Sets the timers of window `[start, end)`: fire at `end - 1` (a window
    /// already past it fires as soon as a record is added), clean up after
    /// the lateness.
    fn schedule(&mut self, key: &Arc<str>, start: i64, end: i64) {
        self.fire_at.insert(end - 1, key.clone(), start);
        if self.lateness > 0 {
            self.clean_at
                .insert((end - 1).saturating_add(self.lateness), key.clone(), start);
        }
    }

    /// Adds the record to window `index` of its key; fires it at once if the
    /// clock is already past its end (a late record within the lateness).
    fn push(&mut self, record: &Record, index: usize, now: i64, fired: &mut Vec<FiredWindow>) {
        let Some(windows) = self.keys.get_mut_shared(&record.key) else {
            return;
        };
        let window = &mut windows[index];
        Self::counted(&mut self.full, self.fold_records, &record.key, window);
        window.encoded.push(record);
        if window.end - 1 <= now {
            self.fire_at
                .remove(window.end - 1, &record.key, window.start);
            fired.push(fire(&record.key, window));
        }
    }

    /// Moves the clock to `now`: fires the windows that came due, in order of
    /// end then key, and drops those past their lateness.
    pub fn advance(&mut self, now: i64, fired: &mut Vec<FiredWindow>) {
        if self.panes.is_some() {
            return self.advance_panes(now, fired);
        }
        while let Some((_, key, start)) = self.fire_at.pop_due(now) {
            let Some(windows) = self.keys.get_mut(&key) else {
                continue;
            };
            let Some(i) = windows.iter().position(|w| w.start == start) else {
                continue;
            };
            self.typical_bytes = windows[i].encoded.len() + windows[i].encoded.len() / 8;
            if self.lateness == 0 {
                // Nothing can update it any more: hand over its records instead of a copy.
                let mut window = windows.swap_remove(i);
                if windows.is_empty() {
                    self.keys.remove(&key);
                }
                let encoded = std::mem::take(&mut window.encoded);
                fired.push(FiredWindow {
                    encoded,
                    ..fire(&key, &mut window)
                });
            } else {
                fired.push(fire(&key, &mut windows[i]));
            }
        }
        while let Some((_, key, start)) = self.clean_at.pop_due(now) {
            self.remove(&key, start);
        }
    }

    pub(super) fn remove(&mut self, key: &Arc<str>, start: i64) {
        if let Some(windows) = self.keys.get_mut_shared(key) {
            // Windows of a key have distinct starts; the oldest goes first.
            if let Some(i) = windows.iter().position(|w| w.start == start) {
                windows.remove(i);
            }
            if windows.is_empty() {
                self.keys.remove(&**key);
            }
        }
    }

    /// For an aggregate: takes out the records not yet folded (with the
    /// accumulators) of every open window (or pane) holding at least
    /// [`WindowBuffer::folding_every`] of them, to be folded and put back
    /// with [`WindowBuffer::put_back`].
    pub fn take_pending(&mut self) -> Vec<FiredWindow> {
        let mut pending = Vec::new();
        for (key, start) in std::mem::take(&mut self.full) {
            let window = self
                .keys
                .get_mut(&*key)
                .and_then(|windows| windows.iter_mut().find(|w| w.start == start));
            if let Some(w) = window.filter(|w| w.count >= self.fold_records) {
                pending.push(w.take_pending(&key));
            }
        }
        pending
    }

    /// Notes the restored windows (or panes) that hold enough records to be folded.
    pub(super) fn note_full(&mut self) {
        self.full = self
            .keys
            .iter()
            .flat_map(|(key, windows)| {
                windows
                    .iter()
                    .filter(|w| w.count >= self.fold_records)
                    .map(|w| (key.clone(), w.start))
            })
            .collect();
    }

    /// Puts back a window's accumulators after folding (or, if folding
    /// failed, the ones it had); records added since stay pending.
    pub fn put_back(&mut self, key: &Arc<str>, start: i64, mut accs: Vec<Accumulator>) {
        if let Some(w) = self
            .keys
            .get_mut(&**key)
            .and_then(|windows| windows.iter_mut().find(|w| w.start == start))
        {
            accs.append(&mut w.accs);
            w.accs = accs;
        }
    }

    /// The open windows, for a checkpoint.
    pub fn open(&self) -> &OpenWindows {
        &self.keys
    }

    /// Takes back the open windows of a checkpoint, with their timers: a
    /// window that has not fired fires at its end, and with allowed lateness
    /// every window is cleaned up after it. A checkpoint of sliding windows
    /// kept window by window (before panes) goes on that way.
    pub fn restore(&mut self, keys: OpenWindows) {
        self.panes = None;
        self.fire_at.clear();
        self.clean_at.clear();
        for (key, windows) in keys.iter() {
            for w in windows {
                if w.firings == 0 {
                    self.fire_at.insert(w.end - 1, key.clone(), w.start);
                }
                if self.lateness > 0 {
                    self.clean_at.insert(
                        (w.end - 1).saturating_add(self.lateness),
                        key.clone(),
                        w.start,
                    );
                }
            }
        }
        self.keys = keys;
        self.note_full();
    }

    /// How many windows are open (including fired ones kept for lateness).
    pub fn open_windows(&self) -> usize {
        count_open(&self.keys)
    }
}

/// A firing of `window`: a copy of its records, numbered.
fn fire(key: &Arc<str>, window: &mut OpenWindow) -> FiredWindow {
    let firing = window.firings;
    window.firings += 1;
    FiredWindow {
        key: key.clone(),
        start: window.start,
        end: window.end,
        firing,
        count: window.count,
        encoded: window.encoded.clone(),
        accs: window.accs.clone(),
        number: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(fired: &[FiredWindow]) -> Vec<(String, i64, i64, u32, u32)> {
        fired
            .iter()
            .map(|f| (f.key.to_string(), f.start, f.end, f.firing, f.count))
            .collect()
    }

    fn add(
        buf: &mut WindowBuffer,
        key: &str,
        t: i64,
        now: i64,
        fired: &mut Vec<FiredWindow>,
    ) -> Added {
        buf.add(&Record::new(key, t), t, now, fired)
    }

    #[test]
    fn tumbling_fires_at_the_last_millisecond_and_late_records_are_reported() {
        let mut buf = WindowBuffer::new(TimeWindows::tumbling(1000, 0), 0);
        let mut fired = Vec::new();
        assert_eq!(
            add(&mut buf, "a", 10, i64::MIN, &mut fired),
            Added::Buffered
        );
        assert_eq!(
            add(&mut buf, "a", 999, i64::MIN, &mut fired),
            Added::Buffered
        );
        buf.advance(998, &mut fired);
        assert!(fired.is_empty());
        buf.advance(999, &mut fired);
        assert_eq!(summary(&fired), [("a".into(), 0, 1000, 0, 2)]);
        assert_eq!(add(&mut buf, "a", 500, 999, &mut fired), Added::Late);
        assert_eq!(buf.open_windows(), 0);
    }

    #[test]
    fn allowed_lateness_refires_as_an_update_then_expires() {
        let mut buf = WindowBuffer::new(TimeWindows::tumbling(1000, 0), 500);
        let mut fired = Vec::new();
        add(&mut buf, "a", 10, i64::MIN, &mut fired);
        buf.advance(999, &mut fired);
        // Within lateness (999 + 500 > 1200): added, fired again at once as update 1.
        assert_eq!(add(&mut buf, "a", 20, 1200, &mut fired), Added::Buffered);
        assert_eq!(
            summary(&fired),
            [("a".into(), 0, 1000, 0, 1), ("a".into(), 0, 1000, 1, 2)]
        );
        // At 1499 the window is cleaned up; a record for it is late from then on.
        buf.advance(1499, &mut fired);
        assert_eq!(buf.open_windows(), 0);
        assert_eq!(add(&mut buf, "a", 30, 1499, &mut fired), Added::Late);
    }

    #[test]
    fn sliding_windows_take_a_record_in_every_pane_that_is_not_late() {
        let mut buf = WindowBuffer::new(TimeWindows::sliding(2000, 1000, 0), 0);
        let mut fired = Vec::new();
        // 1500 is in [1000, 3000) and [0, 2000); at watermark 1999 the latter has fired.
        buf.advance(1999, &mut fired);
        assert_eq!(add(&mut buf, "a", 1500, 1999, &mut fired), Added::Buffered);
        buf.advance(i64::MAX, &mut fired);
        assert_eq!(summary(&fired), [("a".into(), 1000, 3000, 0, 1)]);
    }

    #[test]
    fn a_late_record_that_bridges_two_sessions_merges_them_and_refires() {
        let mut buf = WindowBuffer::new(TimeWindows::session(100), 1000);
        let mut fired = Vec::new();
        add(&mut buf, "a", 0, i64::MIN, &mut fired); // [0, 100)
        add(&mut buf, "a", 150, i64::MIN, &mut fired); // [150, 250)
        buf.advance(300, &mut fired);
        assert_eq!(
            summary(&fired),
            [("a".into(), 0, 100, 0, 1), ("a".into(), 150, 250, 0, 1)]
        );
        fired.clear();
        // 80 → [80, 180) overlaps both: one session [0, 250) with all three, an update.
        assert_eq!(add(&mut buf, "a", 80, 300, &mut fired), Added::Buffered);
        assert_eq!(summary(&fired), [("a".into(), 0, 250, 1, 3)]);
        assert_eq!(buf.open_windows(), 1);
    }

    #[test]
    fn sessions_extend_until_the_gap_and_fire_once() {
        let mut buf = WindowBuffer::new(TimeWindows::session(100), 0);
        let mut fired = Vec::new();
        for t in [0, 50, 120, 400] {
            add(&mut buf, "a", t, i64::MIN, &mut fired);
        }
        buf.advance(i64::MAX, &mut fired);
        assert_eq!(
            summary(&fired),
            [("a".into(), 0, 220, 0, 3), ("a".into(), 400, 500, 0, 1)]
        );
    }
}
