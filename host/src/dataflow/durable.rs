//! A graph's checkpoints, its recovery after a crash, and its ingest journal.
//! See [`crate::checkpoint`] for the guarantees.

use std::io::Read;
use std::time::{Duration, Instant};

use eddy_abi::Record;
use eddy_driver::Acknowledgement;

use super::committer::{CommitError, Committer, Job};
use super::graph::{Graph, RunError};
use super::snapshot::{SavedState, saved_state};
use crate::checkpoint::{
    Decoded, JournalEntry, JournalGroup, JournalWriter, Manifest, OperatorCheckpoint,
    PipelineStore, RestoreError, SinkCheckpoint, SourceCheckpoint, StateStore, StoreError,
};
use crate::config::{CheckpointConfig, JournalMode, StateVersionMismatch};

/// A graph's link to the state store.
pub(crate) struct Durability {
    store: PipelineStore,
    interval: Duration,
    retain: usize,
    pub(crate) next_at: Instant,
    next_id: u64,
    /// The last journal entry written.
    journal_seq: u64,
    recovered: bool,
    /// Buffered journal entries not yet appended, and since when.
    group: JournalGroup,
    group_since: Option<Instant>,
    /// Appends buffered groups off the pipeline thread.
    writer: JournalWriter,
    /// Checkpoints found damaged at recovery: pruned first, never kept
    /// instead of a good one.
    damaged: Vec<u64>,
    /// Writes checkpoints off the pipeline thread.
    committer: Committer,
    /// The checkpoint being written, if any.
    in_flight: Option<InFlight>,
    /// Acknowledgements of a checkpoint that was skipped: sent with the next.
    unsent: Acknowledgement,
    /// What checkpoints cost the pipeline so far.
    pub(super) stats: CheckpointStats,
}

/// A checkpoint handed to the committer and not durable yet.
struct InFlight {
    id: u64,
    started: Instant,
    /// How long the pipeline waited for its snapshot.
    stall: Duration,
    /// The last journal entry in its state.
    journal_seq: u64,
    /// What its sources' peers may let go once it is durable.
    acknowledgement: Acknowledgement,
}

/// What a run's checkpoints cost the pipeline thread while it ran (the
/// checkpoints at recovery and at the end of a run are left out: the
/// pipeline waits for those to be durable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Checkpoints taken while the run went on.
    pub taken: u64,
    /// The longest the pipeline waited for one: the sinks' commits and the
    /// snapshot of the operators' state; encoding and writing it are done
    /// off the pipeline thread.
    pub longest_stall: Duration,
}

/// Buffered journal entries are appended once they are this many bytes…
const GROUP_BYTES: usize = 256 << 10;
/// … or this old.
const GROUP_AGE: Duration = Duration::from_millis(100);

/// What recovery did, for the log and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The checkpoint restored, if any.
    pub checkpoint: Option<u64>,
    /// Its age when restored, in ms.
    pub age_ms: i64,
    /// Records replayed from the ingest journal.
    pub replayed: u64,
    /// Newer checkpoints that were damaged and skipped.
    pub damaged: Vec<u64>,
    /// How long reading, restoring and replaying took.
    pub took: Duration,
}

impl Graph {
    /// Sets what a graph not built from a pipeline file (a one-operator
    /// harness, a benchmark) does about durability: its `[checkpoint]` table
    /// and the `journal` mode of every source. Takes effect with
    /// [`Graph::attach_store`].
    pub fn configure_durability(&mut self, checkpoint: CheckpointConfig, journal: JournalMode) {
        self.checkpoint = checkpoint;
        for source in &mut self.sources {
            source.journal = journal;
        }
    }

    /// Makes the graph durable in `store` as its `[checkpoint]` table says:
    /// `run` then restores the last checkpoint first, and takes checkpoints
    /// as it goes. Does nothing when checkpoints are disabled.
    pub fn attach_store(&mut self, store: &StateStore) -> Result<(), RunError> {
        let CheckpointConfig {
            enabled,
            interval_ms,
            retain,
        } = self.checkpoint;
        if !enabled {
            return Ok(());
        }
        let store = store.pipeline(&self.name).map_err(RunError::State)?;
        store.remove_unfinished().map_err(RunError::State)?;
        let committer = Committer::start(store.clone(), self.doorbell.clone()).map_err(|e| {
            RunError::State(StoreError::Sled {
                path: store.store().path().to_owned(),
                error: e.into(),
            })
        })?;
        self.durability = Some(Durability {
            next_id: store.ids().first().map_or(1, |id| id + 1),
            journal_seq: store.journal_last(),
            writer: JournalWriter::start(store.clone()).map_err(|e| {
                RunError::State(StoreError::Sled {
                    path: store.store().path().to_owned(),
                    error: e.into(),
                })
            })?,
            store,
            interval: Duration::from_millis(interval_ms.max(1)),
            retain: retain.max(1),
            next_at: Instant::now(),
            recovered: false,
            group: JournalGroup::default(),
            group_since: None,
            damaged: Vec::new(),
            committer,
            in_flight: None,
            unsent: Acknowledgement::default(),
            stats: CheckpointStats::default(),
        });
        Ok(())
    }

    /// On the first run: restores the newest usable checkpoint, replays the
    /// journal, and takes a first checkpoint. Later runs: nothing.
    pub(crate) fn recover_once(&mut self) -> Result<Option<Recovery>, RunError> {
        let Some(durability) = &mut self.durability else {
            return Ok(None);
        };
        if durability.recovered {
            return Ok(None);
        }
        durability.recovered = true;
        let started = Instant::now();
        // Each operator's state is decoded as its file is read, and only
        // what will be restored: nothing of a run that read all its input,
        // nor of an operator gone or whose state version changed (restore
        // says which).
        let operators = &self.operators;
        let mut decode = |manifest: &Manifest, saved: &OperatorCheckpoint, input: &mut dyn Read| {
            let wanted = !manifest.finished
                && operators.iter().any(|o| {
                    *o.node.name == *saved.name
                        && o.node.logic.state_version() == saved.state_version
                });
            if !wanted {
                return Ok(None);
            }
            saved_state(input, saved.len).map(Some)
        };
        // A store that cannot be read is not damage: refuse to start rather
        // than pass over checkpoints that may be good.
        let (loaded, damaged) = durability
            .store
            .decode_latest(&mut decode)
            .map_err(|error| match error {
                RestoreError::Store(error) => RunError::State(error),
                RestoreError::Undecodable { operator, reason } => {
                    RunError::Restore { operator, reason }
                }
            })?;
        durability.damaged = damaged.iter().map(|(id, _)| *id).collect();
        let mut recovery = Recovery {
            damaged: damaged.iter().map(|(id, _)| *id).collect(),
            ..Recovery::default()
        };
        for (id, reason) in &damaged {
            tracing::warn!(pipeline = %self.name, checkpoint = id, "checkpoint is damaged ({reason}); falling back to the one before");
        }
        match loaded {
            Some(loaded) if !loaded.manifest.finished => {
                recovery.checkpoint = Some(loaded.manifest.id);
                recovery.age_ms = loaded.manifest.age_ms();
                tracing::info!(
                    pipeline = %self.name,
                    checkpoint = recovery.checkpoint,
                    age_ms = recovery.age_ms,
                    journal_after = loaded.manifest.journal_seq,
                    "restoring from checkpoint"
                );
                recovery.replayed = self.restore(loaded)?;
                recovery.took = started.elapsed();
                tracing::info!(
                    pipeline = %self.name,
                    checkpoint = recovery.checkpoint,
                    age_ms = recovery.age_ms,
                    replayed = recovery.replayed,
                    took_ms = recovery.took.as_millis() as u64,
                    "restored from checkpoint"
                );
            }
            Some(loaded) => tracing::info!(
                pipeline = %self.name,
                checkpoint = loaded.manifest.id,
                "the last run read all its input; starting from the beginning"
            ),
            None if !damaged.is_empty() => tracing::error!(
                pipeline = %self.name,
                "no checkpoint could be read; starting from empty state"
            ),
            None => {
                tracing::info!(pipeline = %self.name, "no checkpoint yet; starting from empty state")
            }
        }
        // A first checkpoint now, written while the run goes on: a crash
        // before the next one comes back here.
        self.start_checkpoint(false)?;
        Ok(Some(recovery))
    }

    /// Puts back a checkpoint's state and replays the journal after it;
    /// returns how many records were replayed.
    fn restore(&mut self, decoded: Decoded<SavedState>) -> Result<u64, RunError> {
        let Decoded {
            manifest,
            mut states,
        } = decoded;
        if let Some(durability) = &mut self.durability {
            // Entries journaled from now on are numbered after every entry
            // the checkpoint holds (the journal may have been pruned below
            // it, or its last entries never appended): until the next
            // checkpoint is durable, a crash comes back to this one and
            // replays what follows its number.
            durability.journal_seq = durability.journal_seq.max(manifest.journal_seq);
        }
        for slot in &mut self.operators {
            let node = &mut slot.node;
            let Some(i) = manifest
                .operators
                .iter()
                .position(|o| *o.name == *node.name)
            else {
                continue;
            };
            let saved = &manifest.operators[i];
            let current = node.logic.state_version();
            if saved.state_version != current {
                if slot.state_version_mismatch == StateVersionMismatch::Refuse {
                    return Err(RunError::StateVersion {
                        operator: node.name.to_string(),
                        plugin: node.logic.name().to_owned(),
                        saved: saved.state_version,
                        current,
                    });
                }
                tracing::warn!(
                    operator = &*node.name,
                    saved = saved.state_version,
                    current,
                    "state version changed: the operator starts with empty state, as the pipeline says"
                );
                continue;
            }
            // Decoded for every operator of the same name and state version.
            let Some(saved) = states[i].take() else {
                return Err(RunError::Restore {
                    operator: node.name.to_string(),
                    reason: "its state was not read from the checkpoint".to_owned(),
                });
            };
            node.restore(saved).map_err(|reason| RunError::Restore {
                operator: node.name.to_string(),
                reason,
            })?;
        }
        for saved in &manifest.operators {
            if !self.operators.iter().any(|o| *o.node.name == *saved.name) {
                tracing::warn!(
                    operator = saved.name,
                    "the checkpoint holds state of an operator the pipeline no longer has; it is dropped"
                );
            }
        }
        for sink in &mut self.sinks {
            let saved = manifest.sinks.iter().find(|s| *s.name == *sink.name);
            if let (Some(saved), Some(port)) = (saved, sink.port.as_mut()) {
                port.rewind(saved.position, saved.held.clone())
                    .map_err(|error| RunError::Sink {
                        sink: sink.name.to_string(),
                        error,
                    })?;
            }
        }
        if let Some(len) = manifest.dead_letter {
            self.dead_letter
                .rewind(len)
                .map_err(|error| RunError::DeadLetter {
                    path: self.dead_letter.path().to_owned(),
                    error,
                })?;
        }
        let mut positions: Vec<Option<Vec<u8>>> = Vec::with_capacity(self.sources.len());
        for source in &mut self.sources {
            let saved = manifest.sources.iter().find(|s| *s.name == *source.name);
            if let Some(saved) = saved {
                source.watermark = saved.watermark.clone();
                source.records_out = saved.records_out;
                source.ended = saved.ended;
            }
            positions.push(saved.and_then(|s| s.position.clone()));
        }
        let replayed = self.replay(manifest.journal_seq, &mut positions)?;
        for (source, position) in self.sources.iter_mut().zip(positions) {
            if let (Some(position), Some(driver)) = (position, source.driver.as_mut())
                && !source.ended
            {
                driver.seek(&position).map_err(|error| RunError::Source {
                    source_name: source.name.to_string(),
                    error,
                })?;
            }
        }
        Ok(replayed)
    }

    /// Feeds the journal entries after `seq` through the graph as if they
    /// were being read; updates each source's position to after its last entry.
    fn replay(&mut self, seq: u64, positions: &mut [Option<Vec<u8>>]) -> Result<u64, RunError> {
        let Some(durability) = &self.durability else {
            return Ok(0);
        };
        let entries = durability
            .store
            .journal_after(seq)
            .map_err(RunError::State)?;
        let mut replayed = 0;
        for (seq, bytes) in entries {
            let entry = match JournalEntry::decode(&bytes) {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::error!(pipeline = %self.name, seq, "journal entry unreadable ({e}); replay stops there");
                    break;
                }
            };
            let Some(i) = self.sources.iter().position(|s| *s.name == entry.source) else {
                continue;
            };
            replayed += entry.records.len() as u64;
            positions[i] = entry.position;
            if !entry.rejected.is_empty() {
                // The restore cut the dead-letter log back: they go in again.
                self.dead.push(super::graph::unreadable(
                    &self.sources[i].name,
                    entry.rejected,
                ));
            }
            let count = entry.records.len();
            let elements =
                self.sources[i].elements(entry.records, count, entry.ended, entry.watermark);
            self.deliver_source(i, elements, count);
            self.step_operators()?;
            self.step_sinks()?;
        }
        Ok(replayed)
    }

    /// Finishes the checkpoint in flight if it is done, and starts one if
    /// one is due and none is in flight.
    pub(crate) fn checkpoint_if_due(&mut self) -> Result<(), RunError> {
        self.hand_over_journal_group(false)?;
        self.finish_checkpoint(false)?;
        if self
            .durability
            .as_ref()
            .is_some_and(|d| d.in_flight.is_none() && Instant::now() >= d.next_at)
        {
            let started = Instant::now();
            self.start_checkpoint(false)?;
            if let Some(durability) = &mut self.durability
                && durability.in_flight.is_some()
            {
                let stall = started.elapsed();
                durability.stats.taken += 1;
                durability.stats.longest_stall = durability.stats.longest_stall.max(stall);
            }
        }
        Ok(())
    }

    /// A checkpoint could not be taken now: the next is due an interval later.
    fn checkpoint_later(&mut self) {
        if let Some(durability) = self.durability.as_mut() {
            durability.next_at = Instant::now() + durability.interval;
        }
    }

    /// Takes a checkpoint now (between steps, when nothing is in flight),
    /// and waits until it is durable: at recovery and at the end of a run.
    pub(crate) fn checkpoint(&mut self, finished: bool) -> Result<(), RunError> {
        // Gathered journal entries are on disk even if this checkpoint is
        // skipped.
        self.hand_over_journal_group(true)?;
        self.finish_checkpoint(true)?;
        self.start_checkpoint(finished)?;
        self.finish_checkpoint(true)
    }

    /// Takes a checkpoint's snapshot (between steps, when nothing is in
    /// flight) and hands it to the committer, which writes it while the
    /// pipeline goes on: the pipeline waits only for the sinks' commits
    /// and for the snapshot, which shares the operators' state.
    fn start_checkpoint(&mut self, finished: bool) -> Result<(), RunError> {
        if self.durability.is_none() {
            return Ok(());
        }
        // Input held for a restarting plugin is in no state a checkpoint
        // holds: the next one is taken once it has been processed.
        if self.operators.iter().any(|o| o.node.holding()) {
            self.checkpoint_later();
            return Ok(());
        }
        let started = Instant::now();
        let mut sinks = Vec::with_capacity(self.sinks.len());
        for sink in &mut self.sinks {
            let Some(port) = sink.port.as_mut() else {
                continue;
            };
            let position = match port.commit() {
                Ok(position) => position,
                Err(error) => {
                    // Its position is not known to be durable: no consistent
                    // checkpoint now; the next is due an interval later.
                    tracing::warn!(sink = &*sink.name, "checkpoint skipped: {error}");
                    self.checkpoint_later();
                    return Ok(());
                }
            };
            sinks.push(SinkCheckpoint {
                name: sink.name.to_string(),
                position,
                held: port.held_records(),
            });
        }
        let dead_letter = self
            .dead_letter
            .commit()
            .map_err(|error| RunError::DeadLetter {
                path: self.dead_letter.path().to_owned(),
                error,
            })?;
        let mut operators = Vec::with_capacity(self.operators.len());
        let mut snapshots = Vec::with_capacity(self.operators.len());
        for slot in &mut self.operators {
            let node = &mut slot.node;
            let (snapshot, size) = match node.snapshot() {
                Ok(snapshot) => snapshot,
                Err(fault) => {
                    // Its memory snapshot failed: no consistent checkpoint now.
                    tracing::warn!(operator = &*node.name, "checkpoint skipped: {fault}");
                    self.checkpoint_later();
                    return Ok(());
                }
            };
            operators.push(OperatorCheckpoint {
                name: node.name.to_string(),
                plugin: node.logic.name().to_owned(),
                plugin_version: node.logic.version().to_owned(),
                state_version: node.logic.state_version(),
                // Filled in by the committer, which encodes the state.
                len: 0,
                crc: 0,
                keys: size.keys,
                windows: 0,
                timers: size.timers,
            });
            snapshots.push(snapshot);
        }
        let sources = self
            .sources
            .iter()
            .map(|s| SourceCheckpoint {
                name: s.name.to_string(),
                position: s.driver.as_ref().and_then(|d| d.position()),
                watermark: s.watermark.clone(),
                records_out: s.records_out,
                ended: s.ended,
            })
            .collect();
        // What sources without a journal handed out is in this checkpoint:
        // their peers may let it go once it is durable.
        let mut acknowledgement = Acknowledgement::default();
        for source in &mut self.sources {
            if source.journal == JournalMode::Off
                && let Some(driver) = source.driver.as_mut()
            {
                acknowledgement.append(driver.take_acknowledgement());
            }
        }
        let Some(durability) = &mut self.durability else {
            return Ok(());
        };
        let manifest = Manifest {
            id: durability.next_id,
            created_ms: super::wall_clock_ms(),
            finished,
            journal_seq: durability.journal_seq,
            sources,
            sinks,
            dead_letter: Some(dead_letter),
            operators,
        };
        let job = Job {
            manifest,
            snapshots,
            retain: durability.retain,
            damaged: durability.damaged.clone(),
        };
        durability.committer.submit(job).map_err(|e| {
            RunError::State(StoreError::Sled {
                path: durability.store.store().path().to_owned(),
                error: sled::Error::Unsupported(e),
            })
        })?;
        let stall = started.elapsed();
        durability.in_flight = Some(InFlight {
            id: durability.next_id,
            started,
            stall,
            journal_seq: durability.journal_seq,
            acknowledgement,
        });
        durability.next_id += 1;
        durability.next_at = Instant::now() + durability.interval;
        Ok(())
    }

    /// Once the checkpoint in flight is durable (with `wait`, waits for
    /// it): lets go of what it covers. A checkpoint that could not be
    /// encoded is skipped; a store that failed stops the run.
    pub(super) fn finish_checkpoint(&mut self, wait: bool) -> Result<(), RunError> {
        let Some(durability) = &mut self.durability else {
            return Ok(());
        };
        if durability.in_flight.is_none() {
            return Ok(());
        }
        let committed = match durability.committer.finished(wait) {
            Ok(Some(committed)) => committed,
            Ok(None) => return Ok(()),
            Err(stopped) => {
                return Err(RunError::State(StoreError::Sled {
                    path: durability.store.store().path().to_owned(),
                    error: sled::Error::Unsupported(stopped),
                }));
            }
        };
        let Some(in_flight) = durability.in_flight.take() else {
            return Ok(());
        };
        debug_assert_eq!(in_flight.id, committed.id);
        let bytes = match committed.outcome {
            Ok(bytes) => bytes,
            Err(CommitError::Encode { operator, reason }) => {
                tracing::warn!(operator, "checkpoint skipped: {reason}");
                // Its acknowledgements wait for the next checkpoint.
                durability.unsent.append(in_flight.acknowledgement);
                return Ok(());
            }
            Err(CommitError::Store(error)) => return Err(RunError::State(error)),
        };
        // The damaged checkpoints are gone with its prune.
        durability.damaged.clear();
        // Buffered journal entries not appended yet are in its state.
        durability.group.drop_through(in_flight.journal_seq);
        if durability.group.is_empty() {
            durability.group_since = None;
        }
        std::mem::take(&mut durability.unsent).send();
        in_flight.acknowledgement.send();
        crate::internal_events::CheckpointTaken {
            pipeline: &self.name,
            id: committed.id,
            bytes,
            stall: in_flight.stall,
            encode: committed.encode,
            took: in_flight.started.elapsed(),
        }
        .emit();
        Ok(())
    }

    /// Appends what source `i` just read to the journal, if it keeps one.
    pub(crate) fn journal(
        &mut self,
        i: usize,
        records: &[Record],
        ended: bool,
        rejected: &[eddy_driver::Rejected],
    ) -> Result<(), RunError> {
        let source = &self.sources[i];
        let Some(durability) = &mut self.durability else {
            return Ok(());
        };
        if source.journal == JournalMode::Off
            || (records.is_empty() && !ended && rejected.is_empty())
        {
            return Ok(());
        }
        let driver = source.driver.as_ref();
        durability.journal_seq += 1;
        durability.group.push_with(durability.journal_seq, |out| {
            JournalEntry::encode(
                &source.name,
                driver.and_then(|d| d.position()).as_deref(),
                ended,
                records,
                driver.and_then(|d| d.watermark()),
                rejected,
                out,
            );
        });
        durability.group_since.get_or_insert_with(Instant::now);
        // Durable before the records go on.
        let sync = source.journal == JournalMode::Sync;
        self.hand_over_journal_group(sync)
    }

    /// Hands the gathered journal entries to the journal writer once they
    /// are [`GROUP_AGE`] old or [`GROUP_BYTES`] long, or now and waiting
    /// until they are on disk if `sync`. Called for every entry and at every
    /// turn of the loop, so that entries of a source gone quiet do not wait
    /// for the next checkpoint.
    pub(crate) fn hand_over_journal_group(&mut self, sync: bool) -> Result<(), RunError> {
        let Some(durability) = &mut self.durability else {
            return Ok(());
        };
        let Some(since) = durability.group_since else {
            return Ok(());
        };
        if durability.group.is_empty() {
            // A checkpoint holds what it gathered.
            durability.group_since = None;
            return Ok(());
        }
        if !(sync || durability.group.len() >= GROUP_BYTES || since.elapsed() >= GROUP_AGE) {
            return Ok(());
        }
        let group = std::mem::take(&mut durability.group);
        durability.group_since = None;
        let writer = &durability.writer;
        if sync {
            writer.append_synced(durability.journal_seq, group)
        } else {
            writer.append(durability.journal_seq, group)
        }
        .map_err(|e| {
            RunError::State(StoreError::Journal {
                path: durability
                    .store
                    .store()
                    .journal_dir(durability.store.name()),
                error: std::io::Error::other(e),
            })
        })
    }
}
