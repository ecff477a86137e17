//! Count windows: Flink's `countWindow(size, slide)`.

use std::collections::VecDeque;

use crate::state::CowMap;
use std::sync::Arc;

use eddy_abi::{Record, encode};

use super::{EncodedRecords, FiredWindow};

/// Per key, fires every `slide` records over the last `size` of them (a
/// `CountTrigger` with a `CountEvictor`); with `slide == size` the window is
/// purged after firing (tumbling). Count windows ignore time: nothing is late,
/// and a window not yet full at the end of input does not fire, as in Flink.
/// A fired window's `start` and `end - 1` are the times of its first and last record.
#[derive(Debug)]
pub struct CountWindows {
    size: usize,
    slide: usize,
    keys: CountKeys,
}

/// Each key's last records, as checkpoints store them; a clone is a
/// snapshot taken in constant time.
pub type CountKeys = CowMap<Arc<str>, KeyRecords>;

/// One key's last records.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct KeyRecords {
    /// `(time, encoded record)`, oldest first, at most `size`.
    records: VecDeque<(i64, Vec<u8>)>,
    since_firing: usize,
    /// Windows fired so far.
    fired: u64,
}

impl CountWindows {
    /// Windows of `size` records every `slide` records (both at least 1).
    pub fn new(size: u64, slide: u64) -> Self {
        CountWindows {
            size: size.max(1) as usize,
            slide: slide.max(1) as usize,
            keys: CountKeys::default(),
        }
    }

    /// Each key's records, for a checkpoint.
    pub fn keys(&self) -> &CountKeys {
        &self.keys
    }

    /// Takes back the keys of a checkpoint.
    pub fn restore(&mut self, keys: CountKeys) {
        self.keys = keys;
    }

    /// Adds a record; appends the window it completes, if any, to `fired`.
    pub fn add(&mut self, record: &Record, fired: &mut Vec<FiredWindow>) {
        let state = match self.keys.get_mut(&*record.key) {
            Some(state) => state,
            None => self
                .keys
                .get_or_insert_with(record.key.clone(), KeyRecords::default),
        };
        let mut encoded = Vec::new();
        encode::record(record, &mut encoded);
        state.records.push_back((record.time, encoded));
        if state.records.len() > self.size {
            state.records.pop_front();
        }
        state.since_firing += 1;
        if state.since_firing < self.slide {
            return;
        }
        state.since_firing = 0;
        state.fired += 1;
        let first = state.records.front().map_or(record.time, |(t, _)| *t);
        let mut window = FiredWindow {
            key: record.key.clone(),
            start: first,
            end: record.time.saturating_add(1),
            firing: 0,
            count: state.records.len() as u32,
            encoded: EncodedRecords::default(),
            accs: Vec::new(),
            number: state.fired,
        };
        for (_, bytes) in &state.records {
            window.encoded.extend_from_slice(bytes);
        }
        fired.push(window);
        if self.slide >= self.size {
            // Tumbling: purge the records; the key keeps its window count.
            state.records.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(size: u64, slide: u64, times: &[i64]) -> Vec<(i64, i64, u32)> {
        let mut w = CountWindows::new(size, slide);
        let mut fired = Vec::new();
        for t in times {
            w.add(&Record::new("k", *t), &mut fired);
        }
        fired.iter().map(|f| (f.start, f.end, f.count)).collect()
    }

    #[test]
    fn count_windows_restored_from_a_checkpoint_go_on_as_before() {
        let times: Vec<i64> = (1..=11).collect();
        let whole = run(3, 2, &times);
        let mut w = CountWindows::new(3, 2);
        let mut fired = Vec::new();
        for t in &times[..5] {
            w.add(&Record::new("k", *t), &mut fired);
        }
        // Read back as recovery reads a checkpoint: as it goes.
        let bytes = postcard::to_allocvec(w.keys()).unwrap();
        let mut restored = CountWindows::new(3, 2);
        restored
            .restore(crate::checkpoint::decode_from(&mut &bytes[..], bytes.len() as u64).unwrap());
        for t in &times[5..] {
            restored.add(&Record::new("k", *t), &mut fired);
        }
        let fired: Vec<(i64, i64, u32)> = fired.iter().map(|f| (f.start, f.end, f.count)).collect();
        assert_eq!(fired, whole);
    }

    #[test]
    fn tumbling_count_windows_fire_every_size_records() {
        assert_eq!(run(3, 3, &[1, 2, 3, 4, 5, 6, 7]), [(1, 4, 3), (4, 7, 3)]);
    }

    #[test]
    fn sliding_count_windows_fire_every_slide_over_the_last_size() {
        // size 3, slide 2: fires after 2 records (1, 2), then 4 (2, 3, 4), then 6 (4, 5, 6).
        assert_eq!(
            run(3, 2, &[1, 2, 3, 4, 5, 6]),
            [(1, 3, 2), (2, 5, 3), (4, 7, 3)]
        );
    }
}
