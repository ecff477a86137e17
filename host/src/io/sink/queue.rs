//! The buffer between the pipeline thread and a sink that delivers on the
//! async runtime, and the delivery loop that drains it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use eddy_sink::{OwnedOut, SinkError, SinkTask};

use super::buffer::admit;
use super::refused;
use crate::config::{BufferConfig, RetryConfig};
use crate::internal_events::ComponentRecords;
use crate::io::{Backoff, Health, Role};
use crate::sinks::DeadLetterEntry;

/// Records a delivery task takes from its buffer at once.
const DELIVERY_BATCH: usize = 512;

/// Where a delivery task takes its batches from: the in-memory
/// [`SinkQueue`], or a durable outbox.
pub(super) trait Backlog: Send + Sync + 'static {
    /// The most records a batch takes.
    fn batch_size(&self) -> usize {
        DELIVERY_BATCH
    }

    /// The next batch; `None` once closed and empty.
    fn take(&self, max: usize) -> impl Future<Output = Option<Arc<Vec<OwnedOut>>>> + Send;

    /// The next batch if one is there now, taken while the batch before
    /// is still in flight (delivered, its `done` not called yet), so that
    /// the one goes out while the other is finished; `None` for a backlog
    /// that has one batch in flight at a time.
    fn try_take_next(&self, _max: usize) -> Option<Arc<Vec<OwnedOut>>> {
        None
    }

    /// The oldest batch in flight is done: `delivered` of its records
    /// reached the peer, and the peer refused `refused` for good.
    fn done(
        &self,
        delivered: usize,
        refused: Vec<DeadLetterEntry>,
    ) -> impl Future<Output = ()> + Send;
}

/// A task sink's records, shared by the pipeline thread (which adds) and
/// the delivery task (which takes a batch at a time, and lets it go once
/// delivered).
#[derive(Default)]
pub(super) struct SinkQueue {
    state: Mutex<QueueState>,
    /// Wakes the delivery task when records come or the queue closes.
    wake: tokio::sync::Notify,
    /// Records delivered so far.
    pub(super) delivered: AtomicU64,
}

#[derive(Default)]
struct QueueState {
    records: VecDeque<OwnedOut>,
    /// The batch being delivered: still held until it is.
    in_flight: Option<Arc<Vec<OwnedOut>>>,
    closed: bool,
    refused: Vec<DeadLetterEntry>,
}

impl QueueState {
    fn in_flight(&self) -> usize {
        self.in_flight.as_ref().map_or(0, |b| b.len())
    }
}

impl SinkQueue {
    fn state(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds records as the buffer's policy says; returns how many were dropped.
    pub(super) fn push(
        &self,
        records: impl Iterator<Item = OwnedOut>,
        buffer: BufferConfig,
    ) -> u64 {
        let mut state = self.state();
        let mut dropped = 0;
        let mut any = false;
        for out in records {
            any = true;
            let stuck = state.in_flight();
            dropped += admit(&mut state.records, stuck, out, buffer);
        }
        drop(state);
        if any {
            self.wake.notify_one();
        }
        dropped
    }

    /// Records held: queued and in flight.
    pub(super) fn held(&self) -> usize {
        let state = self.state();
        state.records.len() + state.in_flight()
    }

    /// A copy of what is held, oldest first: the batch in flight, then the queue.
    pub(super) fn snapshot(&self) -> Vec<OwnedOut> {
        let state = self.state();
        let in_flight = state.in_flight.iter().flat_map(|b| b.iter());
        in_flight.chain(state.records.iter()).cloned().collect()
    }

    /// Puts records held before a restart in front of the queue.
    pub(super) fn restore(&self, records: Vec<OwnedOut>) {
        let mut state = self.state();
        for out in records.into_iter().rev() {
            state.records.push_front(out);
        }
        drop(state);
        self.wake.notify_one();
    }

    /// Moves the records the peer refused to `dead`.
    pub(super) fn take_refused(&self, dead: &mut Vec<DeadLetterEntry>) {
        let mut state = self.state();
        if !state.refused.is_empty() {
            dead.append(&mut state.refused);
        }
    }

    /// No more records will come: the task delivers what is left and ends.
    pub(super) fn close(&self) {
        self.state().closed = true;
        self.wake.notify_one();
    }
}

impl Backlog for SinkQueue {
    async fn take(&self, max: usize) -> Option<Arc<Vec<OwnedOut>>> {
        loop {
            {
                let mut state = self.state();
                if !state.records.is_empty() {
                    let n = state.records.len().min(max);
                    let batch = Arc::new(state.records.drain(..n).collect::<Vec<_>>());
                    state.in_flight = Some(batch.clone());
                    return Some(batch);
                }
                if state.closed {
                    return None;
                }
            }
            self.wake.notified().await;
        }
    }

    /// The batch in flight is done: `delivered` of its records reached the
    /// peer, and the peer refused `refused` for good.
    async fn done(&self, delivered: usize, refused: Vec<DeadLetterEntry>) {
        let mut state = self.state();
        state.in_flight = None;
        state.refused.extend(refused);
        self.delivered
            .fetch_add(delivered as u64, Ordering::Relaxed);
    }
}

/// Delivers a task sink's records, in order, until its queue closes and
/// empties; after a failure waits out a backoff, reconnects, and delivers
/// the same batch again (at least once: result ids tell repeats apart).
pub(super) async fn deliver<B: Backlog>(
    mut task: Box<dyn SinkTask>,
    queue: Arc<B>,
    health: Arc<Health>,
    retry: RetryConfig,
    name: Arc<str>,
    doorbell: eddy_driver::Doorbell,
) {
    let mut backoff = Backoff::new(retry);
    let mut connected = false;
    let mut batch: Option<Arc<Vec<OwnedOut>>> = None;
    // A batch delivered whose `done` is still to come: it is finished
    // while the next batch goes out, when the backlog has one ready.
    let mut finished: Option<(usize, Vec<DeadLetterEntry>)> = None;
    loop {
        let current = match batch.take() {
            Some(current) => current,
            None => match finished
                .is_some()
                .then(|| queue.try_take_next(queue.batch_size()))
                .flatten()
            {
                Some(next) => next,
                None => {
                    if let Some((delivered, entries)) = finished.take() {
                        queue.done(delivered, entries).await;
                        // Refused records to dead-letter, or room for a
                        // pipeline that a full buffer holds back.
                        doorbell.ring();
                    }
                    // While nothing waits, the task keeps its connection
                    // alive; a connection lost meanwhile is opened again
                    // first.
                    let next = if connected {
                        tokio::select! {
                            biased;
                            next = queue.take(queue.batch_size()) => next,
                            gone = task.idle() => {
                                if let Err(e) = gone {
                                    tracing::debug!(sink = %name, "idle connection lost: {e}");
                                }
                                connected = false;
                                continue;
                            }
                        }
                    } else {
                        queue.take(queue.batch_size()).await
                    };
                    match next {
                        Some(next) => next,
                        None => return,
                    }
                }
            },
        };
        let delivery = async {
            if !connected {
                task.connect().await?;
                connected = true;
            }
            task.deliver(&current).await
        };
        let result = match finished.take() {
            Some((delivered, entries)) => {
                let (result, ()) = tokio::join!(delivery, queue.done(delivered, entries));
                doorbell.ring();
                result
            }
            None => delivery.await,
        };
        match result {
            Ok(refusals) => {
                // One reason per record, however often the task named it.
                let refusals: BTreeMap<usize, String> = refusals.into_iter().collect();
                let entries: Vec<DeadLetterEntry> = refusals
                    .into_iter()
                    .filter_map(|(i, reason)| {
                        Some(refused(&name, &reason, current.get(i)?.record.clone()))
                    })
                    .collect();
                let delivered = current.len().saturating_sub(entries.len());
                finished = Some((delivered, entries));
                ComponentRecords {
                    component: &name,
                    role: Role::Sink,
                    records: delivered as u64,
                }
                .emit();
                backoff.reset();
                health.up();
            }
            Err(SinkError::Rejected(reason)) => {
                let entries = current
                    .iter()
                    .map(|out| refused(&name, &reason, out.record.clone()))
                    .collect();
                finished = Some((0, entries));
            }
            Err(e) => {
                connected = false;
                batch = Some(current);
                let transient = e.is_transient() || matches!(e, SinkError::Closed);
                health
                    .pause(&mut backoff, &e.to_string(), transient, e.retry_after())
                    .await;
            }
        }
    }
}
