//! The journal writer: appends buffered journal groups on a thread of its
//! own, so that the pipeline thread only encodes what its sources read.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use super::store::{JournalGroup, PipelineStore};

/// Groups waiting to be appended; beyond this the pipeline waits for the disk.
const QUEUE: usize = 4;

/// Appends [`JournalGroup`]s in order on its own thread.
pub struct JournalWriter {
    sender: Option<SyncSender<(u64, JournalGroup)>>,
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
    /// earlier append failed (the journal would have a hole).
    pub fn append(&self, last: u64, group: JournalGroup) -> Result<(), String> {
        if let Some(failure) = self.failure() {
            return Err(failure);
        }
        match &self.sender {
            Some(sender) if sender.send((last, group)).is_ok() => Ok(()),
            _ => Err(self
                .failure()
                .unwrap_or_else(|| "the journal writer stopped".into())),
        }
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn write(
    store: &PipelineStore,
    groups: &Receiver<(u64, JournalGroup)>,
    failure: &Mutex<Option<String>>,
) {
    for (last, group) in groups {
        if let Err(e) = store.journal_append(last, &group) {
            tracing::error!(pipeline = store.name(), "journal append failed: {e}");
            *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
            return;
        }
    }
}

impl Drop for JournalWriter {
    /// Appends what is queued, then ends the thread.
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
