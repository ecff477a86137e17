//! What a plugin may make the host hold on its behalf, per operator.
//!
//! The sandbox bounds what a plugin keeps in its own linear memory; these
//! caps bound what it makes the host keep outside it: keyed state, timers,
//! the records one call emits, table elements. Crossing one is a fault of
//! that plugin's call ([`PluginFault::Cap`](super::PluginFault::Cap)): the
//! call's writes and output are dropped, its input dead-lettered with the
//! cap named, and the fault counts toward quarantine like a trap.

use eddy_abi::{RecordRef, ValueRef};
use serde::Serialize;

/// The caps of one operator's plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PluginCaps {
    /// Keyed state the host holds for it, in bytes (key, value and a fixed
    /// overhead per value).
    pub state_bytes: usize,
    /// Keyed state values the host holds for it.
    pub state_keys: usize,
    /// Timers set at once.
    pub timers: usize,
    /// Records one call may emit.
    pub emit_records: usize,
    /// Bytes the records (and accumulators) one call emits take in the host.
    pub output_bytes: usize,
    /// Elements of its tables.
    pub table_elements: usize,
}

impl Default for PluginCaps {
    fn default() -> Self {
        PluginCaps {
            state_bytes: 64 << 20,
            state_keys: 1_000_000,
            timers: 100_000,
            emit_records: 100_000,
            output_bytes: 64 << 20,
            table_elements: 10_000,
        }
    }
}

/// Which cap a plugin crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// [`PluginCaps::state_bytes`].
    StateBytes,
    /// [`PluginCaps::state_keys`].
    StateKeys,
    /// [`PluginCaps::timers`].
    Timers,
    /// [`PluginCaps::emit_records`].
    EmitRecords,
    /// [`PluginCaps::output_bytes`].
    OutputBytes,
    /// [`PluginCaps::table_elements`].
    TableElements,
}

impl Cap {
    /// The pipeline setting that sets it, in `[plugins]` or `[operators.NAME]`.
    pub fn setting(self) -> &'static str {
        match self {
            Cap::StateBytes => "state_limit_bytes",
            Cap::StateKeys => "state_limit_keys",
            Cap::Timers => "timer_limit",
            Cap::EmitRecords => "emit_limit_records",
            Cap::OutputBytes => "output_limit_bytes",
            Cap::TableElements => "table_limit_elements",
        }
    }

    /// What the plugin did, for the fault's reason.
    pub(crate) fn describe(self, limit: usize) -> String {
        match self {
            Cap::StateBytes => format!("hit its keyed-state cap of {limit} bytes"),
            Cap::StateKeys => format!("hit its keyed-state cap of {limit} keys"),
            Cap::Timers => format!("hit its timer cap of {limit} timers"),
            Cap::EmitRecords => {
                format!("emitted more than its output cap of {limit} records in one call")
            }
            Cap::OutputBytes => format!(
                "emitted more than its output cap of {limit} bytes (as the host holds them) in one call"
            ),
            Cap::TableElements => format!("hit its table cap of {limit} elements"),
        }
    }
}

/// What the host holds for one record a plugin emitted: the record and
/// its id as they travel on, a field slot per field, and the strings and
/// bytes they own. An estimate from the layout, a little over rather than under.
pub(crate) fn held_bytes(record: &RecordRef<'_>) -> usize {
    /// `Record` with its `ResultId`, and the allocator's header of its fields.
    const RECORD: usize = 80;
    /// A `(name, Value)` slot.
    const FIELD: usize = 40;
    /// An `Arc<str>` or `Arc<[u8]>` header with the allocator's rounding.
    const SHARED: usize = 32;
    let fields: usize = record
        .fields
        .iter()
        .map(|(name, value)| {
            FIELD
                + name.len()
                + match value {
                    ValueRef::Str(s) => SHARED + s.len(),
                    ValueRef::Bytes(b) => SHARED + b.len(),
                    _ => 0,
                }
        })
        .sum();
    RECORD + SHARED + record.key.len() + fields
}

#[cfg(test)]
mod tests {
    use eddy_abi::{Record, Value};

    use super::*;

    #[test]
    fn the_bytes_held_grow_with_fields_and_payload_and_exceed_the_encoding() {
        let small = Record::new("k", 1).with("v", 1.0);
        let blob = Record::new("k", 1).with("b", Value::Bytes(vec![0; 4096].into()));
        let encoded = |r: &Record| {
            let mut out = Vec::new();
            eddy_abi::encode_into(r, &mut out).unwrap();
            out.len()
        };
        assert!(held_bytes(&small.as_ref()) > encoded(&small));
        assert!(held_bytes(&blob.as_ref()) > encoded(&blob));
        assert!(held_bytes(&blob.as_ref()) < encoded(&blob) + 256);
        let wide = Record::new("k", 1).with("a", 1).with("b", 2).with("c", 3);
        assert_eq!(
            held_bytes(&wide.as_ref()) - held_bytes(&Record::new("k", 1).as_ref()),
            3 * (40 + 1)
        );
    }
}
