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

    /// The groups whose last entry is numbered after `seq`, in order, up
    /// to a damaged one (the disk, or a power cut on a disk that reorders
    /// writes), which is logged: the pipeline starts with the groups before
    /// it rather than not at all, as it does past an entry it cannot
    /// decode. Replay must not go on after a gap: records after it would
    /// take the numbers, hence the result ids, of the records lost in it.
    /// A source that can seek reads again from the last group replayed.
    pub(crate) fn groups_after(&mut self, seq: u64) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let mut groups = Vec::new();
        let mut place: Place = self.log.first_place();
        loop {
            let (entries, next) = match self.log.read(place, READ_GROUPS) {
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    tracing::error!("journal: {e}; replay stops before it");
                    return Ok(groups);
                }
                Err(e) => return Err(e),
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A group of `bytes` bytes, all `n`.
    fn group(n: u8, bytes: usize) -> Vec<u8> {
        vec![n; bytes]
    }

    /// Groups 1 and 2 fill the first segment; group 3 starts the second.
    fn journal(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut journal = JournalLog::open(dir).unwrap();
        let size = (SEGMENT_BYTES as usize * 3) / 8;
        for n in 1..=3u8 {
            journal.append(u64::from(n), &group(n, size)).unwrap();
        }
        journal.sync().unwrap();
        let mut segments: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        segments.sort();
        assert_eq!(segments.len(), 2);
        segments
    }

    /// Flips a byte of group `n` (the first or second of the first segment).
    fn damage(segment: &Path, n: usize) {
        let mut bytes = std::fs::read(segment).unwrap();
        let at = bytes.len() / 4 + (n - 1) * bytes.len() / 2;
        bytes[at] ^= 0xff;
        std::fs::write(segment, bytes).unwrap();
    }

    fn seqs(journal: &mut JournalLog, after: u64) -> Vec<u64> {
        let groups = journal.groups_after(after).unwrap();
        for (seq, bytes) in &groups {
            assert!(
                bytes.iter().all(|&b| u64::from(b) == *seq),
                "group {seq} whole"
            );
        }
        groups.iter().map(|(seq, _)| *seq).collect()
    }

    #[test]
    fn replay_stops_before_a_damaged_group_and_the_journal_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let segments = journal(dir.path());
        let none: [u64; 0] = [];
        assert_eq!(
            seqs(&mut JournalLog::open(dir.path()).unwrap(), 0),
            [1, 2, 3]
        );

        damage(&segments[0], 2);
        let mut reopened = JournalLog::open(dir.path()).unwrap();
        assert_eq!(seqs(&mut reopened, 0), [1], "no group after the gap");
        assert_eq!(seqs(&mut reopened, 1), none);

        damage(&segments[0], 1);
        let mut reopened = JournalLog::open(dir.path()).unwrap();
        assert_eq!(seqs(&mut reopened, 0), none);
        // Appending goes on after the last group; a checkpoint past the
        // damage forgets it.
        reopened.append(4, &group(4, 10)).unwrap();
        reopened.forget_through(3).unwrap();
        assert_eq!(seqs(&mut reopened, 3), [4]);
    }
}
