//! The durable outbox of a sink that delivers to a broker: results wait in
//! the state store (sled), not in memory, until the broker has taken them.
//!
//! Layout, per sink `S` of pipeline `P`:
//! - `P/outbox/S`: the waiting results, by priority rank and sequence
//!   number (`u8` + `u64`, big endian, so a scan gives them highest
//!   priority first and in order within a priority); each value is the
//!   time it was added (`i64` ms, big endian) and the result (postcard);
//! - `P/outbox/S/delivered`: the result ids delivered since the
//!   checkpoint before the last, by sequence number, so that results a
//!   restore produces again are not sent twice;
//! - `P/outbox/S/meta`: the next sequence number.
//!
//! A checkpoint records the next sequence number ([`Outbox::commit`]). A
//! restore drops the results added after it ([`Outbox::rewind`]): the
//! replay adds them again, except those already delivered, which it
//! recognises by their ids. A delivered batch's ids are recorded, then the
//! batch leaves the outbox, flushed to disk before the next is taken.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use eddy_sink::OwnedOut;

use super::queue::Backlog;
use crate::checkpoint::StateStore;
use crate::config::{OutboxConfig, WhenFull};
use crate::sinks::DeadLetterEntry;

/// Why the outbox cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("outbox of sink `{sink}`: {error}")]
pub(crate) struct OutboxError {
    sink: String,
    error: String,
}

/// The key of the next sequence number in the meta tree.
const NEXT_SEQ: &[u8] = b"next_seq";

/// What the outbox holds, for `eddy status` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OutboxCounters {
    /// Results waiting.
    pub(crate) entries: u64,
    /// Their bytes on disk (keys and values).
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
    entries: sled::Tree,
    delivered: sled::Tree,
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
}

impl State {
    fn is_in_flight(&self, key: &[u8]) -> bool {
        self.in_flight.iter().flatten().any(|(k, ..)| k == key)
    }
}

struct State {
    next_seq: u64,
    counters: OutboxCounters,
    /// The batches taken and not done yet, oldest first (at most two: one
    /// going out while the one before is removed): the key, sequence
    /// number, id and size of each result.
    in_flight: VecDeque<Vec<(sled::IVec, u64, String, usize)>>,
    closed: bool,
    refused: Vec<DeadLetterEntry>,
    /// Positions of the last two checkpoints, oldest first: delivered ids
    /// older than the first are no longer needed.
    commits: VecDeque<u64>,
    /// Ids delivered after the checkpoint a restore went back to.
    already_delivered: HashSet<String>,
    /// The sequence numbers a restore dropped (from the position it went
    /// back to up to the next number then): a batch taken before it and
    /// delivered after it adds their ids to `already_delivered`.
    rewound: Option<std::ops::Range<u64>>,
}

fn key(rank: u8, seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = rank;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The sequence number of a key of the delivered ids.
fn seq_of_delivered(key: &[u8]) -> u64 {
    key.try_into().map_or(0, u64::from_be_bytes)
}

fn seq_of(key: &[u8]) -> u64 {
    key.get(1..9)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

fn now_ms() -> i64 {
    eddy_codec::now_ms()
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
        let fail = |e: sled::Error| OutboxError {
            sink: sink.to_owned(),
            error: e.to_string(),
        };
        let db = store.db();
        let entries = db
            .open_tree(format!("{pipeline}/outbox/{sink}"))
            .map_err(fail)?;
        let delivered = db
            .open_tree(format!("{pipeline}/outbox/{sink}/delivered"))
            .map_err(fail)?;
        let meta = db
            .open_tree(format!("{pipeline}/outbox/{sink}/meta"))
            .map_err(fail)?;
        let mut counters = OutboxCounters::default();
        let mut next_seq = meta
            .get(NEXT_SEQ)
            .map_err(fail)?
            .and_then(|v| v.as_ref().try_into().ok())
            .map_or(0, u64::from_be_bytes);
        for item in entries.iter() {
            let (k, v) = item.map_err(fail)?;
            counters.entries += 1;
            counters.bytes += (k.len() + v.len()) as u64;
            next_seq = next_seq.max(seq_of(&k) + 1);
        }
        // Numbers of delivered results are not given again either.
        if let Some((k, _)) = delivered.last().map_err(fail)? {
            next_seq = next_seq.max(seq_of_delivered(&k) + 1);
        }
        let outbox = Outbox {
            entries,
            delivered,
            meta,
            config,
            exactly_once,
            state: Mutex::new(State {
                next_seq,
                counters,
                in_flight: VecDeque::new(),
                closed: false,
                refused: Vec::new(),
                commits: VecDeque::new(),
                already_delivered: HashSet::new(),
                rewound: None,
            }),
            wake: tokio::sync::Notify::new(),
            delivered_total: AtomicU64::new(0),
            sink: sink.to_owned(),
        };
        outbox.state().counters.oldest_ms = outbox.oldest();
        Ok(outbox)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, e: impl std::fmt::Display) -> OutboxError {
        OutboxError {
            sink: self.sink.clone(),
            error: e.to_string(),
        }
    }

    /// The priority rank of a node output: its place in `priorities`
    /// (`alerts` covers `alerts` and `alerts.cleared`), else after them.
    fn rank(&self, output: &str) -> u8 {
        let listed = self.config.priorities.iter().position(|p| {
            output == p
                || output
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        });
        listed.unwrap_or(self.config.priorities.len()).min(255) as u8
    }

    /// Adds results at the end of their priority, as the policy allows.
    pub(crate) fn push(&self, outs: impl Iterator<Item = OwnedOut>) -> Result<(), OutboxError> {
        let now = now_ms();
        let mut state = self.state();
        let mut batch = sled::Batch::default();
        let mut added = 0u64;
        let mut buf = Vec::new();
        for out in outs {
            if !state.already_delivered.is_empty() && state.already_delivered.remove(&out.id) {
                state.counters.replayed += 1;
                continue;
            }
            buf.clear();
            buf.extend_from_slice(&now.to_be_bytes());
            buf = postcard::to_extend(&out, buf).map_err(|e| self.fail(e))?;
            let k = key(self.rank(&out.output), state.next_seq);
            let size = (k.len() + buf.len()) as u64;
            if self.config.when_full == WhenFull::DropNewest
                && state.counters.bytes + size > self.config.max_bytes
            {
                state.counters.dropped += 1;
                continue;
            }
            batch.insert(&k, buf.as_slice());
            state.next_seq += 1;
            state.counters.entries += 1;
            state.counters.bytes += size;
            state.counters.oldest_ms.get_or_insert(now);
            added += 1;
        }
        if added == 0 {
            return Ok(());
        }
        self.entries.apply_batch(batch).map_err(|e| self.fail(e))?;
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
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// Removes the oldest result of the lowest priority, unless it is
    /// being delivered; whether one went.
    fn drop_one(&self, state: &mut State) -> Result<bool, OutboxError> {
        // The lowest rank present: the last key's rank.
        let Some((last, _)) = self.entries.last().map_err(|e| self.fail(e))? else {
            return Ok(false);
        };
        let candidate = self
            .entries
            .range(key(last[0], 0)..)
            .next()
            .transpose()
            .map_err(|e| self.fail(e))?;
        let Some((k, v)) = candidate else {
            return Ok(false);
        };
        if state.is_in_flight(&k) {
            return Ok(false);
        }
        self.remove(state, &k, &v)?;
        Ok(true)
    }

    /// Removes one entry (not in flight) and counts it out.
    fn remove(&self, state: &mut State, k: &[u8], v: &[u8]) -> Result<(), OutboxError> {
        self.entries.remove(k).map_err(|e| self.fail(e))?;
        state.counters.entries = state.counters.entries.saturating_sub(1);
        state.counters.bytes = state
            .counters
            .bytes
            .saturating_sub((k.len() + v.len()) as u64);
        Ok(())
    }

    /// Drops results older than `max_age_ms` at the front of each
    /// priority.
    fn expire(&self, state: &mut State) -> Result<(), OutboxError> {
        if self.config.max_age_ms == 0 {
            return Ok(());
        }
        let limit = now_ms() - self.config.max_age_ms as i64;
        let mut rank = 0u8;
        loop {
            let first = self
                .entries
                .range(key(rank, 0)..)
                .next()
                .transpose()
                .map_err(|e| self.fail(e))?;
            let Some((k, v)) = first else { break };
            let added = added_ms(&v);
            if added < limit && !state.is_in_flight(&k) {
                self.remove(state, &k, &v)?;
                state.counters.expired += 1;
                continue;
            }
            match k[0].checked_add(1) {
                Some(next) if next > rank => rank = next,
                _ => break,
            }
        }
        state.counters.oldest_ms = self.oldest();
        Ok(())
    }

    /// When the oldest waiting result was added.
    fn oldest(&self) -> Option<i64> {
        let mut oldest: Option<i64> = None;
        let mut rank = 0u8;
        loop {
            let Some(Ok((k, v))) = self.entries.range(key(rank, 0)..).next() else {
                break;
            };
            let added = added_ms(&v);
            oldest = Some(oldest.map_or(added, |o| o.min(added)));
            match k[0].checked_add(1) {
                Some(next) => rank = next,
                None => break,
            }
        }
        oldest
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

    /// At a checkpoint: the position after everything added so far.
    pub(crate) fn commit(&self) -> Result<u64, OutboxError> {
        let mut state = self.state();
        let position = state.next_seq;
        state.commits.push_back(position);
        if state.commits.len() > 2 {
            state.commits.pop_front();
        }
        // Ids of results before the older of the last two checkpoints are
        // never produced again: a restore goes back at most that far.
        if let Some(&floor) = state.commits.front() {
            let old: Vec<sled::IVec> = self
                .delivered
                .range(..floor.to_be_bytes())
                .keys()
                .collect::<Result<_, _>>()
                .map_err(|e| self.fail(e))?;
            let mut batch = sled::Batch::default();
            for k in old {
                batch.remove(k);
            }
            self.delivered
                .apply_batch(batch)
                .map_err(|e| self.fail(e))?;
        }
        Ok(position)
    }

    /// After a crash: drops what was added at or after `position` (the
    /// replay adds it again) and remembers which of those were delivered.
    /// Sequence numbers go on from the highest ever given, never back to
    /// `position`: an entry numbered before the restore (a batch the
    /// delivery task had already taken, the ids of delivered results) is
    /// never confused with a new one.
    pub(crate) fn rewind(&self, position: u64) -> Result<(), OutboxError> {
        let mut state = self.state();
        let mut batch = sled::Batch::default();
        let mut removed = 0u64;
        let mut bytes = 0u64;
        for item in self.entries.iter() {
            let (k, v) = item.map_err(|e| self.fail(e))?;
            if seq_of(&k) >= position {
                removed += 1;
                bytes += (k.len() + v.len()) as u64;
                batch.remove(k);
            }
        }
        self.entries.apply_batch(batch).map_err(|e| self.fail(e))?;
        state.counters.entries = state.counters.entries.saturating_sub(removed);
        state.counters.bytes = state.counters.bytes.saturating_sub(bytes);
        state.already_delivered.clear();
        for item in self.delivered.range(position.to_be_bytes()..) {
            let (_, id) = item.map_err(|e| self.fail(e))?;
            state
                .already_delivered
                .insert(String::from_utf8_lossy(&id).into_owned());
        }
        state.next_seq = state.next_seq.max(position);
        state.rewound = Some(position..state.next_seq);
        state.commits.clear();
        state.commits.push_back(position);
        state.counters.oldest_ms = self.oldest();
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
    /// the front, or, with a batch in flight, after it (a result of a
    /// higher priority added meanwhile goes in the batch after).
    fn next_batch(&self, max: usize) -> Result<Option<Arc<Vec<OwnedOut>>>, OutboxError> {
        let mut state = self.state();
        self.expire(&mut state)?;
        let after = state
            .in_flight
            .back()
            .and_then(|b| b.last())
            .map(|(k, ..)| k.clone());
        let items = match after {
            Some(k) => self
                .entries
                .range((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded)),
            None => self.entries.iter(),
        };
        let mut batch = Vec::new();
        let mut taken = Vec::new();
        for item in items.take(max) {
            let (k, v) = item.map_err(|e| self.fail(e))?;
            let out: OwnedOut = postcard::from_bytes(v.get(8..).unwrap_or_default())
                .map_err(|e| self.fail(format!("an entry cannot be read: {e}")))?;
            let seq = seq_of(&k);
            taken.push((k.clone(), seq, out.id.clone(), k.len() + v.len()));
            batch.push(out);
        }
        if batch.is_empty() {
            return Ok(None);
        }
        state.in_flight.push_back(taken);
        Ok(Some(Arc::new(batch)))
    }
}

/// When an entry was added.
fn added_ms(value: &[u8]) -> i64 {
    value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, i64::from_be_bytes)
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
            // from the front, once the batch in flight is done.
            let front = state.in_flight.front().and_then(|b| b.first());
            let first = self.entries.first().ok().flatten();
            match (front, first) {
                (Some((k, ..)), Some((first, _))) if *k == first => {}
                _ => return None,
            }
        }
        self.next_batch(max).unwrap_or_else(|e| {
            tracing::error!("{e}");
            None
        })
    }

    async fn done(&self, delivered: usize, refused: Vec<DeadLetterEntry>) {
        // Still in flight (kept from dropping and expiry) until removed.
        let in_flight = self.state().in_flight.front().cloned().unwrap_or_default();
        // The ids first, then the entries: a crash between the two leaves
        // the batch to be sent again (as a crash between the broker's
        // acknowledgement and this would), never an entry gone unsent.
        let mut ids = sled::Batch::default();
        let mut gone = sled::Batch::default();
        for (k, seq, id, _) in &in_flight {
            if self.exactly_once {
                ids.insert(&seq.to_be_bytes(), id.as_bytes());
            }
            gone.remove(k);
        }
        // On a blocking thread, while the next batch goes out: removing
        // and flushing cost as much as sending. Delivered is delivered: on
        // disk before the batch after the next one goes.
        let (delivered_ids, entries) = (self.delivered.clone(), self.entries.clone());
        let removed = tokio::task::spawn_blocking(move || {
            delivered_ids.apply_batch(ids)?;
            entries.apply_batch(gone)?;
            entries.flush().map(drop)
        })
        .await;
        match removed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(sink = %self.sink, "outbox: a delivered batch could not be removed: {e}")
            }
            Err(e) => {
                tracing::error!(sink = %self.sink, "outbox: a delivered batch could not be removed: {e}")
            }
        }
        let mut state = self.state();
        state.in_flight.pop_front();
        // A batch taken before a restore went back past it: the replay
        // must not send its results again.
        if self.exactly_once
            && let Some(dropped) = state.rewound.clone()
        {
            for (_, seq, id, _) in &in_flight {
                if dropped.contains(seq) {
                    state.already_delivered.insert(id.clone());
                }
            }
        }
        let bytes: u64 = in_flight.iter().map(|(.., n)| *n as u64).sum();
        state.counters.entries = state
            .counters
            .entries
            .saturating_sub(in_flight.len() as u64);
        state.counters.bytes = state.counters.bytes.saturating_sub(bytes);
        state.counters.oldest_ms = self.oldest();
        state.refused.extend(refused);
        drop(state);
        self.delivered_total
            .fetch_add(delivered as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    //! The outbox against a real sled store in a temporary directory.

    use super::*;
    use eddy_abi::Record;

    fn out(output: &str, n: u64) -> OwnedOut {
        OwnedOut {
            output: output.into(),
            id: format!("p/{output}/k/r{n}/0"),
            record: Record::new("k", n as i64).with("v", n as f64),
        }
    }

    fn outbox(dir: &std::path::Path, config: OutboxConfig) -> Outbox {
        let store = StateStore::open(dir).unwrap();
        Outbox::open(&store, "p", "up", config, true).unwrap()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Takes one batch and says it was delivered; gives its ids.
    fn deliver(outbox: &Outbox, rt: &tokio::runtime::Runtime, max: usize) -> Vec<String> {
        rt.block_on(async {
            let batch = outbox.take(max).await.unwrap();
            outbox.done(batch.len(), Vec::new()).await;
            batch.iter().map(|o| o.id.clone()).collect()
        })
    }

    fn ids(output: &str, range: std::ops::Range<u64>) -> Vec<String> {
        range.map(|n| out(output, n).id).collect()
    }

    #[test]
    fn alerts_go_before_the_backlog_and_each_priority_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let config = OutboxConfig {
            priorities: vec!["alerts".into()],
            ..OutboxConfig::default()
        };
        let outbox = outbox(dir.path(), config);
        outbox.push((0..3).map(|n| out("stats", n))).unwrap();
        outbox.push((0..2).map(|n| out("alerts", n))).unwrap();
        outbox.push((3..5).map(|n| out("stats", n))).unwrap();
        assert_eq!(outbox.counters().entries, 7);
        let rt = runtime();
        let mut expected = ids("alerts", 0..2);
        expected.extend(ids("stats", 0..5));
        assert_eq!(deliver(&outbox, &rt, 100), expected);
        assert_eq!(outbox.counters().entries, 0);
        assert_eq!(outbox.counters().bytes, 0);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_of_the_lowest_priority_or_the_newest_or_blocks() {
        // Room for one alert and three stats results.
        let size = |output: &str| {
            let dir = tempfile::tempdir().unwrap();
            let o = outbox(dir.path(), OutboxConfig::default());
            o.push(std::iter::once(out(output, 0))).unwrap();
            o.counters().bytes
        };
        let room = size("alerts") + 3 * size("stats");
        for (when_full, kept_stats, dropped) in [
            (WhenFull::DropOldest, ids("stats", 3..6), 3),
            (WhenFull::DropNewest, ids("stats", 0..3), 3),
            (WhenFull::Block, ids("stats", 0..6), 0),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let config = OutboxConfig {
                max_bytes: room,
                when_full,
                priorities: vec!["alerts".into()],
                ..OutboxConfig::default()
            };
            let o = outbox(dir.path(), config);
            o.push(std::iter::once(out("alerts", 0))).unwrap();
            o.push((0..6).map(|n| out("stats", n))).unwrap();
            assert_eq!(o.counters().dropped, dropped, "{when_full:?}");
            // Full, which holds the pipeline back only with `block`.
            assert_eq!(o.blocking(), when_full == WhenFull::Block);
            let rt = runtime();
            let mut expected = ids("alerts", 0..1);
            expected.extend(kept_stats);
            assert_eq!(deliver(&o, &rt, 100), expected, "{when_full:?}");
            assert!(!o.blocking());
        }
    }

    #[test]
    fn a_restore_sends_nothing_twice_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        {
            let o = outbox(dir.path(), OutboxConfig::default());
            o.push((0..4).map(|n| out("stats", n))).unwrap();
            let position = o.commit().unwrap();
            assert_eq!(position, 4);
            // After the checkpoint: 4..8 added, 0..6 delivered, then a crash.
            o.push((4..8).map(|n| out("stats", n))).unwrap();
            assert_eq!(deliver(&o, &rt, 6), ids("stats", 0..6));
        }
        // Restarted: back to the checkpoint, and the replay produces 4..10.
        let o = outbox(dir.path(), OutboxConfig::default());
        o.rewind(4).unwrap();
        assert_eq!(o.counters().entries, 0, "6 and 7 were added after it");
        o.push((4..10).map(|n| out("stats", n))).unwrap();
        assert_eq!(o.counters().replayed, 2, "4 and 5 were delivered");
        assert_eq!(deliver(&o, &rt, 100), ids("stats", 6..10));
    }

    #[test]
    fn a_batch_taken_before_a_restore_and_delivered_after_it_removes_no_new_result() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        {
            let o = outbox(dir.path(), OutboxConfig::default());
            o.push((0..2).map(|n| out("stats", n))).unwrap();
            assert_eq!(o.commit().unwrap(), 2);
            o.push((2..5).map(|n| out("stats", n))).unwrap();
            assert_eq!(deliver(&o, &rt, 1), ids("stats", 0..1));
        }
        // Restarted: the delivery task takes 1..5 before the restore; the
        // replay then adds other results than before (a window closes
        // later), 10..13, while that batch is out.
        let o = outbox(dir.path(), OutboxConfig::default());
        let taken = rt.block_on(o.take(100)).unwrap();
        assert_eq!(
            taken.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
            ids("stats", 1..5)
        );
        o.rewind(2).unwrap();
        o.push((10..13).map(|n| out("stats", n))).unwrap();
        rt.block_on(o.done(taken.len(), Vec::new()));
        // Delivered after the restore: the replay adds 3 again, which goes
        // no second time; what the replay added goes out, none of it lost.
        o.push(std::iter::once(out("stats", 3))).unwrap();
        assert_eq!(deliver(&o, &rt, 100), ids("stats", 10..13));
        assert_eq!(o.counters().entries, 0);
    }

    #[test]
    fn the_next_batch_is_taken_while_the_one_before_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        let config = OutboxConfig {
            priorities: vec!["alerts".into()],
            ..OutboxConfig::default()
        };
        let o = outbox(dir.path(), config);
        o.push((0..5).map(|n| out("stats", n))).unwrap();
        let rt = runtime();
        let names = |b: &Arc<Vec<OwnedOut>>| b.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
        assert!(
            o.try_take_next(2).is_none(),
            "nothing in flight: no read-ahead"
        );
        let first = rt.block_on(o.take(2)).unwrap();
        assert_eq!(names(&first), ids("stats", 0..2));
        // The next batch continues where the first ended.
        let second = o.try_take_next(2).unwrap();
        assert_eq!(names(&second), ids("stats", 2..4));
        assert!(o.try_take_next(2).is_none(), "two in flight at most");
        rt.block_on(o.done(first.len(), Vec::new()));
        assert_eq!(o.counters().entries, 3, "only the first batch is gone");
        // An alert comes while the second batch is out: no read-ahead past
        // it; it goes next, from the front.
        o.push(std::iter::once(out("alerts", 0))).unwrap();
        assert!(o.try_take_next(2).is_none(), "the alert goes first");
        rt.block_on(o.done(second.len(), Vec::new()));
        let mut rest = ids("alerts", 0..1);
        rest.extend(ids("stats", 4..5));
        assert_eq!(deliver(&o, &rt, 100), rest);
        assert_eq!(o.counters().entries, 0);
    }

    #[test]
    fn results_older_than_max_age_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let config = OutboxConfig {
            max_age_ms: 50,
            ..OutboxConfig::default()
        };
        let o = outbox(dir.path(), config);
        o.push((0..3).map(|n| out("stats", n))).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(80));
        o.push(std::iter::once(out("stats", 3))).unwrap();
        assert_eq!(o.counters().expired, 3);
        assert_eq!(deliver(&o, &runtime(), 100), ids("stats", 3..4));
    }
}
