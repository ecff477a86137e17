//! The durable outbox of a sink that delivers to a broker: results wait on
//! disk, not in memory, until the broker has taken them.
//!
//! Layout, per sink `S` of pipeline `P`:
//! - `outbox/P/S/R/` in the state folder: the waiting results of priority
//!   rank `R`, in order, in append-only segment files ([`log`]); nothing
//!   per result is held in memory, so a backlog of any size costs the
//!   same memory;
//! - `P/outbox/S/meta` (a sled tree): the next sequence number, and each
//!   rank's head (its first result not delivered or dropped);
//! - `outbox/P/S/delivered/`: the ids of the results delivered since the
//!   checkpoint before the last, in segment files ([`delivered`]), so that
//!   results a restore produces again are not sent twice.
//!
//! A checkpoint syncs the segments and records the next sequence number
//! ([`Outbox::commit`]). A restore cuts the results added after it
//! ([`Outbox::rewind`]): the replay adds them again, except those already
//! delivered, which it recognises by their ids. A delivered batch's ids
//! and the heads after it are recorded and flushed before the batch after
//! the next is taken; segments wholly before the heads are removed.

mod delivered;
#[cfg(test)]
mod tests;

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use eddy_sink::OwnedOut;

use self::delivered::Delivered;
use super::queue::Backlog;
use crate::checkpoint::StateStore;
use crate::config::{OutboxConfig, WhenFull};
use crate::files::folder_name;
use crate::sinks::DeadLetterEntry;
use crate::state::segment_log::{self as log, Log, Place};

/// Why the outbox cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("outbox of sink `{sink}`: {error}")]
pub(crate) struct OutboxError {
    sink: String,
    error: String,
}

/// The key of the next sequence number in the meta tree.
const NEXT_SEQ: &[u8] = b"next_seq";

/// The key in the meta tree saying an older version's results were moved
/// into the segment files.
const MIGRATED: &[u8] = b"migrated";

/// The prefix of the keys of the ranks' heads in the meta tree.
const HEAD: &[u8] = b"head/";

/// Without checkpoints, appended results are synced to disk this often.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// What the outbox holds, for `eddy status` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OutboxCounters {
    /// Results waiting.
    pub(crate) entries: u64,
    /// Their bytes on disk.
    pub(crate) bytes: u64,
    /// When the oldest was added, ms since the Unix epoch.
    pub(crate) oldest_ms: Option<i64>,
    /// Dropped because the outbox was full.
    pub(crate) dropped: u64,
    /// Dropped because they were older than `max_age_ms`.
    pub(crate) expired: u64,
    /// Produced again by a restore but already delivered: not sent again.
    pub(crate) replayed: u64,
}

/// A sink's durable outbox.
pub(crate) struct Outbox {
    /// The ids of the results delivered (kept only when `exactly_once`).
    delivered: Arc<Mutex<Delivered>>,
    meta: sled::Tree,
    config: OutboxConfig,
    /// Whether checkpoints restore this pipeline (else no ids are kept).
    exactly_once: bool,
    state: Mutex<State>,
    /// Wakes the delivery task when results come or the outbox closes.
    wake: tokio::sync::Notify,
    /// Results delivered so far in this run.
    pub(super) delivered_total: AtomicU64,
    sink: String,
    /// The folder of its segment files, one folder per rank.
    dir: PathBuf,
    /// A segment takes results until it reaches this size.
    segment_bytes: u64,
}

/// The results of one priority.
struct Rank {
    log: Log,
    /// The first result not removed (delivered, dropped or expired).
    head: Place,
    /// The next result to take: those from the head to here are in flight.
    read: Place,
}

/// A stretch of one rank's log taken in a batch.
#[derive(Debug, Clone, Copy)]
struct Span {
    rank: usize,
    start: Place,
    end: Place,
}

/// A batch taken and not done yet.
struct Taken {
    spans: Vec<Span>,
    /// The sequence number and id of each result.
    ids: Vec<(u64, String)>,
}

struct State {
    next_seq: u64,
    counters: OutboxCounters,
    ranks: Vec<Rank>,
    /// The batches taken and not done yet, oldest first (at most two: one
    /// going out while the one before is finished).
    in_flight: VecDeque<Arc<Taken>>,
    closed: bool,
    refused: Vec<DeadLetterEntry>,
    /// Where the delivered ids' log ended at each of the last two
    /// checkpoints, oldest first. A result delivered before the first was
    /// added before that checkpoint: its id is no longer needed.
    marks: VecDeque<u64>,
    /// Ids delivered after the checkpoint a restore went back to.
    already_delivered: HashSet<String>,
    /// The sequence numbers a restore dropped (from the position it went
    /// back to up to the next number then): a batch taken before it and
    /// delivered after it adds their ids to `already_delivered`.
    rewound: Option<std::ops::Range<u64>>,
    /// Ranks whose head moved since it was last recorded.
    heads_moved: Vec<usize>,
    last_sync: Instant,
}

impl State {
    /// Where the head of `rank` is: at its first result in flight, else at
    /// the next to take.
    fn head_of(&self, rank: usize) -> Option<Place> {
        let r = self.ranks.get(rank)?;
        let in_flight = self
            .in_flight
            .iter()
            .flat_map(|t| t.spans.iter())
            .find(|s| s.rank == rank && s.start.index < s.end.index);
        Some(in_flight.map_or(r.read, |s| s.start))
    }

    /// Moves the head of `rank` to where it is now.
    fn settle_head(&mut self, rank: usize) {
        if let Some(head) = self.head_of(rank)
            && self.ranks[rank].head != head
        {
            self.ranks[rank].head = head;
            if !self.heads_moved.contains(&rank) {
                self.heads_moved.push(rank);
            }
        }
    }

    /// Forgets the segments of `rank` that hold nothing in flight or
    /// waiting (delivered, dropped or expired); gives their files.
    fn release(&mut self, rank: usize) -> Vec<std::path::PathBuf> {
        let Some(r) = self.ranks.get(rank) else {
            return Vec::new();
        };
        let mut needed: Vec<std::ops::Range<u64>> = self
            .in_flight
            .iter()
            .flat_map(|t| t.spans.iter())
            .filter(|s| s.rank == rank)
            .map(|s| s.start.index..s.end.index)
            .collect();
        needed.push(r.read.index..r.log.tail().index);
        self.ranks[rank].log.release(&needed)
    }

    /// Whether `rank` has results that are not taken.
    fn waiting(&self, rank: usize) -> bool {
        self.ranks
            .get(rank)
            .is_some_and(|r| r.read.index < r.log.tail().index)
    }
}

/// The meta key of a rank's head.
fn head_key(rank: usize) -> Vec<u8> {
    let mut key = HEAD.to_vec();
    key.extend_from_slice(&(rank as u64).to_be_bytes());
    key
}

fn encode_place(place: Place) -> [u8; 24] {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&place.index.to_be_bytes());
    bytes[8..16].copy_from_slice(&place.segment.to_be_bytes());
    bytes[16..].copy_from_slice(&place.offset.to_be_bytes());
    bytes
}

fn decode_place(bytes: &[u8]) -> Option<Place> {
    let word = |i: usize| bytes.get(i..i + 8)?.try_into().ok().map(u64::from_be_bytes);
    Some(Place {
        index: word(0)?,
        segment: word(8)?,
        offset: word(16)?,
    })
}

fn now_ms() -> i64 {
    eddy_codec::now_ms()
}

/// The folder of the outbox of `sink` in `pipeline`.
fn outbox_dir(store: &StateStore, pipeline: &str, sink: &str) -> PathBuf {
    store
        .outbox_dir()
        .join(folder_name(pipeline))
        .join(folder_name(sink))
}

/// The ranks that have a folder in `dir`.
fn ranks_on_disk(dir: &Path) -> usize {
    let Ok(items) = std::fs::read_dir(dir) else {
        return 0;
    };
    items
        .filter_map(|i| i.ok()?.file_name().to_str()?.parse::<usize>().ok())
        .map(|r| r + 1)
        .max()
        .unwrap_or(0)
}

impl Outbox {
    /// Opens (or creates) the outbox of `sink` in pipeline `pipeline`.
    pub(crate) fn open(
        store: &StateStore,
        pipeline: &str,
        sink: &str,
        config: OutboxConfig,
        exactly_once: bool,
    ) -> Result<Outbox, OutboxError> {
        let place = outbox_dir(store, pipeline, sink);
        Outbox::open_in(
            store,
            pipeline,
            sink,
            config,
            exactly_once,
            place,
            log::SEGMENT_BYTES,
        )
    }

    /// Opens it with its segment files in `dir`, each up to
    /// `segment_bytes`.
    fn open_in(
        store: &StateStore,
        pipeline: &str,
        sink: &str,
        config: OutboxConfig,
        exactly_once: bool,
        dir: PathBuf,
        segment_bytes: u64,
    ) -> Result<Outbox, OutboxError> {
        let fail = |e: &dyn std::fmt::Display| OutboxError {
            sink: sink.to_owned(),
            error: e.to_string(),
        };
        let db = store.db();
        let mut delivered = Delivered::open(&dir, segment_bytes)
            .map_err(|e| fail(&format_args!("{}: {e}", dir.display())))?;
        move_delivered_ids(
            db,
            &format!("{pipeline}/outbox/{sink}/delivered"),
            &mut delivered,
        )
        .map_err(|e| fail(&e))?;
        let meta = db
            .open_tree(format!("{pipeline}/outbox/{sink}/meta"))
            .map_err(|e| fail(&e))?;
        let count = ranks_on_disk(&dir).max(config.priorities.len() + 1);
        let mut ranks = Vec::with_capacity(count);
        let mut counters = OutboxCounters::default();
        let mut next_seq = meta
            .get(NEXT_SEQ)
            .map_err(|e| fail(&e))?
            .and_then(|v| v.as_ref().try_into().ok())
            .map_or(0, u64::from_be_bytes);
        for rank in 0..count {
            let recorded = meta
                .get(head_key(rank))
                .map_err(|e| fail(&e))?
                .and_then(|v| decode_place(&v));
            let rank_dir = dir.join(rank.to_string());
            let (mut log, head) = Log::open(&rank_dir, recorded, segment_bytes)
                .map_err(|e| fail(&format_args!("{}: {e}", rank_dir.display())))?;
            counters.entries += log.entries_from(head);
            counters.bytes += log.bytes_from(head);
            if let Some(last) = log.last_seq() {
                next_seq = next_seq.max(last + 1);
            }
            let tail = log.tail().index;
            let needed = head.index..tail;
            for gone in log.release(std::slice::from_ref(&needed)) {
                std::fs::remove_file(&gone)
                    .map_err(|e| fail(&format_args!("{}: {e}", gone.display())))?;
            }
            ranks.push(Rank {
                log,
                head,
                read: head,
            });
        }
        // Numbers of delivered results are not given again either.
        if let Some(highest) = delivered.highest() {
            next_seq = next_seq.max(highest + 1);
        }
        let outbox = Outbox {
            delivered: Arc::new(Mutex::new(delivered)),
            meta,
            config,
            exactly_once,
            state: Mutex::new(State {
                next_seq,
                counters,
                ranks,
                in_flight: VecDeque::new(),
                closed: false,
                refused: Vec::new(),
                marks: VecDeque::new(),
                already_delivered: HashSet::new(),
                rewound: None,
                heads_moved: Vec::new(),
                last_sync: Instant::now(),
            }),
            wake: tokio::sync::Notify::new(),
            delivered_total: AtomicU64::new(0),
            sink: sink.to_owned(),
            dir,
            segment_bytes,
        };
        outbox.migrate(db, pipeline)?;
        let mut state = outbox.state();
        state.counters.oldest_ms = outbox.oldest(&mut state)?;
        drop(state);
        Ok(outbox)
    }

    /// Moves the results an older version kept in a sled tree (keyed by
    /// rank and sequence number, valued by time added and result) into the
    /// segment files, in order, then empties the tree.
    fn migrate(&self, db: &sled::Db, pipeline: &str) -> Result<(), OutboxError> {
        let name = format!("{pipeline}/outbox/{}", self.sink);
        if !db
            .tree_names()
            .iter()
            .any(|t| t.as_ref() == name.as_bytes())
        {
            return Ok(());
        }
        let old = db.open_tree(&name).map_err(|e| self.fail(e))?;
        // Moved before, and stopped before the tree went: not again.
        let done = self.meta.get(MIGRATED).map_err(|e| self.fail(e))?.is_some();
        let mut state = self.state();
        let mut moved = 0u64;
        for item in old.iter().filter(|_| !done) {
            let (k, v) = item.map_err(|e| self.fail(e))?;
            let (Some(&rank), Some(seq), Some(added)) = (
                k.first(),
                k.get(1..9)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes),
                v.get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(i64::from_be_bytes),
            ) else {
                continue;
            };
            let rank = self.ensure_rank(&mut state, usize::from(rank))?;
            let payload = &v[8..];
            state.ranks[rank]
                .log
                .append(seq, added, payload)
                .map_err(|e| self.fail(e))?;
            state.counters.entries += 1;
            state.counters.bytes += log::HEADER + payload.len() as u64;
            state.next_seq = state.next_seq.max(seq + 1);
            moved += 1;
        }
        self.sync(&mut state)?;
        drop(state);
        self.meta.insert(MIGRATED, &[1]).map_err(|e| self.fail(e))?;
        self.meta.flush().map_err(|e| self.fail(e))?;
        old.clear().map_err(|e| self.fail(e))?;
        drop(old);
        db.drop_tree(&name).map_err(|e| self.fail(e))?;
        if moved > 0 {
            tracing::info!(sink = %self.sink, results = moved, "outbox: results of an older version moved to segment files");
        }
        Ok(())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The delivered ids' log (locked after the state when both are).
    fn delivered(&self) -> MutexGuard<'_, Delivered> {
        self.delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, e: impl std::fmt::Display) -> OutboxError {
        OutboxError {
            sink: self.sink.clone(),
            error: e.to_string(),
        }
    }

    /// The priority rank of a node output: its place in `priorities`
    /// (`alerts` covers `alerts` and `alerts.cleared`), else after them.
    fn rank(&self, output: &str) -> usize {
        let listed = self.config.priorities.iter().position(|p| {
            output == p
                || output
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        });
        listed.unwrap_or(self.config.priorities.len())
    }

    /// Makes sure `rank` has its log (an older run's may be absent).
    fn ensure_rank(&self, state: &mut State, rank: usize) -> Result<usize, OutboxError> {
        while state.ranks.len() <= rank {
            let r = state.ranks.len();
            let (log, head) =
                Log::open(&self.dir_of(r), None, self.segment_bytes).map_err(|e| self.fail(e))?;
            state.ranks.push(Rank {
                log,
                head,
                read: head,
            });
        }
        Ok(rank)
    }

    fn dir_of(&self, rank: usize) -> PathBuf {
        self.dir.join(rank.to_string())
    }

    /// Adds results at the end of their priority, as the policy allows.
    pub(crate) fn push(&self, outs: impl Iterator<Item = OwnedOut>) -> Result<(), OutboxError> {
        let now = now_ms();
        let mut state = self.state();
        let mut added = 0u64;
        let mut buf = Vec::new();
        for out in outs {
            if !state.already_delivered.is_empty() && state.already_delivered.remove(&out.id) {
                state.counters.replayed += 1;
                continue;
            }
            buf.clear();
            buf = postcard::to_extend(&out, buf).map_err(|e| self.fail(e))?;
            let size = log::HEADER + buf.len() as u64;
            if self.config.when_full == WhenFull::DropNewest
                && state.counters.bytes + size > self.config.max_bytes
            {
                state.counters.dropped += 1;
                continue;
            }
            let rank = self.ensure_rank(&mut state, self.rank(&out.output))?;
            let seq = state.next_seq;
            state.ranks[rank]
                .log
                .append(seq, now, &buf)
                .map_err(|e| self.fail(e))?;
            state.next_seq += 1;
            state.counters.entries += 1;
            state.counters.bytes += size;
            state.counters.oldest_ms.get_or_insert(now);
            added += 1;
        }
        if added == 0 {
            return Ok(());
        }
        for rank in &mut state.ranks {
            rank.log.write().map_err(|e| self.fail(e))?;
        }
        self.meta
            .insert(NEXT_SEQ, &state.next_seq.to_be_bytes())
            .map_err(|e| self.fail(e))?;
        if self.config.when_full == WhenFull::DropOldest {
            while state.counters.bytes > self.config.max_bytes {
                if !self.drop_one(&mut state)? {
                    break;
                }
                state.counters.dropped += 1;
            }
        }
        self.expire(&mut state)?;
        if !self.exactly_once && state.last_sync.elapsed() >= SYNC_EVERY {
            self.sync(&mut state)?;
        }
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// Syncs every rank's appended results to disk.
    fn sync(&self, state: &mut State) -> Result<(), OutboxError> {
        for rank in &mut state.ranks {
            rank.log.sync().map_err(|e| self.fail(e))?;
        }
        state.last_sync = Instant::now();
        Ok(())
    }

    /// Drops the oldest result of the lowest priority that has one not
    /// being delivered; whether one went.
    fn drop_one(&self, state: &mut State) -> Result<bool, OutboxError> {
        let lowest = state
            .ranks
            .iter()
            .rposition(|r| r.read.index < r.log.tail().index);
        let Some(rank) = lowest else {
            return Ok(false);
        };
        self.skip(state, rank).map(|size| size.is_some())
    }

    /// Skips the next result of `rank` to take, counting it out; its size,
    /// or `None` if none waits.
    fn skip(&self, state: &mut State, rank: usize) -> Result<Option<u64>, OutboxError> {
        let r = &mut state.ranks[rank];
        let Some((header, next)) = r.log.peek(r.read).map_err(|e| self.fail(e))? else {
            return Ok(None);
        };
        r.read = next;
        state.counters.entries = state.counters.entries.saturating_sub(1);
        state.counters.bytes = state.counters.bytes.saturating_sub(header.size);
        state.settle_head(rank);
        // Segments wholly dropped leave the disk now, in flight or not:
        // an outage that lasts does not fill it.
        for gone in state.release(rank) {
            std::fs::remove_file(&gone)
                .map_err(|e| self.fail(format_args!("{}: {e}", gone.display())))?;
        }
        Ok(Some(header.size))
    }

    /// Drops results older than `max_age_ms` at the front of each
    /// priority (those in flight go on).
    fn expire(&self, state: &mut State) -> Result<(), OutboxError> {
        if self.config.max_age_ms != 0 {
            let limit = now_ms() - self.config.max_age_ms as i64;
            for rank in 0..state.ranks.len() {
                loop {
                    let r = &mut state.ranks[rank];
                    let next = r.log.peek(r.read).map_err(|e| self.fail(e))?;
                    if next.is_none_or(|(h, _)| h.added_ms >= limit) {
                        break;
                    }
                    self.skip(state, rank)?;
                    state.counters.expired += 1;
                }
            }
        }
        state.counters.oldest_ms = self.oldest(state)?;
        Ok(())
    }

    /// When the oldest waiting result was added.
    fn oldest(&self, state: &mut State) -> Result<Option<i64>, OutboxError> {
        let mut oldest: Option<i64> = None;
        for r in &mut state.ranks {
            if let Some((header, _)) = r.log.peek(r.head).map_err(|e| self.fail(e))? {
                oldest = Some(oldest.map_or(header.added_ms, |o| o.min(header.added_ms)));
            }
        }
        Ok(oldest)
    }

    /// What it holds and has dropped.
    pub(crate) fn counters(&self) -> OutboxCounters {
        self.state().counters
    }

    /// Whether it is full and its policy is to block.
    pub(crate) fn blocking(&self) -> bool {
        self.config.when_full == WhenFull::Block
            && self.state().counters.bytes >= self.config.max_bytes
    }

    /// Records the heads that moved (flushed with the next flush of the
    /// store).
    fn record_heads(&self, state: &mut State) -> Result<(), OutboxError> {
        for rank in std::mem::take(&mut state.heads_moved) {
            let head = state.ranks[rank].head;
            self.meta
                .insert(head_key(rank), &encode_place(head))
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// At a checkpoint: the results added so far on disk, and the position
    /// after them.
    pub(crate) fn commit(&self) -> Result<u64, OutboxError> {
        let mut state = self.state();
        self.sync(&mut state)?;
        self.record_heads(&mut state)?;
        let position = state.next_seq;
        let mut delivered = self.delivered();
        state.marks.push_back(delivered.mark());
        if state.marks.len() > 2 {
            state.marks.pop_front();
        }
        // Results delivered before the older of the last two checkpoints
        // are never produced again: a restore goes back at most that far.
        if let Some(&floor) = state.marks.front() {
            for gone in delivered.forget_before(floor) {
                std::fs::remove_file(&gone)
                    .map_err(|e| self.fail(format_args!("{}: {e}", gone.display())))?;
            }
        }
        Ok(position)
    }

    /// After a crash: cuts what was added at or after `position` (the
    /// replay adds it again) and remembers which of those were delivered.
    /// Sequence numbers go on from the highest ever given, never back to
    /// `position`: an entry numbered before the restore (a batch the
    /// delivery task had already taken, the ids of delivered results) is
    /// never confused with a new one.
    pub(crate) fn rewind(&self, position: u64) -> Result<(), OutboxError> {
        let mut state = self.state();
        let state = &mut *state;
        for rank in 0..state.ranks.len() {
            let r = &mut state.ranks[rank];
            let cut = r.log.cut_from(position).map_err(|e| self.fail(e))?;
            if r.read.index > cut.index {
                r.read = cut;
            }
            // A batch in flight ends at the cut: what it took after it is
            // gone from the log (and, once delivered, known by its ids).
            let clamp = |p: &mut Place| {
                if p.index > cut.index {
                    *p = cut;
                }
            };
            for taken in &mut state.in_flight {
                let mut spans = taken.spans.clone();
                for span in spans.iter_mut().filter(|s| s.rank == rank) {
                    clamp(&mut span.start);
                    clamp(&mut span.end);
                }
                *taken = Arc::new(Taken {
                    spans,
                    ids: taken.ids.clone(),
                });
            }
            state.settle_head(rank);
        }
        state.counters.entries = 0;
        state.counters.bytes = 0;
        for r in &state.ranks {
            state.counters.entries += r.log.entries_from(r.head);
            state.counters.bytes += r.log.bytes_from(r.head);
        }
        // Every head is written again: one the delivery task recorded
        // meanwhile may lie past the cut.
        state.heads_moved = (0..state.ranks.len()).collect();
        let mut delivered = self.delivered();
        state.already_delivered = delivered.ids_from(position).map_err(|e| self.fail(e))?;
        state.next_seq = state.next_seq.max(position);
        state.rewound = Some(position..state.next_seq);
        // Every id is kept until two checkpoints after this one: another
        // crash before then restores this one again.
        state.marks.clear();
        state.marks.push_back(delivered.first());
        drop(delivered);
        state.counters.oldest_ms = self.oldest(state)?;
        self.record_heads(state)?;
        self.meta
            .insert(NEXT_SEQ, &state.next_seq.to_be_bytes())
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Moves the results the peer refused to `dead`.
    pub(crate) fn take_refused(&self, dead: &mut Vec<DeadLetterEntry>) {
        let mut state = self.state();
        if !state.refused.is_empty() {
            dead.append(&mut state.refused);
        }
    }

    /// No more results will come: the task delivers what is left and ends.
    pub(crate) fn close(&self) {
        self.state().closed = true;
        self.wake.notify_one();
    }

    /// The next batch, highest priority first, in order within one: from
    /// where the last batch taken of each priority ended (a result of a
    /// higher priority added meanwhile goes in the batch after).
    fn next_batch(&self, max: usize) -> Result<Option<Arc<Vec<OwnedOut>>>, OutboxError> {
        let mut state = self.state();
        self.expire(&mut state)?;
        let mut batch = Vec::new();
        let mut taken = Taken {
            spans: Vec::new(),
            ids: Vec::new(),
        };
        for rank in 0..state.ranks.len() {
            if batch.len() >= max {
                break;
            }
            let (start, entries, end) = loop {
                let r = &mut state.ranks[rank];
                let start = r.read;
                match r.log.read(start, max - batch.len()) {
                    Ok((entries, end)) => break (start, entries, end),
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        // Damaged on disk (a power cut): the rest of that
                        // segment is given up, counted, and delivery goes
                        // on from the next.
                        let (next, entries, bytes) = r.log.skip_segment(start);
                        tracing::error!(sink = %self.sink, "outbox: {e}; {entries} results given up");
                        r.read = next;
                        state.counters.dropped += entries;
                        state.counters.entries = state.counters.entries.saturating_sub(entries);
                        state.counters.bytes = state.counters.bytes.saturating_sub(bytes);
                        state.settle_head(rank);
                    }
                    Err(e) => return Err(self.fail(e)),
                }
            };
            if entries.is_empty() {
                continue;
            }
            for entry in entries {
                let out: OwnedOut = postcard::from_bytes(&entry.payload)
                    .map_err(|e| self.fail(format!("an entry cannot be read: {e}")))?;
                taken.ids.push((entry.header.seq, out.id.clone()));
                batch.push(out);
            }
            state.ranks[rank].read = end;
            taken.spans.push(Span { rank, start, end });
        }
        if batch.is_empty() {
            return Ok(None);
        }
        state.in_flight.push_back(Arc::new(taken));
        Ok(Some(Arc::new(batch)))
    }
}

/// Results a delivery from the outbox takes at once: each delivered batch
/// costs one transaction and one flush.
const BATCH: usize = 4096;

impl Backlog for Outbox {
    fn batch_size(&self) -> usize {
        BATCH
    }
    async fn take(&self, max: usize) -> Option<Arc<Vec<OwnedOut>>> {
        loop {
            match self.next_batch(max) {
                Ok(Some(batch)) => return Some(batch),
                Ok(None) => {
                    if self.state().closed {
                        return None;
                    }
                }
                Err(e) => {
                    tracing::error!("{e}");
                    return None;
                }
            }
            self.wake.notified().await;
        }
    }

    fn try_take_next(&self, max: usize) -> Option<Arc<Vec<OwnedOut>>> {
        {
            let state = self.state();
            if state.in_flight.len() != 1 {
                return None;
            }
            // A result of a higher priority came meanwhile: it goes next,
            // once the batch in flight is done.
            let first = state
                .in_flight
                .front()
                .and_then(|t| t.spans.first())
                .map_or(0, |s| s.rank);
            if (0..first).any(|rank| state.waiting(rank)) {
                return None;
            }
        }
        self.next_batch(max).unwrap_or_else(|e| {
            tracing::error!("{e}");
            None
        })
    }

    async fn done(&self, delivered: usize, refused: Vec<DeadLetterEntry>) {
        // Still in flight (kept from dropping and expiry) until recorded.
        let Some(taken) = self.state().in_flight.front().cloned() else {
            return;
        };
        // The ids, then the heads after the batch, are recorded and
        // flushed before the batch leaves: a crash before leaves it to be
        // sent again (as a crash between the broker's acknowledgement and
        // this would), never a result gone unsent. Off the async threads,
        // while the next batch goes out: this costs as much as sending.
        let fail = |e: &dyn std::fmt::Display| {
            tracing::error!(sink = %self.sink, "outbox: a delivered batch could not be recorded: {e}");
        };
        if self.exactly_once {
            let delivered = Arc::clone(&self.delivered);
            let ids = Arc::clone(&taken);
            let record = move || {
                delivered
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(&ids.ids)
            };
            match tokio::task::spawn_blocking(record).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => fail(&e),
                Err(e) => fail(&e),
            }
        }
        {
            // The batch as it is now: a restore meanwhile may have cut it.
            let state = self.state();
            let spans = state.in_flight.front().map_or(&[][..], |t| &t.spans[..]);
            for span in spans {
                if let Err(e) = self
                    .meta
                    .insert(head_key(span.rank), &encode_place(span.end))
                {
                    fail(&e);
                }
            }
        }
        let meta = self.meta.clone();
        match tokio::task::spawn_blocking(move || meta.flush()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => fail(&e),
            Err(e) => fail(&e),
        }
        let gone = self.finish_batch(taken, refused);
        if !gone.is_empty() {
            let removed =
                tokio::task::spawn_blocking(move || gone.iter().try_for_each(std::fs::remove_file))
                    .await;
            if let Ok(Err(e)) = removed {
                tracing::error!(sink = %self.sink, "outbox: a delivered segment could not be removed: {e}");
            }
        }
        self.delivered_total
            .fetch_add(delivered as u64, Ordering::Relaxed);
    }
}

impl Outbox {
    /// A batch is recorded as delivered: it leaves, the heads move after
    /// it; gives the segment files no longer needed.
    fn finish_batch(&self, taken: Arc<Taken>, refused: Vec<DeadLetterEntry>) -> Vec<PathBuf> {
        let mut state = self.state();
        let taken = state.in_flight.pop_front().unwrap_or(taken);
        // A batch taken before a restore went back past it: the replay
        // must not send its results again.
        if self.exactly_once
            && let Some(dropped) = state.rewound.clone()
        {
            for (seq, id) in &taken.ids {
                if dropped.contains(seq) {
                    state.already_delivered.insert(id.clone());
                }
            }
        }
        for span in &taken.spans {
            let bytes = state.ranks[span.rank]
                .log
                .bytes_between(span.start, span.end);
            state.counters.bytes = state.counters.bytes.saturating_sub(bytes);
            let entries = span.end.index.saturating_sub(span.start.index);
            state.counters.entries = state.counters.entries.saturating_sub(entries);
        }
        let mut gone = Vec::new();
        for span in &taken.spans {
            state.settle_head(span.rank);
            gone.extend(state.release(span.rank));
        }
        state.counters.oldest_ms = self.oldest(&mut state).unwrap_or_else(|e| {
            tracing::error!("{e}");
            None
        });
        state.refused.extend(refused);
        gone
    }
}

/// Moves the delivered ids an older version kept in the sled tree `name`
/// (keyed by sequence number) into `delivered`, then drops the tree.
fn move_delivered_ids(db: &sled::Db, name: &str, delivered: &mut Delivered) -> Result<(), String> {
    if !db
        .tree_names()
        .iter()
        .any(|t| t.as_ref() == name.as_bytes())
    {
        return Ok(());
    }
    let tree = db.open_tree(name).map_err(|e| e.to_string())?;
    let mut ids = Vec::new();
    for item in tree.iter() {
        let (seq, id) = item.map_err(|e| e.to_string())?;
        let seq = seq.as_ref().try_into().map_or(0, u64::from_be_bytes);
        ids.push((seq, String::from_utf8_lossy(&id).into_owned()));
    }
    delivered.record(&ids).map_err(|e| e.to_string())?;
    drop(tree);
    db.drop_tree(name).map_err(|e| e.to_string())?;
    Ok(())
}
