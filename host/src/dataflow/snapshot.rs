//! An operator's whole state as one blob, for checkpoints.

use serde::{Deserialize, Serialize};

use super::operator::OperatorNode;
use super::watermark::InputWatermarks;
use super::window::{CountKeys, OpenWindows, StoredPanes, StoredPanesRef, Windowing};
use crate::plugin::PluginFault;
use crate::state::{KeyedState, Timers};

/// What a snapshot holds, borrowed from the running operator.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    records_in: u64,
    calls: u64,
    timers_fired: u64,
    watermarks: &'a InputWatermarks,
    keyed: &'a KeyedState,
    timers: &'a Timers,
    windows: WindowsRef<'a>,
    memory: Option<Vec<u8>>,
}

#[derive(Serialize)]
enum WindowsRef<'a> {
    None,
    Time(&'a OpenWindows),
    Count(&'a CountKeys),
    Panes(StoredPanesRef<'a>),
}

/// A snapshot read back; the same fields as [`SnapshotRef`].
#[derive(Deserialize)]
struct Snapshot {
    records_in: u64,
    calls: u64,
    timers_fired: u64,
    watermarks: InputWatermarks,
    keyed: KeyedState,
    timers: Timers,
    windows: Windows,
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
    pub(crate) windows: u64,
    pub(crate) timers: u64,
}

impl OperatorNode {
    /// Serializes the operator's state, asking the plugin for its memory
    /// snapshot if it keeps one.
    pub(crate) fn snapshot(&mut self) -> Result<(Vec<u8>, SnapshotSize), PluginFault> {
        let memory = self.logic.snapshot()?;
        let state = self.logic.state_mut();
        let (windows, open) = match &self.windowing {
            Some(Windowing::Time { buffer, .. }) => (
                buffer
                    .stored_panes()
                    .map_or(WindowsRef::Time(buffer.open()), WindowsRef::Panes),
                buffer.open_windows(),
            ),
            Some(Windowing::Count(count)) => (WindowsRef::Count(count.keys()), count.keys().len()),
            None => (WindowsRef::None, 0),
        };
        let size = SnapshotSize {
            keys: state.keyed.len() as u64,
            windows: open as u64,
            timers: state.timers.len() as u64,
        };
        let snapshot = SnapshotRef {
            records_in: self.records_in,
            calls: self.calls,
            timers_fired: self.timers_fired,
            watermarks: &self.watermarks,
            keyed: &state.keyed,
            timers: &state.timers,
            windows,
            memory,
        };
        let blob = postcard::to_allocvec(&snapshot)
            .map_err(|e| PluginFault::Start(format!("cannot encode state: {e}")))?;
        Ok((blob, size))
    }

    /// Takes back a snapshot: state, windows, watermarks, counters, and the
    /// plugin's memory.
    pub(crate) fn restore(&mut self, blob: &[u8]) -> Result<(), String> {
        let snapshot: Snapshot =
            postcard::from_bytes(blob).map_err(|e| format!("state unreadable: {e}"))?;
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

/// The keyed state in an operator's snapshot blob (for `eddy state get`).
pub fn keyed_state(blob: &[u8]) -> Result<KeyedState, String> {
    postcard::from_bytes::<Snapshot>(blob)
        .map(|s| s.keyed)
        .map_err(|e| format!("state unreadable: {e}"))
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
        postcard::to_allocvec(&SnapshotRef {
            records_in: 7,
            calls: 3,
            timers_fired: 1,
            watermarks: &InputWatermarks::new(2),
            keyed: &keyed,
            timers: &Timers::default(),
            windows: WindowsRef::None,
            memory: Some(vec![1, 2, 3]),
        })
        .unwrap()
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
            let read = keyed_state(&bytes).unwrap();
            let mut expected = std::collections::HashMap::new();
            for (namespace, key, value) in &values {
                expected.insert((namespace.as_str(), key.as_str()), value.as_slice());
            }
            prop_assert_eq!(read.len(), expected.len());
            for ((namespace, key), value) in &expected {
                prop_assert_eq!(read.get(namespace, key), Some(*value));
            }
            let _ = keyed_state(&crate::damage::apply(bytes, &damage));
        }
    }
}
