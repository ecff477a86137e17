//! The pipeline's side of a sink: writing to it, holding records in order
//! while its peer is down, the policy when that buffer is full, and the
//! supervised delivery loop of sinks that run as async tasks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use eddy_abi::Record;
use eddy_sink::{OpenedSink, Out, OwnedOut, Sink, SinkError, SinkTask};

use super::{Backoff, ComponentState, Health, IoContext};
use crate::config::{BufferConfig, RetryConfig, WhenFull};
use crate::dataflow::result_id::ResultId;
use crate::internal_events::{ComponentRecords, SinkDropped, SinkHeld};
use crate::sinks::{DeadLetterEntry, DeadLetterInput};

/// Records a delivery task takes from its buffer at once.
const DELIVERY_BATCH: usize = 512;

/// The run must end: a sink's destination is gone for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// Records for a sink, as the engine delivers them: the node output they
/// came from, their result id, the record.
pub(crate) type Inbox = Vec<(Arc<str>, ResultId, Record)>;

/// A sink, as the pipeline thread sees it.
pub(crate) struct SinkPort {
    pub(crate) name: Arc<str>,
    pub(crate) health: Arc<Health>,
    target: Target,
    buffer: BufferConfig,
    /// Records the sink took (direct) so far.
    written: u64,
    /// Records dropped by the buffer's policy so far.
    dropped: u64,
    /// Records held when last reported to the metrics.
    reported_held: usize,
    /// Reused id buffer.
    id: String,
}

enum Target {
    Direct(Box<Direct>),
    Task(Arc<SinkQueue>),
}

/// A sink written to on the pipeline thread.
struct Direct {
    sink: Box<dyn Sink>,
    /// Records kept while the sink cannot take them, in order.
    held: VecDeque<OwnedOut>,
    /// While down: when to try again.
    retry_at: Option<Instant>,
    /// It took records it could not flush yet.
    unflushed: bool,
    backoff: Backoff,
}

/// What a sink reports to `eddy status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SinkCounters {
    pub(crate) written: u64,
    pub(crate) held: u64,
    pub(crate) dropped: u64,
}

impl SinkPort {
    /// A port for an opened sink; a task starts delivering on the runtime.
    pub(crate) fn new(
        name: &str,
        opened: OpenedSink,
        health: Arc<Health>,
        buffer: BufferConfig,
        retry: RetryConfig,
        io: Option<&IoContext>,
    ) -> Result<SinkPort, SinkError> {
        let target = match opened {
            OpenedSink::Direct(sink) => Target::Direct(Box::new(Direct {
                sink,
                held: VecDeque::new(),
                retry_at: None,
                unflushed: false,
                backoff: Backoff::new(retry),
            })),
            OpenedSink::Task(task) => {
                let io = io.ok_or_else(|| {
                    SinkError::Config(
                        "this sink needs the async runtime, which this run has not".into(),
                    )
                })?;
                let queue = Arc::new(SinkQueue::default());
                io.runtime.spawn(deliver(
                    task,
                    queue.clone(),
                    health.clone(),
                    retry,
                    name.into(),
                    io.doorbell.clone(),
                ));
                Target::Task(queue)
            }
        };
        Ok(SinkPort {
            name: name.into(),
            health,
            target,
            buffer,
            written: 0,
            dropped: 0,
            reported_held: 0,
            id: String::new(),
        })
    }

    /// A port for a sink given directly (one-operator graphs, benchmarks).
    pub(crate) fn direct(name: &str, sink: Box<dyn Sink>) -> SinkPort {
        let health = Health::new(name, super::Role::Sink, "direct");
        let retry = RetryConfig::default();
        match Self::new(
            name,
            OpenedSink::Direct(sink),
            health,
            BufferConfig::default(),
            retry,
            None,
        ) {
            Ok(port) => port,
            Err(_) => unreachable!("a direct sink needs no runtime"),
        }
    }

    /// Takes the records of one step. Records the sink refuses go to `dead`.
    pub(crate) fn send(
        &mut self,
        pipeline: &str,
        inbox: &mut Inbox,
        dead: &mut Vec<DeadLetterEntry>,
    ) -> Result<(), Closed> {
        let dropped_before = self.dropped;
        let result = match &mut self.target {
            Target::Task(queue) => {
                let owned = inbox.drain(..).map(|(label, rid, record)| {
                    rid.write(pipeline, &label, &mut self.id);
                    OwnedOut {
                        output: label,
                        id: self.id.clone(),
                        record,
                    }
                });
                self.dropped += queue.push(owned, self.buffer);
                queue.take_refused(dead);
                Ok(())
            }
            Target::Direct(direct) => {
                let direct = &mut **direct;
                if direct.retry_at.is_some() {
                    for (label, rid, record) in inbox.drain(..) {
                        rid.write(pipeline, &label, &mut self.id);
                        let out = OwnedOut {
                            output: label,
                            id: self.id.clone(),
                            record,
                        };
                        self.dropped += hold(&mut direct.held, out, self.buffer);
                    }
                    Self::retry_if_due(&self.name, direct, &self.health, &mut self.written, dead)
                } else {
                    let written_before = self.written;
                    let result = Self::write(
                        &self.name,
                        pipeline,
                        direct,
                        &self.health,
                        inbox,
                        &mut self.id,
                        &mut self.written,
                        &mut self.dropped,
                        self.buffer,
                        dead,
                    );
                    ComponentRecords {
                        component: &self.name,
                        role: super::Role::Sink,
                        records: self.written - written_before,
                    }
                    .emit();
                    result
                }
            }
        };
        self.report();
        if self.dropped > dropped_before {
            SinkDropped {
                sink: &self.name,
                policy: policy_name(self.buffer.when_full),
                records: self.dropped - dropped_before,
                total: self.dropped,
            }
            .emit();
        }
        result
    }

    /// Writes a step's records to a direct sink that is up; on a failure,
    /// holds the record that failed and the rest.
    #[allow(clippy::too_many_arguments)]
    fn write(
        name: &str,
        pipeline: &str,
        direct: &mut Direct,
        health: &Health,
        inbox: &mut Inbox,
        id: &mut String,
        written: &mut u64,
        dropped: &mut u64,
        buffer: BufferConfig,
        dead: &mut Vec<DeadLetterEntry>,
    ) -> Result<(), Closed> {
        let mut records = inbox.drain(..);
        let mut failure = None;
        for (label, rid, record) in records.by_ref() {
            rid.write(pipeline, &label, id);
            let out = Out {
                output: &label,
                id,
                record: &record,
            };
            match direct.sink.write(&out) {
                Ok(()) => *written += 1,
                Err(SinkError::Rejected(reason)) => dead.push(refused(name, &reason, record)),
                Err(SinkError::Closed) => return Err(Closed),
                Err(e) => {
                    let out = OwnedOut {
                        output: label,
                        id: id.clone(),
                        record,
                    };
                    *dropped += hold(&mut direct.held, out, buffer);
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            for (label, rid, record) in records {
                rid.write(pipeline, &label, id);
                let out = OwnedOut {
                    output: label,
                    id: id.clone(),
                    record,
                };
                *dropped += hold(&mut direct.held, out, buffer);
            }
            Self::down(direct, health, &e);
            return Ok(());
        }
        drop(records);
        match direct.sink.flush() {
            Ok(()) => {
                if health.state() != ComponentState::Up {
                    health.up();
                }
                Ok(())
            }
            Err(SinkError::Closed) => Err(Closed),
            Err(e) => {
                direct.unflushed = true;
                Self::down(direct, health, &e);
                Ok(())
            }
        }
    }

    /// Marks a direct sink down until its backoff has passed.
    fn down(direct: &mut Direct, health: &Health, e: &SinkError) {
        let transient = e.is_transient() || matches!(e, SinkError::Rejected(_));
        let wait = direct.backoff.after(transient, e.retry_after());
        direct.retry_at = Some(Instant::now() + wait);
        health.down(&e.to_string(), transient, wait);
    }

    /// Tries a direct sink that is down again once its backoff has passed:
    /// what it could not flush, then what it holds, in order.
    fn retry_if_due(
        name: &str,
        direct: &mut Direct,
        health: &Health,
        written: &mut u64,
        dead: &mut Vec<DeadLetterEntry>,
    ) -> Result<(), Closed> {
        if direct.retry_at.is_none_or(|at| Instant::now() < at) {
            return Ok(());
        }
        health.retrying();
        let failed = |direct: &mut Direct, e: SinkError| match e {
            SinkError::Closed => Err(Closed),
            e => {
                Self::down(direct, health, &e);
                Ok(())
            }
        };
        if direct.unflushed {
            match direct.sink.flush() {
                Ok(()) => direct.unflushed = false,
                Err(e) => return failed(direct, e),
            }
        }
        while let Some(front) = direct.held.front() {
            match direct.sink.write(&front.as_out()) {
                Ok(()) => {
                    *written += 1;
                    direct.held.pop_front();
                }
                Err(SinkError::Rejected(reason)) => {
                    if let Some(out) = direct.held.pop_front() {
                        dead.push(refused(name, &reason, out.record));
                    }
                }
                Err(e) => return failed(direct, e),
            }
        }
        match direct.sink.flush() {
            Ok(()) => {
                direct.retry_at = None;
                direct.backoff.reset();
                health.up();
                Ok(())
            }
            Err(e) => {
                direct.unflushed = true;
                failed(direct, e)
            }
        }
    }

    /// Gives a direct sink that is down its retry when due, even in a step
    /// without records for it.
    pub(crate) fn retry(&mut self, dead: &mut Vec<DeadLetterEntry>) -> Result<(), Closed> {
        let result = match &mut self.target {
            Target::Direct(direct) => {
                Self::retry_if_due(&self.name, direct, &self.health, &mut self.written, dead)
            }
            Target::Task(queue) => {
                queue.take_refused(dead);
                Ok(())
            }
        };
        self.report();
        result
    }

    /// When a direct sink that is down wants its next retry.
    pub(crate) fn retry_at(&self) -> Option<Instant> {
        match &self.target {
            Target::Direct(direct) => direct.retry_at,
            Target::Task(_) => None,
        }
    }

    /// Records waiting for the peer.
    pub(crate) fn held(&self) -> usize {
        match &self.target {
            Target::Direct(direct) => direct.held.len(),
            Target::Task(queue) => queue.held(),
        }
    }

    /// Whether the buffer is full and its policy is to block: the pipeline
    /// then reads no sources until there is room.
    pub(crate) fn blocking(&self) -> bool {
        self.buffer.when_full == WhenFull::Block && self.held() >= self.buffer.max_records
    }

    /// Counters for `eddy status`.
    pub(crate) fn counters(&self) -> SinkCounters {
        let written = match &self.target {
            Target::Direct(_) => self.written,
            Target::Task(queue) => queue.delivered.load(Ordering::Relaxed),
        };
        SinkCounters {
            written,
            held: self.held() as u64,
            dropped: self.dropped,
        }
    }

    /// Emits the gauge of held records when it changed.
    fn report(&mut self) {
        let held = self.held();
        if held != self.reported_held {
            self.reported_held = held;
            SinkHeld {
                sink: &self.name,
                records: held,
            }
            .emit();
        }
    }

    /// At a checkpoint: the sink's durable position, if it has one.
    pub(crate) fn commit(&mut self) -> Result<Option<u64>, SinkError> {
        match &mut self.target {
            Target::Direct(direct) => direct.sink.commit(),
            Target::Task(_) => Ok(None),
        }
    }

    /// After a crash: back to a checkpointed position.
    pub(crate) fn rewind(&mut self, position: u64) -> Result<(), SinkError> {
        match &mut self.target {
            Target::Direct(direct) => direct.sink.rewind(position),
            Target::Task(_) => Ok(()),
        }
    }

    /// At the end of a run: flushes, and gives what is held until
    /// `deadline` to reach the peer. Returns how many records are still
    /// held (lost when the process ends).
    pub(crate) fn finish(
        &mut self,
        deadline: Instant,
        dead: &mut Vec<DeadLetterEntry>,
    ) -> Result<usize, Closed> {
        match &mut self.target {
            Target::Direct(direct) => {
                if direct.retry_at.is_none() {
                    return match direct.sink.flush() {
                        Ok(()) => Ok(0),
                        Err(SinkError::Closed) => Err(Closed),
                        Err(_) => Ok(0),
                    };
                }
                while direct.retry_at.is_some() {
                    let at = direct.retry_at.unwrap_or(deadline);
                    if at > deadline {
                        break;
                    }
                    std::thread::sleep(at.saturating_duration_since(Instant::now()));
                    Self::retry_if_due(&self.name, direct, &self.health, &mut self.written, dead)?;
                }
                Ok(direct.held.len())
            }
            Target::Task(queue) => {
                queue.close();
                while queue.held() > 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                queue.take_refused(dead);
                Ok(queue.held())
            }
        }
    }
}

fn policy_name(when_full: WhenFull) -> &'static str {
    match when_full {
        WhenFull::DropOldest => "drop_oldest",
        WhenFull::DropNewest => "drop_newest",
        WhenFull::Block => "block",
    }
}

/// Holds a record, as the buffer's policy says; returns how many were dropped.
fn hold(held: &mut VecDeque<OwnedOut>, out: OwnedOut, buffer: BufferConfig) -> u64 {
    if held.len() >= buffer.max_records {
        match buffer.when_full {
            WhenFull::DropOldest => {
                held.pop_front();
                held.push_back(out);
                return 1;
            }
            WhenFull::DropNewest => return 1,
            // Over the bound by at most one step's records: the pipeline
            // reads no sources until there is room.
            WhenFull::Block => {}
        }
    }
    held.push_back(out);
    0
}

/// A dead letter for a record a sink refused.
fn refused(sink: &str, reason: &str, record: Record) -> DeadLetterEntry {
    DeadLetterEntry {
        node: sink.into(),
        reason: format!("sink `{sink}` refused it: {reason}"),
        input: DeadLetterInput::Records(vec![record]),
    }
}

/// The buffer between the pipeline thread and a sink's delivery task.
#[derive(Default)]
pub(crate) struct SinkQueue {
    state: Mutex<QueueState>,
    /// Wakes the delivery task when records come or the queue closes.
    wake: tokio::sync::Notify,
    /// Records delivered so far.
    delivered: AtomicU64,
}

#[derive(Default)]
struct QueueState {
    records: VecDeque<OwnedOut>,
    /// Records the task took and has not delivered yet.
    in_flight: usize,
    closed: bool,
    refused: Vec<DeadLetterEntry>,
}

impl SinkQueue {
    fn state(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds records as the buffer's policy says; returns how many were dropped.
    fn push(&self, records: impl Iterator<Item = OwnedOut>, buffer: BufferConfig) -> u64 {
        let mut state = self.state();
        let mut dropped = 0;
        let mut any = false;
        for out in records {
            any = true;
            let held = state.records.len() + state.in_flight;
            if held >= buffer.max_records {
                match buffer.when_full {
                    WhenFull::DropOldest if !state.records.is_empty() => {
                        state.records.pop_front();
                        dropped += 1;
                    }
                    WhenFull::DropOldest | WhenFull::DropNewest => {
                        dropped += 1;
                        continue;
                    }
                    WhenFull::Block => {}
                }
            }
            state.records.push_back(out);
        }
        drop(state);
        if any {
            self.wake.notify_one();
        }
        dropped
    }

    /// Records held: queued and in flight.
    fn held(&self) -> usize {
        let state = self.state();
        state.records.len() + state.in_flight
    }

    fn take_refused(&self, dead: &mut Vec<DeadLetterEntry>) {
        let mut state = self.state();
        if !state.refused.is_empty() {
            dead.append(&mut state.refused);
        }
    }

    /// No more records will come: the task delivers what is left and ends.
    fn close(&self) {
        self.state().closed = true;
        self.wake.notify_one();
    }

    /// The next batch for the task; `None` once closed and empty.
    async fn take(&self, max: usize) -> Option<Vec<OwnedOut>> {
        loop {
            {
                let mut state = self.state();
                if !state.records.is_empty() {
                    let n = state.records.len().min(max);
                    let batch: Vec<OwnedOut> = state.records.drain(..n).collect();
                    state.in_flight = batch.len();
                    return Some(batch);
                }
                if state.closed {
                    return None;
                }
            }
            self.wake.notified().await;
        }
    }

    /// The task's batch is done: `delivered` records reached the peer, and
    /// it refused `refused` for good.
    fn delivered(&self, delivered: usize, refused: Vec<DeadLetterEntry>) {
        let mut state = self.state();
        state.in_flight = 0;
        state.refused.extend(refused);
        self.delivered
            .fetch_add(delivered as u64, Ordering::Relaxed);
    }
}

/// Delivers a task sink's records, in order, until its queue closes and
/// empties; after a failure waits out a backoff, reconnects, and delivers
/// the same batch again.
async fn deliver(
    mut task: Box<dyn SinkTask>,
    queue: Arc<SinkQueue>,
    health: Arc<Health>,
    retry: RetryConfig,
    name: Arc<str>,
    doorbell: eddy_driver::Doorbell,
) {
    let mut backoff = Backoff::new(retry);
    let mut connected = false;
    let mut batch: Vec<OwnedOut> = Vec::new();
    loop {
        if batch.is_empty() {
            match queue.take(DELIVERY_BATCH).await {
                Some(next) => batch = next,
                None => return,
            }
        }
        let result = if connected {
            Ok(())
        } else {
            task.connect().await
        };
        let result = match result {
            Ok(()) => {
                connected = true;
                task.deliver(&batch).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(refused_records) => {
                let mut refused_entries = Vec::new();
                for (index, reason) in refused_records {
                    if let Some(out) = batch.get(index) {
                        refused_entries.push(refused(&name, &reason, out.record.clone()));
                    }
                }
                let delivered = batch.len() - refused_entries.len();
                queue.delivered(delivered, refused_entries);
                ComponentRecords {
                    component: &name,
                    role: super::Role::Sink,
                    records: delivered as u64,
                }
                .emit();
                batch.clear();
                backoff.reset();
                health.up();
                // Refused records to dead-letter, or room for a pipeline
                // that a full buffer holds back.
                doorbell.ring();
            }
            Err(SinkError::Rejected(reason)) => {
                let entries = batch
                    .drain(..)
                    .map(|out| refused(&name, &reason, out.record))
                    .collect();
                queue.delivered(0, entries);
                doorbell.ring();
            }
            Err(e) => {
                connected = false;
                let transient = e.is_transient() || matches!(e, SinkError::Closed);
                health
                    .pause(&mut backoff, &e.to_string(), transient, e.retry_after())
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The buffering of a direct sink, against a stand-in sink that the test
    //! takes down and brings back (no peer is involved at this level; the
    //! end-to-end outage test runs a real TCP peer).

    use super::*;
    use crate::dataflow::result_id::Cause;

    /// Takes records while up; refuses `bad` records for good; while down,
    /// fails as an unreachable peer would.
    #[derive(Clone, Default)]
    struct Switch {
        down: Arc<std::sync::atomic::AtomicBool>,
        taken: Arc<Mutex<Vec<String>>>,
        closed: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Sink for Switch {
        fn write(&mut self, out: &Out<'_>) -> Result<(), SinkError> {
            if self.closed.load(Ordering::SeqCst) {
                return Err(SinkError::Closed);
            }
            if self.down.load(Ordering::SeqCst) {
                return Err(SinkError::unavailable("peer", "connection refused"));
            }
            if out.record.key.starts_with("bad") {
                return Err(SinkError::Rejected("too large".into()));
            }
            self.taken.lock().unwrap().push(out.id.to_owned());
            Ok(())
        }

        fn flush(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
    }

    fn port(sink: &Switch, max_records: usize, when_full: WhenFull) -> SinkPort {
        let health = Health::new("s", super::super::Role::Sink, "test");
        let retry = RetryConfig {
            initial_backoff_ms: 1,
            max_backoff_ms: 1,
        };
        let buffer = BufferConfig {
            max_records,
            when_full,
        };
        SinkPort::new(
            "s",
            OpenedSink::Direct(Box::new(sink.clone())),
            health,
            buffer,
            retry,
            None,
        )
        .unwrap()
    }

    /// Records `from..to` as the engine would deliver them.
    fn inbox(keys: std::ops::Range<u64>) -> Inbox {
        keys.map(|n| {
            let key: Arc<str> = if n == 99 { "bad".into() } else { "k".into() };
            let id = ResultId {
                cause: Arc::new(Cause::Record {
                    key: key.clone(),
                    n,
                }),
                seq: 0,
            };
            ("src".into(), id, Record::new(key, n as i64))
        })
        .collect()
    }

    fn ids(range: std::ops::Range<u64>) -> Vec<String> {
        range.map(|n| format!("p/src/k/r{n}/0")).collect()
    }

    fn send(port: &mut SinkPort, range: std::ops::Range<u64>) -> Vec<DeadLetterEntry> {
        let mut dead = Vec::new();
        port.send("p", &mut inbox(range), &mut dead).unwrap();
        dead
    }

    fn retry_after_backoff(port: &mut SinkPort) {
        std::thread::sleep(Duration::from_millis(5));
        port.retry(&mut Vec::new()).unwrap();
    }

    #[test]
    fn records_held_while_the_peer_is_down_go_out_in_order_when_it_is_back() {
        let sink = Switch::default();
        let mut port = port(&sink, 100, WhenFull::DropOldest);
        send(&mut port, 0..3);
        sink.down.store(true, Ordering::SeqCst);
        send(&mut port, 3..6);
        send(&mut port, 6..8);
        assert_eq!(port.held(), 5);
        assert_eq!(port.health.state(), ComponentState::Retrying);
        retry_after_backoff(&mut port);
        assert_eq!(port.held(), 5, "still down: still held");
        sink.down.store(false, Ordering::SeqCst);
        retry_after_backoff(&mut port);
        assert_eq!(port.held(), 0);
        assert_eq!(port.health.state(), ComponentState::Up);
        assert_eq!(*sink.taken.lock().unwrap(), ids(0..8));
        assert_eq!(port.counters().written, 8);
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_or_the_newest_or_blocks_as_configured() {
        for (when_full, kept, dropped) in [
            (WhenFull::DropOldest, ids(2..5), 2),
            (WhenFull::DropNewest, ids(0..3), 2),
            (WhenFull::Block, ids(0..5), 0),
        ] {
            let sink = Switch::default();
            sink.down.store(true, Ordering::SeqCst);
            let mut port = port(&sink, 3, when_full);
            send(&mut port, 0..5);
            assert_eq!(port.counters().dropped, dropped, "{when_full:?}");
            assert_eq!(
                port.blocking(),
                when_full == WhenFull::Block,
                "{when_full:?}"
            );
            sink.down.store(false, Ordering::SeqCst);
            retry_after_backoff(&mut port);
            assert_eq!(*sink.taken.lock().unwrap(), kept, "{when_full:?}");
            assert!(!port.blocking());
        }
    }

    #[test]
    fn a_refused_record_is_dead_lettered_and_the_others_go_on() {
        let sink = Switch::default();
        let mut port = port(&sink, 100, WhenFull::DropOldest);
        let dead = send(&mut port, 98..101);
        assert_eq!(dead.len(), 1);
        assert!(dead[0].reason.contains("too large"), "{:?}", dead[0]);
        assert_eq!(
            *sink.taken.lock().unwrap(),
            ["p/src/k/r98/0", "p/src/k/r100/0"]
        );
    }

    #[test]
    fn a_closed_destination_ends_the_run() {
        let sink = Switch::default();
        let mut port = port(&sink, 100, WhenFull::DropOldest);
        sink.closed.store(true, Ordering::SeqCst);
        let mut dead = Vec::new();
        assert_eq!(port.send("p", &mut inbox(0..1), &mut dead), Err(Closed));
    }
}
