//! The journal writer: appends journal groups on a thread of its own, so
//! that the pipeline thread only encodes what its sources read. Groups are
//! appended in the order they are queued, which is their numbers' order;
//! a group of a synced journal is appended the same way, and its sender
//! waits until it is on disk.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use super::journal_log::SYNC_EVERY;
use super::store::{JournalGroup, PipelineStore};

/// Groups waiting to be appended; beyond this the pipeline waits for the
/// disk. Groups are handed over every 256 KiB at most, so this is up to
/// 16 MiB: room for a slow sync of the disk at full speed.
const QUEUE: usize = 64;

/// A group to append, with its last entry's number; with a way to answer
/// when the sender waits for it to be on disk.
type Queued = (u64, JournalGroup, Option<SyncSender<Result<(), String>>>);

/// Appends [`JournalGroup`]s in order on its own thread.
pub struct JournalWriter {
    sender: Option<SyncSender<Queued>>,
    thread: Option<JoinHandle<()>>,
    failure: Arc<Mutex<Option<String>>>,
}

impl JournalWriter {
    /// Starts the writer thread for `store`.
    pub fn start(store: PipelineStore) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel(QUEUE);
        let failure = Arc::new(Mutex::new(None));
        let failed = failure.clone();
        let thread = std::thread::Builder::new()
            .name(format!("journal-{}", store.name()))
            .spawn(move || write(&store, &receiver, &failed))?;
        Ok(JournalWriter {
            sender: Some(sender),
            thread: Some(thread),
            failure,
        })
    }

    /// Queues a group whose last entry is number `last`; fails if an
    /// earlier append failed (the journal would have a hole). It reaches
    /// the disk within the journal's sync interval.
    pub fn append(&self, last: u64, group: JournalGroup) -> Result<(), String> {
        self.send((last, group, None))
    }

    /// Appends a group after those queued and waits until it is on disk.
    pub fn append_synced(&self, last: u64, group: JournalGroup) -> Result<(), String> {
        let (answer, answered) = sync_channel(1);
        self.send((last, group, Some(answer)))?;
        answered.recv().unwrap_or_else(|_| Err(self.stopped()))
    }

    fn send(&self, queued: Queued) -> Result<(), String> {
        if let Some(failure) = self.failure() {
            return Err(failure);
        }
        match &self.sender {
            Some(sender) if sender.send(queued).is_ok() => Ok(()),
            _ => Err(self.stopped()),
        }
    }

    fn stopped(&self) -> String {
        self.failure()
            .unwrap_or_else(|| "the journal writer stopped".into())
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn write(store: &PipelineStore, groups: &Receiver<Queued>, failure: &Mutex<Option<String>>) {
    let fail = |e: String| {
        tracing::error!(pipeline = store.name(), "journal append failed: {e}");
        *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
    };
    loop {
        match groups.recv_timeout(SYNC_EVERY) {
            Ok((last, group, answer)) => {
                let mut appended = store.journal_append(last, &group);
                if answer.is_some() {
                    appended = appended.and_then(|()| store.journal_sync());
                }
                let appended = appended.map_err(|e| e.to_string());
                if let Some(answer) = answer {
                    let _ = answer.send(appended.clone());
                }
                if let Err(e) = appended {
                    return fail(e);
                }
            }
            // Nothing new: what was written still reaches the disk in time.
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = store.journal_sync_if_due() {
                    return fail(e.to_string());
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                if let Err(e) = store.journal_sync() {
                    fail(e.to_string());
                }
                return;
            }
        }
    }
}

impl Drop for JournalWriter {
    /// Appends what is queued and syncs it, then ends the thread.
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
