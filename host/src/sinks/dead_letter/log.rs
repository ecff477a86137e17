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

/// The most records, timers or rejected inputs one line of the log holds;
/// a larger input is written as several lines, numbered `part` of `parts`.
const ITEMS_PER_LINE: usize = 1000;

/// The part of an entry's input one line holds.
enum Part<'a> {
    Records(&'a [Record]),
    /// Windows, each with a run of its records (a window with more records
    /// than a line holds is split over lines, its key and bounds repeated).
    Windows(Vec<(&'a DeadWindow, &'a [Record])>),
    Timers(&'a [DeadTimer]),
    Rejected(&'a [Rejected]),
}

/// An entry's input cut into lines of at most [`ITEMS_PER_LINE`] items.
fn parts(input: &DeadLetterInput) -> Vec<Part<'_>> {
    match input {
        DeadLetterInput::Records(r) if r.is_empty() => vec![Part::Records(r)],
        DeadLetterInput::Records(r) => r.chunks(ITEMS_PER_LINE).map(Part::Records).collect(),
        DeadLetterInput::Timers(t) if t.is_empty() => vec![Part::Timers(t)],
        DeadLetterInput::Timers(t) => t.chunks(ITEMS_PER_LINE).map(Part::Timers).collect(),
        DeadLetterInput::Rejected(r) if r.is_empty() => vec![Part::Rejected(r)],
        DeadLetterInput::Rejected(r) => r.chunks(ITEMS_PER_LINE).map(Part::Rejected).collect(),
        DeadLetterInput::Windows(windows) => {
            let mut lines = Vec::new();
            let mut line = Vec::new();
            let mut room = ITEMS_PER_LINE;
            for w in windows {
                let mut rest = &w.records[..];
                loop {
                    if room == 0 {
                        lines.push(std::mem::take(&mut line));
                        room = ITEMS_PER_LINE;
                    }
                    let (now, later) = rest.split_at(rest.len().min(room));
                    line.push((w, now));
                    // A window without records (folded) takes one item of room.
                    room -= now.len().max(1);
                    rest = later;
                    if rest.is_empty() {
                        break;
                    }
                }
            }
            lines.push(line);
            lines.into_iter().map(Part::Windows).collect()
        }
    }
}

impl Part<'_> {
    /// The records (or timers, or inputs) the line holds; a window whose
    /// records were folded counts its folded records.
    fn items(&self) -> u64 {
        match self {
            Part::Records(r) => r.len() as u64,
            Part::Timers(t) => t.len() as u64,
            Part::Rejected(r) => r.len() as u64,
            Part::Windows(windows) => windows
                .iter()
                .map(|(w, run)| {
                    if w.records.is_empty() {
                        u64::from(w.count)
                    } else {
                        run.len() as u64
                    }
                })
                .sum(),
        }
    }
}

/// One line of the log.
struct Line<'a> {
    pipeline: &'a str,
    entry: &'a DeadLetterEntry,
    part: Part<'a>,
    /// This line's number and how many the entry takes, when more than one.
    numbered: Option<(usize, usize)>,
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

struct Windows<'a>(&'a [(&'a DeadWindow, &'a [Record])]);

impl Serialize for Windows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (w, records) in self.0 {
            seq.serialize_element(&Window(w, records))?;
        }
        seq.end()
    }
}

struct Window<'a>(&'a DeadWindow, &'a [Record]);

impl Serialize for Window<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("key", &*self.0.key)?;
        map.serialize_entry("start", &self.0.start)?;
        map.serialize_entry("end", &self.0.end)?;
        map.serialize_entry("records", &Records(self.1))?;
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
        if let Some((part, parts)) = self.numbered {
            map.serialize_entry("part", &part)?;
            map.serialize_entry("parts", &parts)?;
        }
        match &self.part {
            Part::Records(r) => map.serialize_entry("records", &Records(r))?,
            Part::Windows(w) => map.serialize_entry("windows", &Windows(w))?,
            Part::Timers(t) => {
                let timers: Vec<_> = t
                    .iter()
                    .map(
                        |t| serde_json::json!({"domain": t.domain, "key": &*t.key, "time": t.time}),
                    )
                    .collect();
                map.serialize_entry("timers", &timers)?
            }
            Part::Rejected(rejected) => {
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
    /// The most bytes the file may hold; `None`: no limit.
    limit: Option<u64>,
    /// Whether a line did not fit: later ones are counted without being
    /// encoded, so a flood of dead letters costs no more than counting.
    full: bool,
    /// Records (and timers) not written because the file was full.
    unwritten: u64,
    records: u64,
    /// Records (and timers) per node.
    by_node: BTreeMap<String, u64>,
}

impl Log {
    /// Counts `items` dead letters the full log leaves out.
    fn leave_out(&mut self, items: u64) {
        self.unwritten += items;
        crate::internal_events::DeadLettersUnwritten {
            pipeline: &self.pipeline,
            records: items,
        }
        .emit();
    }
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
                limit: None,
                full: false,
                unwritten: 0,
                records: 0,
                by_node: BTreeMap::new(),
            })),
            path: path.to_owned(),
        }
    }

    /// Caps the log at `bytes`: a line that would take it past them is
    /// counted ([`DeadLetter::unwritten`]) and not written.
    pub fn with_limit(self, bytes: Option<u64>) -> Self {
        self.log().limit = bytes;
        self
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

    /// Cuts the log back to a checkpoint's length; it has room again then.
    pub fn rewind(&self, len: u64) -> io::Result<()> {
        let mut log = self.log();
        log.full = false;
        log.file.rewind(len)
    }

    /// Records (and timers) written so far.
    pub fn records(&self) -> u64 {
        self.log().records
    }

    /// Records (and timers) dead-lettered but not written, the log being full.
    pub fn unwritten(&self) -> u64 {
        self.log().unwritten
    }

    /// Records (and timers) of `node` dead-lettered so far.
    pub fn records_of(&self, node: &str) -> u64 {
        self.log().by_node.get(node).copied().unwrap_or(0)
    }

    /// Appends an entry: one line, or one per [`ITEMS_PER_LINE`] items of
    /// its input. Losing a dead letter would lose data, so a failed write
    /// is an error the pipeline stops on. A line that would take the log
    /// past its limit is counted and left out (whole: the log never holds
    /// part of a line), and so is every line after it until the log is
    /// rewound; the pipeline goes on.
    pub fn write(&self, entry: &DeadLetterEntry) -> io::Result<()> {
        let mut log = self.log();
        let log = &mut *log;
        let parts = parts(&entry.input);
        let count = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            let items = part.items();
            if log.full {
                log.leave_out(items);
                continue;
            }
            let before = log.file.buffer().len();
            let out = log.file.buffer();
            serde_json::to_writer(
                &mut *out,
                &Line {
                    pipeline: &log.pipeline,
                    entry,
                    part,
                    numbered: (count > 1).then_some((i + 1, count)),
                },
            )?;
            out.push(b'\n');
            if let Some(limit) = log.limit
                && log.file.size()? > limit
            {
                log.file.buffer().truncate(before);
                log.full = true;
                if log.unwritten == 0 {
                    tracing::warn!(
                        path = %self.path.display(),
                        limit_mib = limit >> 20,
                        "the dead-letter log is full: further dead letters are counted (`eddy status`) but not written"
                    );
                }
                log.leave_out(items);
                continue;
            }
            log.file.flush()?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn window(key: &str, records: usize) -> DeadWindow {
        DeadWindow {
            key: key.into(),
            start: 0,
            end: 10,
            count: records as u32,
            records: (0..records).map(|i| Record::new(key, i as i64)).collect(),
        }
    }

    /// Records as the log's lines hold them, and the lines' bytes.
    fn logged(path: &Path) -> (u64, u64) {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let records = text
            .lines()
            .map(|l| {
                let line: serde_json::Value = serde_json::from_str(l).unwrap();
                line["records"].as_array().map_or_else(
                    || {
                        line["windows"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|w| w["records"].as_array().unwrap().len())
                            .sum()
                    },
                    Vec::len,
                ) as u64
            })
            .sum();
        (records, text.len() as u64)
    }

    /// The log's lines without the time each was written.
    fn lines_of(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let mut line: serde_json::Value = serde_json::from_str(l).unwrap();
                line.as_object_mut().unwrap().remove("logged_at");
                line
            })
            .collect()
    }

    #[test]
    fn a_full_log_keeps_its_first_lines_counts_the_rest_and_never_holds_part_of_one() {
        let log_dir = tempfile::tempdir().unwrap();
        let path = log_dir.path().join("dead.jsonl");
        let whole_path = log_dir.path().join("whole.jsonl");
        let limit = 64 * 1024;
        let log = DeadLetter::new("p", &path).with_limit(Some(limit));
        let whole = DeadLetter::new("p", &whole_path).with_limit(None);
        // Entries of 1 to 2500 records, some cut over several lines, and windows.
        let mut total = 0u64;
        for n in 0..200u64 {
            let size = 1 + (n * 37) % 2500;
            let input = if n % 3 == 0 {
                DeadLetterInput::Windows(vec![window("w", size as usize), window("v", 0)])
            } else {
                DeadLetterInput::Records((0..size as i64).map(|i| Record::new("k", i)).collect())
            };
            total += input.len() as u64;
            let entry = DeadLetterEntry {
                node: "op".into(),
                reason: "late".into(),
                input,
            };
            log.write(&entry).unwrap();
            whole.write(&entry).unwrap();
        }
        log.commit().unwrap();
        whole.commit().unwrap();
        let (written, bytes) = logged(&path);
        assert!(bytes <= limit, "{bytes} bytes in a log limited to {limit}");
        // The limited log holds the first lines of the whole one, every one intact.
        let (kept, all) = (lines_of(&path), lines_of(&whole_path));
        assert!(!kept.is_empty() && kept.len() < all.len());
        assert_eq!(kept[..], all[..kept.len()]);
        assert_eq!(written + log.unwritten(), total);
        assert_eq!(logged(&whole_path).0, total);
        assert_eq!(log.records(), total);
        // A rewind (to a checkpoint's length) gives room again.
        log.rewind(0).unwrap();
        log.write(&DeadLetterEntry {
            node: "op".into(),
            reason: "late".into(),
            input: DeadLetterInput::Records(vec![Record::new("k", 1)]),
        })
        .unwrap();
        log.commit().unwrap();
        assert_eq!(logged(&path).0, 1);
    }

    #[test]
    fn without_a_limit_every_dead_letter_is_written() {
        let log_dir = tempfile::tempdir().unwrap();
        let path = log_dir.path().join("dead.jsonl");
        let log = DeadLetter::new("p", &path).with_limit(None);
        let records: Vec<Record> = (0..5000).map(|i| Record::new("k", i)).collect();
        for _ in 0..20 {
            log.write(&DeadLetterEntry {
                node: "op".into(),
                reason: "late".into(),
                input: DeadLetterInput::Records(records.clone()),
            })
            .unwrap();
        }
        log.commit().unwrap();
        assert_eq!(logged(&path).0, 100_000);
        assert_eq!(log.unwritten(), 0);
    }

    #[test]
    fn a_large_input_is_cut_into_lines_of_at_most_a_thousand_items_and_none_is_lost() {
        let log_dir = tempfile::tempdir().unwrap();
        let path = log_dir.path().join("dead.jsonl");
        let log = DeadLetter::new("p", &path);
        let windows = vec![window("a", 10), window("b", 2500), window("c", 0)];
        let entry = DeadLetterEntry {
            node: "op".into(),
            reason: "failed".into(),
            input: DeadLetterInput::Windows(windows),
        };
        log.write(&entry).unwrap();
        let records: Vec<Record> = (0..2001).map(|i| Record::new("k", i)).collect();
        log.write(&DeadLetterEntry {
            node: "op".into(),
            reason: "failed".into(),
            input: DeadLetterInput::Records(records),
        })
        .unwrap();
        log.commit().unwrap();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3 + 3);
        let items = |line: &serde_json::Value| -> usize {
            match line.get("windows") {
                Some(w) => w
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| w["records"].as_array().unwrap().len())
                    .sum(),
                None => line["records"].as_array().unwrap().len(),
            }
        };
        assert!(lines.iter().all(|l| items(l) <= ITEMS_PER_LINE));
        assert_eq!(lines[..3].iter().map(items).sum::<usize>(), 2510);
        assert_eq!(lines[3..].iter().map(items).sum::<usize>(), 2001);
        assert_eq!(
            (lines[1]["part"].as_u64(), lines[1]["parts"].as_u64()),
            (Some(2), Some(3))
        );
        // Window `b` goes on over three lines with its bounds repeated, in order.
        let b_times: Vec<i64> = lines[..3]
            .iter()
            .flat_map(|l| l["windows"].as_array().unwrap().clone())
            .filter(|w| w["key"] == "b")
            .flat_map(|w| w["records"].as_array().unwrap().clone())
            .map(|r| r["time"].as_i64().unwrap())
            .collect();
        assert_eq!(b_times, (0..2500).collect::<Vec<i64>>());
        assert_eq!(
            lines[2]["windows"].as_array().unwrap().last().unwrap()["key"],
            "c"
        );
        assert_eq!(log.records_of("op"), 2510 + 2001);
    }
}
