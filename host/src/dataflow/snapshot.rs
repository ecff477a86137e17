//! An operator's whole state as one blob, for checkpoints.

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::operator::OperatorNode;
use super::watermark::InputWatermarks;
use super::window::{self, CountKeys, OpenWindows, PanesSnapshot, StoredPanes, Windowing};
use crate::checkpoint::{DecodeError, StreamError};
use crate::plugin::PluginFault;
use crate::state::{KeyedState, Timers};

/// An operator's state at a checkpoint, taken on the pipeline thread in
/// about constant time (its keyed state and windows are shared with the
/// running operator, see [`crate::state::CowMap`]) and encoded off it with
/// [`OperatorSnapshot::encode_to`].
#[derive(Serialize)]
pub(crate) struct OperatorSnapshot {
    records_in: u64,
    calls: u64,
    timers_fired: u64,
    watermarks: InputWatermarks,
    keyed: KeyedState,
    timers: Timers,
    windows: WindowsSnapshot,
    /// As a byte string (see `KeyedState`'s values).
    #[serde(with = "serde_bytes")]
    memory: Option<Vec<u8>>,
}

#[derive(Serialize)]
enum WindowsSnapshot {
    None,
    Time(OpenWindows),
    Count(CountKeys),
    Panes(PanesSnapshot),
}

impl OperatorSnapshot {
    /// Writes the snapshot's bytes, as [`OperatorNode::restore`] reads
    /// them, into `out` as they are encoded.
    pub(crate) fn encode_to(&self, out: impl std::io::Write) -> Result<(), StreamError> {
        crate::checkpoint::encode_to(self, out)
    }

    /// How many windows are open (fired ones kept for lateness included).
    pub(crate) fn open_windows(&self) -> usize {
        match &self.windows {
            WindowsSnapshot::None => 0,
            WindowsSnapshot::Time(open) => window::count_open(open),
            WindowsSnapshot::Count(keys) => keys.len(),
            WindowsSnapshot::Panes(panes) => panes.open_windows(),
        }
    }
}

/// An operator's state read back from a checkpoint ([`saved_state`]), to
/// be put back by [`OperatorNode::restore`]; the same fields as
/// [`OperatorSnapshot`].
#[derive(Deserialize)]
pub(crate) struct SavedState {
    records_in: u64,
    calls: u64,
    timers_fired: u64,
    watermarks: InputWatermarks,
    keyed: KeyedState,
    timers: Timers,
    windows: Windows,
    /// As a byte string (see `KeyedState`'s values).
    #[serde(with = "serde_bytes")]
    memory: Option<Vec<u8>>,
}

#[derive(Deserialize)]
enum Windows {
    None,
    Time(OpenWindows),
    Count(CountKeys),
    Panes(StoredPanes),
}

/// How much state a snapshot holds, for `eddy state ls`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SnapshotSize {
    pub(crate) keys: u64,
    pub(crate) timers: u64,
}

impl OperatorNode {
    /// Takes a snapshot of the operator's state, asking the plugin for its
    /// memory snapshot if it keeps one; cheap enough for the pipeline
    /// thread (the timers and the plugin's memory snapshot are copied, the
    /// rest is shared).
    pub(crate) fn snapshot(&mut self) -> Result<(OperatorSnapshot, SnapshotSize), PluginFault> {
        let memory = self.logic.snapshot()?;
        let state = self.logic.state_mut();
        let windows = match &self.windowing {
            Some(Windowing::Time { buffer, .. }) => buffer.panes_snapshot().map_or_else(
                || WindowsSnapshot::Time(buffer.open().clone()),
                WindowsSnapshot::Panes,
            ),
            Some(Windowing::Count(count)) => WindowsSnapshot::Count(count.keys().clone()),
            None => WindowsSnapshot::None,
        };
        // Windows are counted off the pipeline thread (`open_windows`).
        let size = SnapshotSize {
            keys: state.keyed.len() as u64,
            timers: state.timers.len() as u64,
        };
        let snapshot = OperatorSnapshot {
            records_in: self.records_in,
            calls: self.calls,
            timers_fired: self.timers_fired,
            watermarks: self.watermarks.clone(),
            keyed: state.keyed.clone(),
            timers: state.timers.clone(),
            windows,
            memory,
        };
        Ok((snapshot, size))
    }

    /// Takes back a snapshot: state, windows, watermarks, counters, and the
    /// plugin's memory.
    pub(crate) fn restore(&mut self, snapshot: SavedState) -> Result<(), String> {
        match (&mut self.windowing, snapshot.windows) {
            (Some(Windowing::Time { buffer, .. }), Windows::Time(open)) => buffer.restore(open),
            (Some(Windowing::Time { buffer, .. }), Windows::Panes(panes)) => {
                buffer.restore_panes(panes)?
            }
            (Some(Windowing::Count(count)), Windows::Count(keys)) => count.restore(keys),
            (_, Windows::None) => {}
            _ => {
                return Err(
                    "its window kind changed; reset its state to start it afresh".to_owned(),
                );
            }
        }
        self.records_in = snapshot.records_in;
        self.calls = snapshot.calls;
        self.timers_fired = snapshot.timers_fired;
        self.watermarks.restore(snapshot.watermarks);
        let state = self.logic.state_mut();
        state.keyed.restore(snapshot.keyed);
        state.timers = snapshot.timers;
        if let Some(memory) = snapshot.memory {
            self.logic
                .restore(&memory)
                .map_err(|e| format!("the plugin could not restore its memory snapshot: {e}"))?;
        }
        Ok(())
    }
}

/// An operator's state from the next `len` bytes of `input`, its blob in a
/// checkpoint, decoded as it is read.
pub(crate) fn saved_state(input: &mut dyn Read, len: u64) -> Result<SavedState, DecodeError> {
    crate::checkpoint::decode_from(input, len)
}

/// The fields of [`SavedState`] up to its keyed state, which is all that
/// `eddy state get` reads: the windows after it are left unread.
#[derive(Deserialize)]
struct UpToKeyed {
    _records_in: u64,
    _calls: u64,
    _timers_fired: u64,
    _watermarks: InputWatermarks,
    keyed: KeyedState,
}

/// The keyed state in an operator's blob, from the next `len` bytes of
/// `input` (for `eddy state get`): decoded as it is read, and nothing of
/// what follows it.
pub(crate) fn keyed_state(input: &mut dyn Read, len: u64) -> Result<KeyedState, DecodeError> {
    crate::checkpoint::decode_from::<UpToKeyed, _>(input, len).map(|s| s.keyed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn blob(values: &[(String, String, Vec<u8>)]) -> Vec<u8> {
        let mut keyed = KeyedState::default();
        for (namespace, key, value) in values {
            keyed.put(namespace, key, value);
        }
        let mut blob = Vec::new();
        OperatorSnapshot {
            records_in: 7,
            calls: 3,
            timers_fired: 1,
            watermarks: InputWatermarks::new(2),
            keyed,
            timers: Timers::default(),
            windows: WindowsSnapshot::None,
            memory: Some(vec![1, 2, 3]),
        }
        .encode_to(&mut blob)
        .unwrap();
        blob
    }

    #[test]
    fn the_plugins_memory_is_written_as_older_versions_wrote_it() {
        // Last in the blob: `Some`, the length, the bytes (postcard's
        // encoding of an `Option<Vec<u8>>`, as older versions wrote it).
        let bytes = blob(&[]);
        assert_eq!(bytes[bytes.len() - 5..], [1, 3, 1, 2, 3]);
        let saved = saved_state(&mut &bytes[..], bytes.len() as u64).unwrap();
        assert_eq!(saved.memory, Some(vec![1, 2, 3]));
    }

    proptest! {
        /// `eddy state get` on a snapshot reads back its values; on a
        /// damaged one, values or an error, never a panic.
        #[test]
        fn fuzz_a_damaged_snapshot_is_read_or_refused(
            values in proptest::collection::vec(("[a-b]{1,2}", ".{0,4}", proptest::collection::vec(any::<u8>(), 0..6)), 0..6),
            damage in crate::damage::damage(),
        ) {
            let bytes = blob(&values);
            let read = keyed_state(&mut &bytes[..], bytes.len() as u64).unwrap();
            let mut expected = std::collections::HashMap::new();
            for (namespace, key, value) in &values {
                expected.insert((namespace.as_str(), key.as_str()), value.as_slice());
            }
            prop_assert_eq!(read.len(), expected.len());
            for ((namespace, key), value) in &expected {
                prop_assert_eq!(read.get(namespace, key), Some(*value));
            }
            let damaged = crate::damage::apply(bytes, &damage);
            let _ = keyed_state(&mut &damaged[..], damaged.len() as u64);
        }
    }
}
