//! Writes checkpoints off the pipeline thread.
//!
//! The pipeline thread takes a checkpoint's snapshot between two steps (the
//! sinks' and sources' positions, and each operator's state shared with
//! the running operator, see [`crate::state::CowMap`]) and hands it to the
//! committer, which encodes the operators' state, writes it with the
//! manifest, flushes and prunes, while the pipeline goes on. The pipeline
//! learns that the checkpoint is durable from [`Committer::finished`] (its
//! doorbell rings): only then does it let go of what the checkpoint covers
//! (acknowledgements to sources' peers, journal entries not appended yet).
//! One checkpoint is in flight at a time.

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use eddy_driver::Doorbell;

use super::snapshot::OperatorSnapshot;
use crate::checkpoint::{Manifest, PipelineStore, StoreError, StreamError};

/// A checkpoint to write.
pub(crate) struct Job {
    /// Its manifest; each operator's `len`, `crc` and `windows` are filled
    /// in when its state is encoded.
    pub(crate) manifest: Manifest,
    /// Each operator's state, in the manifest's order.
    pub(crate) snapshots: Vec<OperatorSnapshot>,
    /// How many checkpoints to keep.
    pub(crate) retain: usize,
    /// Checkpoints found damaged, pruned first.
    pub(crate) damaged: Vec<u64>,
}

/// What became of a [`Job`].
pub(crate) struct Committed {
    /// The checkpoint's id.
    pub(crate) id: u64,
    /// The bytes of operator state written, or why nothing was.
    pub(crate) outcome: Result<usize, CommitError>,
    /// How long encoding the operators' state and writing it took (before
    /// the file is synced).
    pub(crate) encode: Duration,
}

/// Why a checkpoint was not written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommitError {
    /// An operator's state could not be encoded: this checkpoint is
    /// skipped, the pipeline goes on.
    #[error("operator `{operator}`: {reason}")]
    Encode {
        /// The operator.
        operator: String,
        /// Why.
        reason: String,
    },
    /// The state store failed: the pipeline stops.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The thread that writes checkpoints, and the way back from it.
pub(crate) struct Committer {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Committed>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts the committer of `store`; it rings `doorbell` when a
    /// checkpoint is done.
    pub(crate) fn start(store: PipelineStore, doorbell: Doorbell) -> std::io::Result<Self> {
        let (jobs, queued) = sync_channel::<Job>(1);
        let (finished, done) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(format!("checkpoint-{}", store.name()))
            .spawn(move || {
                for job in queued {
                    if finished.send(commit(&store, job)).is_err() {
                        return;
                    }
                    doorbell.ring();
                }
            })?;
        Ok(Committer {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Hands over a checkpoint to write; the caller has none in flight.
    pub(crate) fn submit(&self, job: Job) -> Result<(), String> {
        match &self.jobs {
            Some(jobs) if jobs.send(job).is_ok() => Ok(()),
            _ => Err("the checkpoint writer stopped".into()),
        }
    }

    /// The checkpoint in flight, once it is done; with `wait`, waits for
    /// it. Fails if the committer's thread is gone.
    pub(crate) fn finished(&self, wait: bool) -> Result<Option<Committed>, String> {
        let stopped = || "the checkpoint writer stopped".to_owned();
        if wait {
            return self.done.recv().map(Some).map_err(|_| stopped());
        }
        match self.done.try_recv() {
            Ok(committed) => Ok(Some(committed)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(stopped()),
        }
    }
}

impl Drop for Committer {
    /// Finishes the checkpoint in flight, then ends the thread.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            // Unblock a thread waiting to hand over a result nobody reads.
            while self.done.recv().is_ok() {}
            let _ = thread.join();
        }
    }
}

/// Encodes, writes, flushes and prunes one checkpoint.
fn commit(store: &PipelineStore, job: Job) -> Committed {
    let id = job.manifest.id;
    let mut encode = Duration::ZERO;
    let outcome = write(store, job, &mut encode);
    Committed {
        id,
        outcome,
        encode,
    }
}

/// Streams each operator's state into the checkpoint's file as it is
/// encoded, then completes it and prunes; `encode` is set to the time
/// encoding and writing took, before the file is synced.
fn write(store: &PipelineStore, job: Job, encode: &mut Duration) -> Result<usize, CommitError> {
    let started = Instant::now();
    let Job {
        mut manifest,
        snapshots,
        retain,
        damaged,
    } = job;
    let mut file = store.state_file(manifest.id)?;
    for (operator, snapshot) in manifest.operators.iter_mut().zip(snapshots) {
        match snapshot.encode_to(&mut file) {
            Ok(()) => {}
            Err(StreamError::Write(e)) => return Err(store.state_file_failed(e).into()),
            Err(error) => {
                *encode = started.elapsed();
                return Err(CommitError::Encode {
                    operator: operator.name.clone(),
                    reason: error.to_string(),
                });
            }
        }
        (operator.len, operator.crc) = file.end_blob();
        operator.windows = snapshot.open_windows() as u64;
        // Dropped here: the shards it shared are the operator's alone again.
        drop(snapshot);
    }
    *encode = started.elapsed();
    let bytes = file.written() as usize;
    store.commit(&manifest, file)?;
    store.prune(retain, &damaged)?;
    Ok(bytes)
}
