//! The pipeline's side of a sink: writing to it, holding records in order
//! while its peer is down, the policy when that buffer is full, what of it
//! goes into a checkpoint, and the delivery loop of sinks that run as
//! async tasks.

mod buffer;
mod direct;
mod outbox;
mod queue;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use eddy_abi::Record;
use eddy_sink::{OpenedSink, OwnedOut, Sink, SinkError};

use self::buffer::policy_name;
use self::direct::Direct;
use self::outbox::Outbox;
pub(crate) use self::outbox::OutboxCounters;
use self::queue::{SinkQueue, deliver};
use super::{Backoff, Health, IoContext};
use crate::checkpoint::StateStore;
use crate::config::{BufferConfig, OutboxConfig, RetryConfig, WhenFull};
use crate::dataflow::result_id::ResultId;
use crate::internal_events::{ComponentRecords, OutboxHeld, SinkDropped, SinkHeld};
use crate::sinks::{DeadLetterEntry, DeadLetterInput};

/// The run must end: a sink's destination is gone for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// Records for a sink, as the engine delivers them: the node output they
/// came from, their result id, the record.
pub(crate) type Inbox = Vec<(Arc<str>, ResultId, Record)>;

/// What a sink's parts share: its name, health, buffer settings, counters.
pub(super) struct Tally {
    pub(super) name: Arc<str>,
    pub(super) health: Arc<Health>,
    pub(super) buffer: BufferConfig,
    /// Records the sink took (direct sinks).
    pub(super) written: u64,
    /// Records the buffer's policy dropped.
    pub(super) dropped: u64,
    /// Reused id buffer.
    pub(super) id: String,
}

/// A sink, as the pipeline thread sees it.
pub(crate) struct SinkPort {
    target: Target,
    tally: Tally,
    /// Records held when last reported to the metrics.
    reported_held: usize,
    /// The outbox's counters when last reported to the metrics, and when.
    reported_outbox: Option<(OutboxCounters, Instant)>,
}

enum Target {
    Direct(Box<Direct>),
    Task(Arc<SinkQueue>),
    Outbox(Arc<Outbox>),
}

/// What a sink reports to `eddy status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SinkCounters {
    pub(crate) written: u64,
    pub(crate) held: u64,
    pub(crate) dropped: u64,
    /// A broker sink's outbox.
    pub(crate) outbox: Option<OutboxCounters>,
}

/// Where a sink delivering to a broker keeps its outbox.
pub(crate) struct OutboxPlace<'a> {
    /// The state store.
    pub(crate) store: &'a StateStore,
    /// The pipeline's name.
    pub(crate) pipeline: &'a str,
    /// The sink's `outbox` settings.
    pub(crate) config: OutboxConfig,
    /// Whether checkpoints restore the pipeline (so ids of delivered
    /// results are kept, to send none twice after a restore).
    pub(crate) exactly_once: bool,
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
        outbox: Option<OutboxPlace<'_>>,
    ) -> Result<SinkPort, SinkError> {
        let target = match opened {
            OpenedSink::Outbox(task) => {
                let io = io.ok_or_else(|| {
                    SinkError::Config(
                        "this sink needs the async runtime, which this run has not".into(),
                    )
                })?;
                let place = outbox.ok_or_else(|| {
                    SinkError::Config(
                        "this sink keeps its results in the state store's outbox, which this run has not".into(),
                    )
                })?;
                let outbox = Outbox::open(
                    place.store,
                    place.pipeline,
                    name,
                    place.config,
                    place.exactly_once,
                )
                .map_err(|e| SinkError::Config(e.to_string()))?;
                let outbox = Arc::new(outbox);
                io.runtime.spawn(deliver(
                    task,
                    outbox.clone(),
                    health.clone(),
                    retry,
                    name.into(),
                    io.doorbell.clone(),
                ));
                Target::Outbox(outbox)
            }
            OpenedSink::Direct(sink) => {
                Target::Direct(Box::new(Direct::new(sink, Backoff::new(retry))))
            }
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
            target,
            tally: Tally {
                name: name.into(),
                health,
                buffer,
                written: 0,
                dropped: 0,
                id: String::new(),
            },
            reported_held: 0,
            reported_outbox: None,
        })
    }

    /// A port for a sink given directly (one-operator graphs, benchmarks).
    pub(crate) fn direct(name: &str, sink: Box<dyn Sink>) -> SinkPort {
        let health = Health::new(name, super::Role::Sink, "direct");
        SinkPort {
            target: Target::Direct(Box::new(Direct::new(
                sink,
                Backoff::new(RetryConfig::default()),
            ))),
            tally: Tally {
                name: name.into(),
                health,
                buffer: BufferConfig::default(),
                written: 0,
                dropped: 0,
                id: String::new(),
            },
            reported_held: 0,
            reported_outbox: None,
        }
    }

    /// Its health.
    pub(crate) fn health(&self) -> &Health {
        &self.tally.health
    }

    /// Takes the records of one step. Records the sink refuses go to `dead`.
    pub(crate) fn send(
        &mut self,
        pipeline: &str,
        inbox: &mut Inbox,
        dead: &mut Vec<DeadLetterEntry>,
    ) -> Result<(), Closed> {
        let dropped_before = self.tally.dropped;
        let result = match &mut self.target {
            Target::Task(queue) => {
                let tally = &mut self.tally;
                let owned = owned(pipeline, inbox, &mut tally.id);
                tally.dropped += queue.push(owned, tally.buffer);
                queue.take_refused(dead);
                Ok(())
            }
            Target::Outbox(outbox) => {
                let tally = &mut self.tally;
                let result = outbox.push(owned(pipeline, inbox, &mut tally.id));
                outbox.take_refused(dead);
                result.map_err(|e| {
                    tracing::error!(sink = &*tally.name, "{e}; the run ends");
                    Closed
                })
            }
            Target::Direct(direct) => {
                let written_before = self.tally.written;
                let result = direct.send(pipeline, inbox, &mut self.tally, dead);
                ComponentRecords {
                    component: &self.tally.name,
                    role: super::Role::Sink,
                    records: self.tally.written - written_before,
                }
                .emit();
                result
            }
        };
        self.report();
        if self.tally.dropped > dropped_before {
            SinkDropped {
                sink: &self.tally.name,
                policy: policy_name(self.tally.buffer.when_full),
                records: self.tally.dropped - dropped_before,
                total: self.tally.dropped,
            }
            .emit();
        }
        result
    }

    /// Gives a direct sink that is down its retry when due, even in a step
    /// without records for it; collects what a task's peer refused.
    pub(crate) fn retry(&mut self, dead: &mut Vec<DeadLetterEntry>) -> Result<(), Closed> {
        let result = match &mut self.target {
            Target::Direct(direct) => direct.retry_if_due(&mut self.tally, dead),
            Target::Task(queue) => {
                queue.take_refused(dead);
                Ok(())
            }
            Target::Outbox(outbox) => {
                outbox.take_refused(dead);
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
            Target::Task(_) | Target::Outbox(_) => None,
        }
    }

    /// Records waiting for the peer.
    pub(crate) fn held(&self) -> usize {
        match &self.target {
            Target::Direct(direct) => direct.held.len(),
            Target::Task(queue) => queue.held(),
            Target::Outbox(outbox) => outbox.counters().entries as usize,
        }
    }

    /// Whether the buffer is full and its policy is to block: the pipeline
    /// then reads no sources until there is room.
    pub(crate) fn blocking(&self) -> bool {
        match &self.target {
            Target::Outbox(outbox) => outbox.blocking(),
            _ => {
                self.tally.buffer.when_full == WhenFull::Block
                    && self.held() >= self.tally.buffer.max_records
            }
        }
    }

    /// Counters for `eddy status`.
    pub(crate) fn counters(&self) -> SinkCounters {
        let written = match &self.target {
            Target::Direct(_) => self.tally.written,
            Target::Task(queue) => queue.delivered.load(Ordering::Relaxed),
            Target::Outbox(outbox) => outbox.delivered_total.load(Ordering::Relaxed),
        };
        let outbox = match &self.target {
            Target::Outbox(outbox) => Some(outbox.counters()),
            _ => None,
        };
        SinkCounters {
            written,
            held: self.held() as u64,
            dropped: self.tally.dropped + outbox.map_or(0, |o| o.dropped + o.expired),
            outbox,
        }
    }

    /// Emits the gauge of held records when it changed.
    fn report(&mut self) {
        let held = self.held();
        if held != self.reported_held {
            self.reported_held = held;
            SinkHeld {
                sink: &self.tally.name,
                records: held,
            }
            .emit();
        }
        if let Target::Outbox(outbox) = &self.target {
            // On a change, and once a second for the age of the oldest.
            let counters = outbox.counters();
            let due = self.reported_outbox.is_none_or(|(last, at)| {
                last != counters || at.elapsed() >= Duration::from_secs(1)
            });
            if due {
                self.reported_outbox = Some((counters, Instant::now()));
                OutboxHeld {
                    sink: &self.tally.name,
                    counters,
                }
                .emit();
            }
        }
    }

    /// At a checkpoint: the sink's durable position, if it has one.
    pub(crate) fn commit(&mut self) -> Result<Option<u64>, SinkError> {
        match &mut self.target {
            Target::Direct(direct) => direct.commit(),
            Target::Task(_) => Ok(None),
            Target::Outbox(outbox) => outbox
                .commit()
                .map(Some)
                .map_err(|e| SinkError::Config(e.to_string())),
        }
    }

    /// At a checkpoint: what it holds for its peer, oldest first, so that a
    /// restore puts it back and nothing produced before the checkpoint is lost.
    pub(crate) fn held_records(&self) -> Vec<OwnedOut> {
        match &self.target {
            Target::Direct(direct) => direct.held.iter().cloned().collect(),
            Target::Task(queue) => queue.snapshot(),
            // Durable by itself: the checkpoint holds its position.
            Target::Outbox(_) => Vec::new(),
        }
    }

    /// After a crash: back to a checkpointed position, with what it held then.
    pub(crate) fn rewind(
        &mut self,
        position: Option<u64>,
        held: Vec<OwnedOut>,
    ) -> Result<(), SinkError> {
        match &mut self.target {
            Target::Direct(direct) => {
                if let Some(position) = position {
                    direct.rewind(position)?;
                }
                direct.restore(held);
            }
            Target::Task(queue) => queue.restore(held),
            Target::Outbox(outbox) => {
                if let Some(position) = position {
                    outbox
                        .rewind(position)
                        .map_err(|e| SinkError::Config(e.to_string()))?;
                }
            }
        }
        self.report();
        Ok(())
    }

    /// At the end of a run: flushes, and gives what is held until
    /// `deadline` to reach the peer. Returns how many records are still held.
    pub(crate) fn finish(
        &mut self,
        deadline: Instant,
        dead: &mut Vec<DeadLetterEntry>,
    ) -> Result<usize, Closed> {
        let left = match &mut self.target {
            Target::Direct(direct) => direct.finish(deadline, &mut self.tally, dead)?,
            Target::Task(queue) => {
                queue.close();
                while queue.held() > 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                queue.take_refused(dead);
                queue.held()
            }
            Target::Outbox(outbox) => {
                // What is not delivered by the deadline stays on disk for
                // the next run.
                outbox.close();
                while outbox.counters().entries > 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                outbox.take_refused(dead);
                let kept = outbox.counters().entries;
                if kept > 0 {
                    tracing::info!(
                        sink = &*self.tally.name,
                        results = kept,
                        "results not delivered yet stay in the outbox for the next run"
                    );
                }
                0
            }
        };
        self.report();
        Ok(left)
    }
}

/// The records of `inbox`, each with its result id written out (in `id`,
/// a reused buffer), as a task's buffer or an outbox keeps them.
fn owned<'a>(
    pipeline: &'a str,
    inbox: &'a mut Inbox,
    id: &'a mut String,
) -> impl Iterator<Item = OwnedOut> + 'a {
    inbox.drain(..).map(move |(label, rid, record)| {
        rid.write(pipeline, &label, id);
        OwnedOut {
            output: label,
            id: id.clone(),
            record,
        }
    })
}

/// A dead letter for a record a sink refused.
fn refused(sink: &str, reason: &str, record: Record) -> DeadLetterEntry {
    DeadLetterEntry {
        node: sink.into(),
        reason: format!("sink `{sink}` refused it: {reason}"),
        input: DeadLetterInput::Records(vec![record]),
    }
}
#[cfg(test)]
mod tests {
    //! The buffering of a direct sink, against a stand-in sink that the test
    //! takes down and brings back (no peer is involved at this level; the
    //! end-to-end outage test runs a real TCP peer).

    use super::*;
    use crate::dataflow::result_id::Cause;
    use crate::io::ComponentState;
    use eddy_sink::Out;
    use std::sync::Mutex;

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
        assert_eq!(port.health().state(), ComponentState::Retrying);
        retry_after_backoff(&mut port);
        assert_eq!(port.held(), 5, "still down: still held");
        sink.down.store(false, Ordering::SeqCst);
        retry_after_backoff(&mut port);
        assert_eq!(port.held(), 0);
        assert_eq!(port.health().state(), ComponentState::Up);
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
