//! What a checkpoint records besides operator state: its id, age, source and
//! sink positions. Stored with a CRC, so a damaged one is recognised.

use serde::{Deserialize, Serialize};

use crate::dataflow::BoundedOutOfOrderness;

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

/// Where a sink was: what it had made durable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SinkCheckpoint {
    /// The sink's name.
    pub name: String,
    /// Its position (a file length, an outbox sequence), when it can go back to it.
    pub position: Option<u64>,
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
    /// The manifest as stored: CRC-32 (little endian), then postcard.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = postcard::to_allocvec(self).unwrap_or_default();
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
        postcard::from_bytes(body).map_err(|e| format!("manifest unreadable: {e}"))
    }

    /// Its age now, in ms.
    pub fn age_ms(&self) -> i64 {
        crate::dataflow::wall_clock_ms().saturating_sub(self.created_ms)
    }
}
