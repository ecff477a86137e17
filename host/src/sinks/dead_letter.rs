//! The dead-letter log: input that could not be processed, with the reason.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use eddy_abi::{Record, TimeDomain};
use eddy_driver::Rejected;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use super::append_file::AppendFile;
use crate::dataflow::window::FiredWindow;
use crate::json::JsonRecord;

/// What was dead-lettered: the input of the failed call, as it was.
pub enum DeadLetterInput<'a> {
    /// Records (a `process` batch, or late records).
    Records(&'a [Record]),
    /// Fired windows.
    Windows(&'a [FiredWindow]),
    /// Due timers.
    Timers(&'a [(TimeDomain, Arc<str>, i64)]),
    /// Input a source could not turn into records.
    Rejected(&'a [Rejected]),
}

impl DeadLetterInput<'_> {
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

/// One line of the log.
struct Entry<'a> {
    pipeline: &'a str,
    node: &'a str,
    reason: &'a str,
    input: &'a DeadLetterInput<'a>,
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

struct Windows<'a>(&'a [FiredWindow]);

impl Serialize for Windows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for w in self.0 {
            seq.serialize_element(&serde_json::json!({
                "key": &*w.key,
                "start": w.start,
                "end": w.end,
                "records": serde_json::to_value(Records(&w.records())).map_err(serde::ser::Error::custom)?,
            }))?;
        }
        seq.end()
    }
}

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("logged_at", &now)?;
        map.serialize_entry("pipeline", self.pipeline)?;
        map.serialize_entry("node", self.node)?;
        map.serialize_entry("reason", self.reason)?;
        match self.input {
            DeadLetterInput::Records(r) => map.serialize_entry("records", &Records(r))?,
            DeadLetterInput::Windows(w) => map.serialize_entry("windows", &Windows(w))?,
            DeadLetterInput::Timers(t) => {
                let timers: Vec<_> = t
                    .iter()
                    .map(|(d, k, time)| {
                        serde_json::json!({"domain": format!("{d:?}"), "key": &**k, "time": time})
                    })
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

/// The dead-letter log of one pipeline: JSON lines, one per failed input.
pub struct DeadLetter {
    pipeline: String,
    file: AppendFile,
    records: u64,
    /// Records (and timers) per node.
    by_node: std::collections::BTreeMap<String, u64>,
}

impl DeadLetter {
    /// A log at `path`, opened on first use.
    pub fn new(pipeline: &str, path: &Path) -> Self {
        DeadLetter {
            pipeline: pipeline.to_owned(),
            file: AppendFile::new(path),
            records: 0,
            by_node: Default::default(),
        }
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Writes the log to disk; returns its length, for a checkpoint.
    pub fn commit(&mut self) -> io::Result<u64> {
        self.file.commit()
    }

    /// Cuts the log back to a checkpoint's length.
    pub fn rewind(&mut self, len: u64) -> io::Result<()> {
        self.file.rewind(len)
    }

    /// Records (and timers) written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Records (and timers) of `node` written so far.
    pub fn records_of(&self, node: &str) -> u64 {
        self.by_node.get(node).copied().unwrap_or(0)
    }

    /// Appends an entry. Losing a dead letter would lose data, so this is an
    /// error the pipeline stops on.
    pub fn write(
        &mut self,
        node: &str,
        reason: &str,
        input: DeadLetterInput<'_>,
    ) -> io::Result<()> {
        let out = self.file.out()?;
        serde_json::to_writer(
            &mut *out,
            &Entry {
                pipeline: &self.pipeline,
                node,
                reason,
                input: &input,
            },
        )?;
        out.write_all(b"\n")?;
        out.flush()?;
        self.records += input.len() as u64;
        match self.by_node.get_mut(node) {
            Some(n) => *n += input.len() as u64,
            None => {
                self.by_node.insert(node.to_owned(), input.len() as u64);
            }
        }
        crate::internal_events::DeadLettered {
            node,
            records: input.len(),
        }
        .emit();
        Ok(())
    }
}
