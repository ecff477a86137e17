//! A pipeline's ingest journal on disk: groups of entries in a segment log
//! beside the database (`journal/PIPELINE/` in the store's folder), each
//! stored with the sequence number of its last entry.
//!
//! The journal is written once and read only after a crash, so it is kept
//! out of the database: there, every group stayed in the database's memory
//! and in its log until compacted, tens of MB at 100k records/s. Here an
//! append is a write to the operating system; what was written is synced
//! every [`SYNC_EVERY`] (the buffered journal) or at once (the synced one);
//! whole segments are removed once every kept checkpoint holds them.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::state::segment_log::{Log, Place};

/// The folder, inside the store's, of the pipelines' journals.
pub(crate) const JOURNAL_DIR: &str = "journal";

/// A segment takes groups until it reaches this size: small enough that
/// checkpoints let segments go soon, large enough to be few.
const SEGMENT_BYTES: u64 = 4 << 20;

/// A buffered journal is synced at most this long after a group is written.
pub(crate) const SYNC_EVERY: Duration = Duration::from_millis(500);

/// Groups read from the log at a time.
const READ_GROUPS: usize = 64;

/// One pipeline's journal.
pub(crate) struct JournalLog {
    log: Log,
    /// When what was written was last synced.
    synced_at: Instant,
}

impl JournalLog {
    /// Opens the journal in `dir`, cutting a group the process was writing
    /// when it stopped.
    pub(crate) fn open(dir: &Path) -> io::Result<JournalLog> {
        let (log, _) = Log::open(dir, None, SEGMENT_BYTES)?;
        Ok(JournalLog {
            log,
            synced_at: Instant::now(),
        })
    }

    /// Where it is.
    pub(crate) fn dir(&self) -> &Path {
        self.log.dir()
    }

    /// Appends a group whose last entry is number `last`, and syncs if the
    /// last sync is [`SYNC_EVERY`] old.
    pub(crate) fn append(&mut self, last: u64, group: &[u8]) -> io::Result<()> {
        self.log.append(last, 0, group)?;
        self.log.write()?;
        self.sync_if_due()
    }

    /// Syncs what was written if the last sync is [`SYNC_EVERY`] old.
    pub(crate) fn sync_if_due(&mut self) -> io::Result<()> {
        if self.log.unsynced() && self.synced_at.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes every group written durable.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.log.sync()?;
        self.synced_at = Instant::now();
        Ok(())
    }

    /// The groups whose last entry is numbered after `seq`, in order.
    pub(crate) fn groups_after(&mut self, seq: u64) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let mut groups = Vec::new();
        let mut place: Place = self.log.first_place();
        loop {
            let (entries, next) = self.log.read(place, READ_GROUPS)?;
            if entries.is_empty() {
                return Ok(groups);
            }
            groups.extend(
                entries
                    .into_iter()
                    .filter(|e| e.header.seq > seq)
                    .map(|e| (e.header.seq, e.payload)),
            );
            place = next;
        }
    }

    /// The number of the last entry, 0 when empty.
    pub(crate) fn last(&self) -> u64 {
        self.log.last_seq().unwrap_or(0)
    }

    /// Removes the segments whose entries are all numbered up to `seq`.
    pub(crate) fn forget_through(&mut self, seq: u64) -> io::Result<()> {
        self.log.forget_through(seq)
    }

    /// Removes the groups whose last entry is numbered `seq` or more.
    pub(crate) fn cut_from(&mut self, seq: u64) -> io::Result<()> {
        self.log.cut_from(seq).map(drop)
    }

    /// Removes every group.
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        self.log.cut_from(0).map(drop)
    }
}
