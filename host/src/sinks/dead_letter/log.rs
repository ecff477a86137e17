//! The dead-letter log: input that could not be processed, with the reason.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use eddy_abi::Record;
use eddy_codec::JsonRecord;
use eddy_driver::Rejected;
use eddy_sink::AppendFile;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

/// A window whose call failed, as the log shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadWindow {
    /// The key.
    pub key: Arc<str>,
    /// Start (inclusive), ms.
    pub start: i64,
    /// End (exclusive), ms.
    pub end: i64,
    /// How many records it held (an aggregate's folded records included).
    pub count: u32,
    /// The records it still held as records.
    pub records: Vec<Record>,
}

/// A timer whose call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadTimer {
    /// `EventTime` or `ProcessingTime`.
    pub domain: &'static str,
    /// The key.
    pub key: Arc<str>,
    /// When it was due, ms.
    pub time: i64,
}

/// What was dead-lettered: the input of the failed call, as it was.
#[derive(Debug, Clone, PartialEq)]
pub enum DeadLetterInput {
    /// Records (a `process` batch, late records, records a sink could not take).
    Records(Vec<Record>),
    /// Fired windows.
    Windows(Vec<DeadWindow>),
    /// Due timers.
    Timers(Vec<DeadTimer>),
    /// Input a source could not turn into records.
    Rejected(Vec<Rejected>),
}

impl DeadLetterInput {
    /// How many records (or timers) it holds.
    pub fn len(&self) -> usize {
        match self {
            DeadLetterInput::Records(r) => r.len(),
            DeadLetterInput::Windows(w) => w.iter().map(|w| w.count as usize).sum(),
            DeadLetterInput::Timers(t) => t.len(),
            DeadLetterInput::Rejected(r) => r.len(),
        }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One dead letter: which node gave up on what, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterEntry {
    /// The node (source, operator or sink).
    pub node: Arc<str>,
    /// Why.
    pub reason: String,
    /// The input.
    pub input: DeadLetterInput,
}

/// One line of the log.
struct Line<'a> {
    pipeline: &'a str,
    entry: &'a DeadLetterEntry,
}

struct Records<'a>(&'a [Record]);

impl Serialize for Records<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for record in self.0 {
            seq.serialize_element(&JsonRecord {
                record,
                output: None,
                id: None,
            })?;
        }
        seq.end()
    }
}

struct Windows<'a>(&'a [DeadWindow]);

impl Serialize for Windows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for w in self.0 {
            seq.serialize_element(&Window(w))?;
        }
        seq.end()
    }
}

struct Window<'a>(&'a DeadWindow);

impl Serialize for Window<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("key", &*self.0.key)?;
        map.serialize_entry("start", &self.0.start)?;
        map.serialize_entry("end", &self.0.end)?;
        map.serialize_entry("records", &Records(&self.0.records))?;
        map.end()
    }
}

impl Serialize for Line<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("logged_at", &now)?;
        map.serialize_entry("pipeline", self.pipeline)?;
        map.serialize_entry("node", &*self.entry.node)?;
        map.serialize_entry("reason", &self.entry.reason)?;
        match &self.entry.input {
            DeadLetterInput::Records(r) => map.serialize_entry("records", &Records(r))?,
            DeadLetterInput::Windows(w) => map.serialize_entry("windows", &Windows(w))?,
            DeadLetterInput::Timers(t) => {
                let timers: Vec<_> = t
                    .iter()
                    .map(
                        |t| serde_json::json!({"domain": t.domain, "key": &*t.key, "time": t.time}),
                    )
                    .collect();
                map.serialize_entry("timers", &timers)?
            }
            DeadLetterInput::Rejected(rejected) => {
                let rejected: Vec<_> = rejected
                    .iter()
                    .map(|r| serde_json::json!({"origin": r.origin, "input": r.input, "reason": r.reason}))
                    .collect();
                map.serialize_entry("rejected", &rejected)?
            }
        }
        map.end()
    }
}

struct Log {
    pipeline: String,
    file: AppendFile,
    records: u64,
    /// Records (and timers) per node.
    by_node: BTreeMap<String, u64>,
}

/// The dead-letter log of one pipeline: JSON lines, one per entry. Clones
/// write to the same log (the pipeline's thread and its `dead_letter` sinks).
#[derive(Clone)]
pub struct DeadLetter {
    log: Arc<Mutex<Log>>,
    path: PathBuf,
}

impl DeadLetter {
    /// A log at `path`, opened on first use.
    pub fn new(pipeline: &str, path: &Path) -> Self {
        DeadLetter {
            log: Arc::new(Mutex::new(Log {
                pipeline: pipeline.to_owned(),
                file: AppendFile::new(path),
                records: 0,
                by_node: BTreeMap::new(),
            })),
            path: path.to_owned(),
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the log to disk; returns its length, for a checkpoint.
    pub fn commit(&self) -> io::Result<u64> {
        self.log().file.commit()
    }

    /// Cuts the log back to a checkpoint's length.
    pub fn rewind(&self, len: u64) -> io::Result<()> {
        self.log().file.rewind(len)
    }

    /// Records (and timers) written so far.
    pub fn records(&self) -> u64 {
        self.log().records
    }

    /// Records (and timers) of `node` written so far.
    pub fn records_of(&self, node: &str) -> u64 {
        self.log().by_node.get(node).copied().unwrap_or(0)
    }

    /// Appends an entry. Losing a dead letter would lose data, so this is an
    /// error the pipeline stops on.
    pub fn write(&self, entry: &DeadLetterEntry) -> io::Result<()> {
        let mut log = self.log();
        let log = &mut *log;
        let out = log.file.buffer();
        serde_json::to_writer(
            &mut *out,
            &Line {
                pipeline: &log.pipeline,
                entry,
            },
        )?;
        out.push(b'\n');
        log.file.flush()?;
        let n = entry.input.len() as u64;
        log.records += n;
        *log.by_node.entry(entry.node.to_string()).or_default() += n;
        crate::internal_events::DeadLettered {
            node: &entry.node,
            records: entry.input.len(),
        }
        .emit();
        Ok(())
    }
}
