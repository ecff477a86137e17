//! The ids of the results an outbox delivered, in an append-only log of
//! their own (`delivered/` beside the ranks' folders): a restore that
//! produces a result again recognises it by its id and does not send it
//! twice.
//!
//! An entry is a delivered result: its sequence number in the entry's
//! header, its id as the payload. Entries are appended in the order of
//! delivery, which is not the order of sequence numbers (a higher
//! priority goes first), so the log is pruned by place, not by number:
//! at each checkpoint the outbox marks the log's tail, and segments
//! wholly before the mark of the older of the last two checkpoints are
//! removed. A result delivered before a checkpoint's mark was added
//! before that checkpoint, so its number is below the checkpoint's
//! position and no restore to it or later produces it again.
//!
//! Kept out of the database on purpose: a sled tree of ids inserted and
//! removed a thousand times a second held 15–20 MB of the process's
//! memory in node copies; the log holds a few numbers.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::state::segment_log::{Log, Place};

/// The folder of the log, beside the ranks' folders.
const DELIVERED_DIR: &str = "delivered";

/// A segment of ids takes entries until it reaches this size (or the
/// outbox's segment size, if smaller): small, so that the ids of two
/// checkpoints ago are soon removable.
const SEGMENT_BYTES: u64 = 1 << 20;

/// The log of delivered ids.
pub(super) struct Delivered {
    log: Log,
    /// The highest sequence number delivered, if any.
    highest: Option<u64>,
}

impl Delivered {
    /// Opens (creating if needed) the log in `outbox_dir`, with segments
    /// of at most `segment_bytes`; an entry cut short by a crash is
    /// dropped.
    pub(super) fn open(outbox_dir: &Path, segment_bytes: u64) -> io::Result<Delivered> {
        let dir = outbox_dir.join(DELIVERED_DIR);
        let (log, _) = Log::open(&dir, None, segment_bytes.min(SEGMENT_BYTES))?;
        let mut delivered = Delivered { log, highest: None };
        let mut highest = None;
        delivered.for_each(|seq, _| raise_to(&mut highest, seq))?;
        delivered.highest = highest;
        Ok(delivered)
    }

    /// The highest sequence number delivered, if any: numbers are never
    /// given again.
    pub(super) fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Appends the ids of a delivered batch and makes them durable.
    pub(super) fn record<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a (u64, String)>,
    ) -> io::Result<()> {
        for (seq, id) in ids {
            self.log.append(*seq, 0, id.as_bytes())?;
            raise_to(&mut self.highest, *seq);
        }
        self.log.sync()
    }

    /// Where the next id will go: the mark of a checkpoint.
    pub(super) fn mark(&self) -> u64 {
        self.log.tail().index
    }

    /// The first entry on disk: the mark of a restore, which keeps every
    /// id until two checkpoints after it.
    pub(super) fn first(&self) -> u64 {
        self.log.first_place().index
    }

    /// Forgets the segments wholly before the entry `mark`; gives their
    /// files, to be removed by the caller.
    pub(super) fn forget_before(&mut self, mark: u64) -> Vec<PathBuf> {
        let kept = mark..u64::MAX;
        self.log.release(std::slice::from_ref(&kept))
    }

    /// The ids of results numbered `from` or later.
    pub(super) fn ids_from(&mut self, from: u64) -> io::Result<HashSet<String>> {
        let mut ids = HashSet::new();
        self.for_each(|seq, id| {
            if seq >= from {
                ids.insert(String::from_utf8_lossy(id).into_owned());
            }
        })?;
        Ok(ids)
    }

    /// Calls `f` with each entry's sequence number and id, oldest first. A
    /// damaged segment (a power cut) is skipped with a warning: the
    /// results whose ids it held may be sent again after a restore.
    fn for_each(&mut self, mut f: impl FnMut(u64, &[u8])) -> io::Result<()> {
        const AT_ONCE: usize = 4096;
        let mut place: Place = self.log.first_place();
        while place.index < self.log.tail().index {
            match self.log.read(place, AT_ONCE) {
                Ok((entries, next)) => {
                    for entry in &entries {
                        f(entry.header.seq, &entry.payload);
                    }
                    if next.index == place.index {
                        break;
                    }
                    place = next;
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    let (next, lost, _) = self.log.skip_segment(place);
                    tracing::warn!(
                        log = %self.log.dir().display(),
                        "delivered ids: {e}; {lost} ids given up (those results may be sent again after a restore)"
                    );
                    if next.index <= place.index {
                        break;
                    }
                    place = next;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Raises `highest` to `seq`.
fn raise_to(highest: &mut Option<u64>, seq: u64) {
    *highest = Some(highest.map_or(seq, |h| h.max(seq)));
}
