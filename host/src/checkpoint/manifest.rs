//! What a checkpoint records besides operator state: its id, age, source and
//! sink positions. Stored with a CRC, so a damaged one is recognised.

use serde::{Deserialize, Serialize};

use crate::dataflow::BoundedOutOfOrderness;

/// Marks manifests that hold sinks' held records. A manifest before them
/// starts with its id and a time in ms, which cannot begin with these bytes
/// (the time's varint would have to end after one byte).
const FORMAT: &[u8] = b"EDM2";

/// One complete checkpoint of a pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Its id: checkpoints of a pipeline are numbered 1, 2, …
    pub id: u64,
    /// When it was taken, ms since the Unix epoch.
    pub created_ms: i64,
    /// Whether every source had ended: the run was complete.
    pub finished: bool,
    /// The last ingest-journal entry whose records are in the state.
    pub journal_seq: u64,
    /// Each source's position.
    pub sources: Vec<SourceCheckpoint>,
    /// Each sink's position.
    pub sinks: Vec<SinkCheckpoint>,
    /// The length of the dead-letter log.
    pub dead_letter: Option<u64>,
    /// Each operator's state, stored beside the manifest.
    pub operators: Vec<OperatorCheckpoint>,
}

/// Where a source was.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceCheckpoint {
    /// The source's name.
    pub name: String,
    /// The driver's position, for drivers that can go back to it.
    pub position: Option<Vec<u8>>,
    /// Its watermark generator.
    pub watermark: BoundedOutOfOrderness,
    /// Records it had read.
    pub records_out: u64,
    /// Whether it had ended.
    pub ended: bool,
}

/// Where a sink was: what it had made durable, and what it held for a peer
/// that was down.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SinkCheckpoint {
    /// The sink's name.
    pub name: String,
    /// Its position (a file length, an outbox sequence), when it can go back to it.
    pub position: Option<u64>,
    /// Records it held, not yet delivered, in order: put back on restore.
    pub held: Vec<eddy_sink::OwnedOut>,
}

/// Manifests as checkpoints before sinks kept their held records wrote
/// them: read and carried over, so an upgrade keeps the state.
mod before_held {
    use serde::Deserialize;

    use super::{OperatorCheckpoint, SourceCheckpoint};

    #[derive(Deserialize)]
    pub(super) struct Manifest {
        id: u64,
        created_ms: i64,
        finished: bool,
        journal_seq: u64,
        sources: Vec<SourceCheckpoint>,
        sinks: Vec<SinkCheckpoint>,
        dead_letter: Option<u64>,
        operators: Vec<OperatorCheckpoint>,
    }

    #[derive(Deserialize)]
    struct SinkCheckpoint {
        name: String,
        position: Option<u64>,
    }

    impl From<Manifest> for super::Manifest {
        fn from(m: Manifest) -> Self {
            super::Manifest {
                id: m.id,
                created_ms: m.created_ms,
                finished: m.finished,
                journal_seq: m.journal_seq,
                sources: m.sources,
                sinks: m
                    .sinks
                    .into_iter()
                    .map(|s| super::SinkCheckpoint {
                        name: s.name,
                        position: s.position,
                        held: Vec::new(),
                    })
                    .collect(),
                dead_letter: m.dead_letter,
                operators: m.operators,
            }
        }
    }
}

/// An operator's state blob and what it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperatorCheckpoint {
    /// The operator's name.
    pub name: String,
    /// The plugin's name.
    pub plugin: String,
    /// The plugin's version.
    pub plugin_version: String,
    /// The layout of its state, from the plugin's manifest.
    pub state_version: u32,
    /// The blob's length in bytes.
    pub len: u64,
    /// The blob's CRC-32.
    pub crc: u32,
    /// Keyed-state values.
    pub keys: u64,
    /// Open windows.
    pub windows: u64,
    /// Pending timers.
    pub timers: u64,
}

impl Manifest {
    /// The manifest as stored: CRC-32 (little endian), then the format
    /// mark, then postcard.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut body = FORMAT.to_vec();
        body.extend(postcard::to_allocvec(self).unwrap_or_default());
        let mut bytes = crc32fast::hash(&body).to_le_bytes().to_vec();
        bytes.extend_from_slice(&body);
        bytes
    }

    /// Reads a stored manifest; says what is wrong with a damaged one.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let (crc, body) = bytes
            .split_first_chunk::<4>()
            .ok_or("manifest shorter than its checksum")?;
        if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
            return Err("manifest checksum mismatch".into());
        }
        let read = match body.strip_prefix(FORMAT) {
            Some(body) => postcard::from_bytes(body),
            None => postcard::from_bytes::<before_held::Manifest>(body).map(Into::into),
        };
        read.map_err(|e| format!("manifest unreadable: {e}"))
    }

    /// Its age now, in ms.
    pub fn age_ms(&self) -> i64 {
        crate::dataflow::wall_clock_ms().saturating_sub(self.created_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(held: Vec<eddy_sink::OwnedOut>) -> Manifest {
        Manifest {
            id: 7,
            created_ms: 1_767_225_600_000,
            finished: false,
            journal_seq: 3,
            sources: Vec::new(),
            sinks: vec![SinkCheckpoint {
                name: "up".into(),
                position: Some(10),
                held,
            }],
            dead_letter: Some(5),
            operators: Vec::new(),
        }
    }

    #[test]
    fn held_records_come_back_and_a_manifest_from_before_them_still_reads() {
        let held = vec![eddy_sink::OwnedOut {
            output: "stats".into(),
            id: "p/stats/k/r0/0".into(),
            record: eddy_abi::Record::new("k", 1).with("v", 2.5),
        }];
        let read = Manifest::from_bytes(&manifest(held.clone()).to_bytes()).unwrap();
        assert_eq!(read.sinks[0].held, held);

        // The layout written before: no format mark, sinks without `held`.
        #[derive(Serialize)]
        struct OldSink {
            name: String,
            position: Option<u64>,
        }
        #[derive(Serialize)]
        struct Old {
            id: u64,
            created_ms: i64,
            finished: bool,
            journal_seq: u64,
            sources: Vec<SourceCheckpoint>,
            sinks: Vec<OldSink>,
            dead_letter: Option<u64>,
            operators: Vec<OperatorCheckpoint>,
        }
        let old = Old {
            id: 7,
            created_ms: 1_767_225_600_000,
            finished: false,
            journal_seq: 3,
            sources: Vec::new(),
            sinks: vec![OldSink {
                name: "up".into(),
                position: Some(10),
            }],
            dead_letter: Some(5),
            operators: Vec::new(),
        };
        let body = postcard::to_allocvec(&old).unwrap();
        let mut bytes = crc32fast::hash(&body).to_le_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let read = Manifest::from_bytes(&bytes).unwrap();
        assert_eq!(
            (read.id, read.journal_seq, read.dead_letter),
            (7, 3, Some(5))
        );
        assert_eq!(read.sinks[0].position, Some(10));
        assert!(read.sinks[0].held.is_empty());
    }
}
