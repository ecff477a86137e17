//! A built pipeline and its run loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use eddy_abi::{LATE_OUTPUT, Record};
use eddy_driver::{Doorbell, Driver, Poll};

use super::control::{PendingSwap, Request};
use super::durable::{CheckpointStats, Durability, Recovery};
use super::element::Element;
use super::operator::{OperatorNode, Output, wall_clock_ms};
use super::result_id::{Cause, ResultId};
use super::watermark::BoundedOutOfOrderness;
use crate::checkpoint::StoreError;
use crate::config::{
    BufferConfig, CheckpointConfig, JournalMode, Location, OutboxConfig, RetryConfig,
    StateVersionMismatch,
};
use crate::internal_events::ComponentRecords;
use crate::io::sink::{Closed, Inbox};
use crate::io::{Backoff, Health, Role, SinkPort};
use crate::plugin::Loader;
use crate::sinks::{DeadLetter, DeadLetterEntry, DeadLetterInput};

/// Where an output's elements go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Input `input` of operator `index`.
    Operator { index: usize, input: usize },
    /// Sink `index`.
    Sink { index: usize },
}

/// The routes of each named output of a node: `("", …)` is the main output.
pub(crate) type Routes = Vec<(String, Vec<Route>)>;

pub(crate) struct SourceNode {
    pub(crate) name: Arc<str>,
    /// Its kind's settings, until it is opened (none for a source given as a driver).
    pub(crate) settings: Option<Arc<dyn eddy_driver::SourceConfig>>,
    /// Where its table is in the pipeline file, for errors at open.
    pub(crate) at: Option<Location>,
    /// The driver, once opened.
    pub(crate) driver: Option<Box<dyn Driver>>,
    /// Whether the pipeline thread polls it itself (else a task feeds it,
    /// and reports its health).
    pub(crate) polled: bool,
    pub(crate) health: Arc<Health>,
    /// Whether the last poll worked (polled drivers).
    pub(crate) up: bool,
    pub(crate) retry: RetryConfig,
    pub(crate) backoff: Backoff,
    pub(crate) watermark: BoundedOutOfOrderness,
    pub(crate) routes: Vec<Route>,
    pub(crate) ended: bool,
    pub(crate) wait_until: Option<Instant>,
    /// After this long without records the source is idle (Flink's `withIdleness`).
    pub(crate) idle_timeout: Option<Duration>,
    /// When it last had records (or the run started).
    pub(crate) last_records: Instant,
    pub(crate) idle: bool,
    /// Records read so far; numbers each for result ids.
    pub(crate) records_out: u64,
    /// What its ingest journal does.
    pub(crate) journal: JournalMode,
}

pub(crate) struct OperatorSlot {
    pub(crate) node: OperatorNode,
    pub(crate) routes: Routes,
    /// Side outputs the plugin emitted to that nothing routes; warned about once.
    pub(crate) unrouted_warned: Vec<String>,
    /// Whether downstream operators were told this one is idle.
    pub(crate) idle: bool,
    /// The watermark downstream operators were last sent.
    pub(crate) sent_watermark: i64,
    /// What to do with checkpointed state of another `state_version`.
    pub(crate) state_version_mismatch: StateVersionMismatch,
}

pub(crate) struct SinkNode {
    pub(crate) name: Arc<str>,
    /// Its kind's settings, until it is opened.
    pub(crate) settings: Option<SinkSettings>,
    /// Where its table is in the pipeline file, for errors at open.
    pub(crate) at: Option<Location>,
    /// The sink, once opened.
    pub(crate) port: Option<SinkPort>,
    /// `(node output label, id, record)` delivered since the last step.
    pub(crate) inbox: Inbox,
}

/// What opening a sink takes.
pub(crate) struct SinkSettings {
    pub(crate) kind: &'static str,
    pub(crate) config: Arc<dyn eddy_sink::SinkConfig>,
    pub(crate) buffer: BufferConfig,
    pub(crate) outbox: OutboxConfig,
    pub(crate) retry: RetryConfig,
}

/// A pipeline ready to run: sources, operators in topological order, sinks.
pub struct Graph {
    pub(crate) name: String,
    pub(crate) sources: Vec<SourceNode>,
    pub(crate) operators: Vec<OperatorSlot>,
    pub(crate) sinks: Vec<SinkNode>,
    pub(crate) dead_letter: DeadLetter,
    /// Runtime services handed to sources and sinks when they open.
    pub(crate) services: Option<eddy_driver::Services>,
    pub(crate) batch_size: usize,
    /// How long an idle pipeline woken by input waits for more
    /// (`[pipeline] linger_ms`).
    pub(crate) linger: Duration,
    /// The `[checkpoint]` table.
    pub(crate) checkpoint: CheckpointConfig,
    /// The state store, once attached.
    pub(crate) durability: Option<Durability>,
    /// Requests from the local API, once accepted.
    pub(crate) requests: Option<Receiver<Request>>,
    /// Swaps whose new version is on probation.
    pub(crate) pending_swaps: Vec<PendingSwap>,
    /// Loads plugins for this pipeline's engine and trust settings (none
    /// for a graph built around given logic).
    pub(crate) loader: Option<Loader>,
    /// Rung when there is work: records from a task, a request.
    pub(crate) doorbell: Doorbell,
    /// The folder relative paths in the pipeline are relative to.
    pub(crate) base_dir: std::path::PathBuf,
    /// Dead letters of the current step, written at its end.
    pub(crate) dead: Vec<DeadLetterEntry>,
    /// A sink whose destination closed for good: the run ends.
    pub(crate) closed: Option<Arc<str>>,
    /// How long a run that ends gives its sinks to deliver what they hold.
    pub(crate) shutdown_timeout: Duration,
    /// Where versions that pass probation are kept for restarts.
    pub(crate) kept: Option<crate::plugin::KeptSwaps>,
}

/// When a run stops, besides its sources ending.
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    /// Set to stop (e.g. by a signal handler).
    pub stop: Arc<AtomicBool>,
    /// Stop at this instant.
    pub deadline: Option<Instant>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Records read from all sources.
    pub records_in: u64,
    /// Records written per sink, by sink name.
    pub written: Vec<(String, u64)>,
    /// Records and timers sent to the dead-letter log.
    pub dead_lettered: u64,
    /// Of those, how many were not written, the log being full.
    pub dead_letters_unwritten: u64,
    /// Whether every source ended (rather than the run being stopped).
    pub completed: bool,
    /// What was restored before the run, when the graph has a state store.
    pub recovery: Option<Recovery>,
    /// What its checkpoints cost the pipeline thread.
    pub checkpoints: CheckpointStats,
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A source's driver failed.
    #[error("source `{source_name}`: {error}")]
    Source {
        /// The source.
        source_name: String,
        /// The driver's error.
        error: eddy_driver::DriverError,
    },
    /// A sink could not go back to its checkpointed position.
    #[error("sink `{sink}`: {error}")]
    Sink {
        /// The sink.
        sink: String,
        /// Why.
        error: eddy_sink::SinkError,
    },
    /// A source or sink could not be opened: its settings cannot work.
    #[error("{0}")]
    Open(String),
    /// The pipeline was still busy when its stop grace ran out.
    #[error("pipeline `{pipeline}` did not stop within {seconds} s of the signal")]
    NotStopped {
        /// The pipeline.
        pipeline: String,
        /// The grace it had.
        seconds: u64,
    },
    /// The state store failed.
    #[error(transparent)]
    State(StoreError),
    /// A checkpoint holds state a new plugin version cannot read.
    #[error(
        "operator `{operator}`: its checkpointed state has state_version {saved}, but plugin `{plugin}` declares {current}; \
         to start it with empty state, set `state_version_mismatch = \"reset\"` on the operator"
    )]
    StateVersion {
        /// The operator.
        operator: String,
        /// The plugin now configured.
        plugin: String,
        /// The version in the checkpoint.
        saved: u32,
        /// The version the plugin declares.
        current: u32,
    },
    /// An operator's checkpointed state could not be restored.
    #[error("operator `{operator}`: cannot restore its checkpointed state: {reason}")]
    Restore {
        /// The operator.
        operator: String,
        /// Why.
        reason: String,
    },
    /// The dead-letter log could not be written, so failed input would be lost.
    #[error("dead-letter log {}: {error}", path.display())]
    DeadLetter {
        /// The log.
        path: std::path::PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

/// The longest the loop waits without being rung, so stop requests and
/// processing-time timers are seen.
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// The dead letter of input source `name` could not read.
pub(crate) fn unreadable(name: &Arc<str>, rejected: Vec<eddy_driver::Rejected>) -> DeadLetterEntry {
    DeadLetterEntry {
        node: name.clone(),
        reason: "input the source could not read".into(),
        input: DeadLetterInput::Rejected(rejected),
    }
}

impl SourceNode {
    /// The elements for `count` records just read: each record, followed by
    /// the watermark when it advanced (or, for a source that keeps its own
    /// watermark, the records and then that watermark when it advanced);
    /// then the end-of-input watermark if the source `ended`.
    pub(crate) fn elements(
        &mut self,
        records: impl IntoIterator<Item = Record>,
        count: usize,
        ended: bool,
        own_watermark: Option<i64>,
    ) -> Vec<Element> {
        let mut elements = Vec::with_capacity(count * 2 + 1);
        match own_watermark {
            Some(own) => {
                elements.extend(records.into_iter().map(Element::Record));
                if let Some(w) = self.watermark.advance_to(own) {
                    elements.push(Element::Watermark(w));
                }
            }
            None => {
                for record in records {
                    let advanced = self.watermark.on_record(record.time);
                    elements.push(Element::Record(record));
                    if let Some(w) = advanced {
                        elements.push(Element::Watermark(w));
                    }
                }
            }
        }
        if ended {
            self.ended = true;
            elements.push(Element::Watermark(i64::MAX));
        }
        elements
    }

    /// Turns the source idle once it has had no records for its idle timeout;
    /// returns the idleness element to send then. Otherwise asks to be woken
    /// when the timeout would pass.
    fn check_idle(&mut self, next_wake: &mut Option<Instant>) -> Option<(usize, Vec<Element>)> {
        let timeout = self.idle_timeout?;
        if self.idle {
            return None;
        }
        let at = self.last_records + timeout;
        if Instant::now() >= at {
            self.idle = true;
            return Some((0, vec![Element::Idle]));
        }
        *next_wake = Some(next_wake.map_or(at, |w| w.min(at)));
        None
    }
}

impl Graph {
    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What loads plugins for this pipeline: for swaps.
    pub fn loader(&self) -> Option<&Loader> {
        self.loader.as_ref()
    }

    /// Runs until every source has ended, or `control` says stop. The graph
    /// must have been opened ([`Graph::open`]).
    pub fn run(&mut self, control: &RunControl) -> Result<RunSummary, RunError> {
        let result = self.run_until_stopped(control);
        if result.is_err() {
            // A checkpoint in flight may still become durable: what it
            // covers is let go then, so that a peer does not send again
            // input the restored state already holds. Gathered journal
            // entries are kept for the next run.
            let _ = self.hand_over_journal_group(true);
            let _ = self.finish_checkpoint(true);
        }
        result
    }

    fn run_until_stopped(&mut self, control: &RunControl) -> Result<RunSummary, RunError> {
        if let Some(source) = self.sources.iter().find(|s| s.driver.is_none()) {
            return Err(RunError::Open(format!(
                "source `{}` was not opened",
                source.name
            )));
        }
        let mut summary = RunSummary {
            recovery: self.recover_once()?,
            ..RunSummary::default()
        };
        let mut records = Vec::with_capacity(self.batch_size);
        // Idleness counts from the start of the run, not from building the graph.
        let started = Instant::now();
        for source in &mut self.sources {
            source.last_records = started;
        }
        loop {
            if control.stop.load(Ordering::Relaxed)
                || control.deadline.is_some_and(|d| Instant::now() >= d)
                || self.closed.is_some()
            {
                break;
            }
            self.serve_requests();
            let mut next_wake: Option<Instant> = None;
            let mut progressed = false;
            // A full sink whose policy is to block holds back every source.
            let blocked = self
                .sinks
                .iter()
                .any(|s| s.port.as_ref().is_some_and(SinkPort::blocking));
            for i in 0..self.sources.len() {
                if blocked {
                    break;
                }
                records.clear();
                let Some((count, elements)) = self.poll_source(i, &mut records, &mut next_wake)?
                else {
                    continue;
                };
                progressed = true;
                summary.records_in += count as u64;
                self.deliver_source(i, elements, count);
            }
            self.step_operators()?;
            self.step_sinks()?;
            self.answer_swaps();
            // Input held for a restarting plugin is still to be processed.
            if self.sources.iter().all(|s| s.ended)
                && !self.operators.iter().any(|o| o.node.holding())
            {
                summary.completed = true;
                break;
            }
            self.checkpoint_if_due()?;
            if !progressed {
                for sink in &self.sinks {
                    if let Some(at) = sink.port.as_ref().and_then(SinkPort::retry_at) {
                        next_wake = Some(next_wake.map_or(at, |w| w.min(at)));
                    }
                }
                let now = Instant::now();
                let wake = next_wake.unwrap_or(now + MAX_SLEEP).min(now + MAX_SLEEP);
                let wake = control.deadline.map_or(wake, |d| wake.min(d));
                // A trickle of input: what else comes within the linger
                // is processed in the same turn, up to a batch, a full
                // channel or a timer.
                if self.doorbell.wait_until(wake) && !self.linger.is_zero() {
                    let until = (Instant::now() + self.linger).min(wake);
                    self.doorbell.gather_until(until, self.batch_size);
                }
            }
        }
        if let Some(sink) = &self.closed {
            tracing::info!(sink = &**sink, "the sink's output was closed; the run ends");
        }
        let held = self.finish_sinks()?;
        // A run is finished only once its sinks hold nothing: else the next
        // run restores the last checkpoint and delivers what they held.
        self.checkpoint(summary.completed && held == 0)?;
        summary.written = self
            .sinks
            .iter()
            .map(|s| {
                let written = s.port.as_ref().map_or(0, |p| p.counters().written);
                (s.name.to_string(), written)
            })
            .collect();
        summary.dead_lettered = self.dead_letter.records();
        summary.dead_letters_unwritten = self.dead_letter.unwritten();
        summary.checkpoints = self
            .durability
            .as_ref()
            .map(|d| d.stats)
            .unwrap_or_default();
        Ok(summary)
    }

    /// At the end of a run: gives sinks that hold records until the
    /// shutdown timeout to deliver them; returns how many are still held.
    fn finish_sinks(&mut self) -> Result<usize, RunError> {
        let deadline = Instant::now() + self.shutdown_timeout;
        let mut dead = std::mem::take(&mut self.dead);
        let mut held = 0;
        let kept = if self.durability.is_some() {
            "the last checkpoint keeps them for the next run"
        } else {
            "without checkpoints they are lost"
        };
        for sink in &mut self.sinks {
            let Some(port) = sink.port.as_mut() else {
                continue;
            };
            match port.finish(deadline, &mut dead) {
                Ok(0) | Err(Closed) => {}
                Ok(left) => {
                    held += left;
                    tracing::warn!(
                        sink = &*sink.name,
                        records = left,
                        "the sink's peer did not take what it held before the run ended; {kept}"
                    );
                }
            }
        }
        self.dead = dead;
        self.write_dead()?;
        Ok(held)
    }

    /// Polls source `i` if it is due; returns its records and watermarks.
    fn poll_source(
        &mut self,
        i: usize,
        records: &mut Vec<Record>,
        next_wake: &mut Option<Instant>,
    ) -> Result<Option<(usize, Vec<Element>)>, RunError> {
        let source = &mut self.sources[i];
        if source.ended {
            return Ok(None);
        }
        if let Some(at) = source.wait_until {
            if Instant::now() < at {
                *next_wake = Some(next_wake.map_or(at, |w| w.min(at)));
                return Ok(source.check_idle(next_wake));
            }
            if !source.up && source.polled {
                source.health.retrying();
            }
        }
        let Some(driver) = source.driver.as_mut() else {
            return Ok(None);
        };
        let poll = match driver.poll(records, self.batch_size) {
            Ok(poll) => {
                if !source.up && source.polled {
                    source.health.up();
                    source.backoff.reset();
                }
                source.up = true;
                poll
            }
            Err(e) => {
                // Whatever it read before failing still counts.
                let transient = e.is_transient();
                let wait = source.backoff.after(transient, e.retry_after());
                source.up = false;
                source.health.down(&e.to_string(), transient, wait);
                Poll::WaitUntil(Instant::now() + wait)
            }
        };
        let rejected = driver.take_rejected();
        source.wait_until = match poll {
            Poll::WaitUntil(at) => Some(at),
            _ => None,
        };
        if poll == Poll::Ended {
            source.health.ended();
        }
        ComponentRecords {
            component: &source.name,
            role: Role::Source,
            records: records.len() as u64,
        }
        .emit();
        self.journal(i, records, poll == Poll::Ended, &rejected)?;
        if !rejected.is_empty() {
            self.dead.push(unreadable(&self.sources[i].name, rejected));
        }
        // Safe as the journal setting makes it: journaled now, or (without
        // a journal) once a checkpoint covers it; with no checkpoints at
        // all, as safe as it will be.
        let safe_now = self.durability.is_none() || self.sources[i].journal != JournalMode::Off;
        let source = &mut self.sources[i];
        if safe_now && let Some(driver) = source.driver.as_mut() {
            driver.acknowledge();
        }
        let count = records.len();
        let own = source.driver.as_ref().and_then(|d| d.watermark());
        let elements = source.elements(records.drain(..), count, poll == Poll::Ended, own);
        if elements.is_empty() {
            if let Some(at) = source.wait_until {
                *next_wake = Some(next_wake.map_or(at, |w| w.min(at)));
            }
            return Ok(source.check_idle(next_wake));
        }
        if count > 0 {
            source.last_records = Instant::now();
            source.idle = false;
        }
        Ok(Some((count, elements)))
    }

    /// Steps every operator in topological order, routing what each emits.
    pub(crate) fn step_operators(&mut self) -> Result<(), RunError> {
        let now_ms = wall_clock_ms();
        for i in 0..self.operators.len() {
            let node = &mut self.operators[i].node;
            let mut out = Output::default();
            node.step(&mut out);
            node.on_processing_time(now_ms, &mut out);
            let watermark = node.watermark();
            // While it holds input for a restarting plugin, the results of
            // that input are still to come: its watermark waits too.
            let advanced = !node.holding() && watermark > self.operators[i].sent_watermark;
            if advanced {
                self.operators[i].sent_watermark = watermark;
            }
            self.dead.append(&mut out.dead);
            self.route_emitted(i, out.runs, advanced.then_some(watermark));
        }
        Ok(())
    }

    /// Sends an operator's output along its routes; then its new watermark, if any.
    fn route_emitted(
        &mut self,
        i: usize,
        emitted: super::operator::Emitted,
        watermark: Option<i64>,
    ) {
        let idle = self.operators[i].node.idle();
        let newly_idle = idle && !self.operators[i].idle;
        self.operators[i].idle = idle;
        let name = self.operators[i].node.name.clone();
        for (output, elements) in emitted {
            let routes = self.operators[i]
                .routes
                .iter()
                .find(|(o, _)| *o == output)
                .map(|(_, r)| r.clone());
            match routes {
                Some(routes) => {
                    let label: Arc<str> = if output.is_empty() {
                        name.clone()
                    } else {
                        format!("{name}.{output}").into()
                    };
                    self.deliver(&routes, &label, elements);
                }
                None => self.unrouted(i, &output, elements),
            }
        }
        let status: Vec<Element> = watermark
            .map(Element::Watermark)
            .into_iter()
            .chain(newly_idle.then_some(Element::Idle))
            .collect();
        if !status.is_empty() {
            for (_, routes) in self.operators[i].routes.clone() {
                for route in routes {
                    if let Route::Operator { index, input } = route {
                        self.operators[index]
                            .node
                            .inbox
                            .push((input, status.clone()));
                    }
                }
            }
        }
    }

    /// Output nobody routes: late records are dead-lettered, never dropped;
    /// other side outputs are dropped with a warning the first time.
    fn unrouted(&mut self, i: usize, output: &str, elements: Vec<(Record, ResultId)>) {
        let slot = &mut self.operators[i];
        if output == LATE_OUTPUT {
            let records: Vec<Record> = elements.into_iter().map(|(r, _)| r).collect();
            self.dead.push(DeadLetterEntry {
                node: slot.node.name.clone(),
                reason: "late: its window had already fired (route `OPERATOR.late` to keep these elsewhere)".into(),
                input: DeadLetterInput::Records(records),
            });
            return;
        }
        if !slot.unrouted_warned.iter().any(|o| o == output) {
            tracing::warn!(
                operator = &*slot.node.name,
                output,
                "plugin emits to an output no sink or operator takes; its records are dropped"
            );
            slot.unrouted_warned.push(output.to_owned());
        }
        metrics::counter!("eddy_unrouted_records_total", "operator" => slot.node.name.to_string())
            .increment(elements.len() as u64);
    }

    /// Puts an operator's records in the inboxes of `routes`: operators get
    /// the records, sinks the records with their ids.
    fn deliver(&mut self, routes: &[Route], label: &Arc<str>, records: Vec<(Record, ResultId)>) {
        for (n, route) in routes.iter().enumerate() {
            let last = n + 1 == routes.len();
            match *route {
                Route::Operator { index, input } => {
                    let elements = records
                        .iter()
                        .map(|(r, _)| Element::Record(r.clone()))
                        .collect();
                    self.operators[index].node.inbox.push((input, elements));
                }
                Route::Sink { index } => {
                    let inbox = &mut self.sinks[index].inbox;
                    if last {
                        inbox.reserve(records.len());
                        for (record, id) in records {
                            inbox.push((label.clone(), id, record));
                        }
                        return;
                    }
                    inbox.extend(
                        records
                            .iter()
                            .map(|(r, id)| (label.clone(), id.clone(), r.clone())),
                    );
                }
            }
        }
    }

    /// Puts what source `i` read (`count` records, and watermarks) in the
    /// inboxes of its routes; sinks get the records, numbered for their ids.
    pub(crate) fn deliver_source(&mut self, i: usize, elements: Vec<Element>, count: usize) {
        let source = &mut self.sources[i];
        let first = source.records_out;
        source.records_out += count as u64;
        let routes = source.routes.clone();
        let label = source.name.clone();
        let Some((last, rest)) = routes.split_last() else {
            return;
        };
        for route in rest {
            self.deliver_source_one(*route, &label, elements.clone(), first);
        }
        self.deliver_source_one(*last, &label, elements, first);
    }

    fn deliver_source_one(
        &mut self,
        route: Route,
        label: &Arc<str>,
        elements: Vec<Element>,
        first: u64,
    ) {
        match route {
            Route::Operator { index, input } => {
                self.operators[index].node.inbox.push((input, elements));
            }
            Route::Sink { index } => {
                let inbox = &mut self.sinks[index].inbox;
                let records = elements.into_iter().filter_map(|e| match e {
                    Element::Record(r) => Some(r),
                    Element::Watermark(_) | Element::Idle => None,
                });
                for (n, record) in (first..).zip(records) {
                    let cause = Arc::new(Cause::Record {
                        key: record.key.clone(),
                        n,
                    });
                    inbox.push((label.clone(), ResultId { cause, seq: 0 }, record));
                }
            }
        }
    }

    /// Hands each sink what reached it (or gives a sink that is down its
    /// retry), then writes the step's dead letters.
    pub(crate) fn step_sinks(&mut self) -> Result<(), RunError> {
        for sink in &mut self.sinks {
            let Some(port) = sink.port.as_mut() else {
                continue;
            };
            let result = if sink.inbox.is_empty() {
                port.retry(&mut self.dead)
            } else {
                port.send(&self.name, &mut sink.inbox, &mut self.dead)
            };
            if result == Err(Closed) {
                self.closed = Some(sink.name.clone());
            }
        }
        self.write_dead()
    }

    /// Writes the dead letters gathered in this step.
    pub(crate) fn write_dead(&mut self) -> Result<(), RunError> {
        for entry in self.dead.drain(..) {
            self.dead_letter
                .write(&entry)
                .map_err(|error| RunError::DeadLetter {
                    path: self.dead_letter.path().to_owned(),
                    error,
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! A polled driver that fails now and then, in a graph of one operator
    //! that takes records and emits nothing.

    use super::*;
    use crate::config::RetryConfig;
    use crate::io::ComponentState;
    use crate::plugin::{Entry, OperatorLogic, Outputs, PluginFault};
    use crate::sinks::NullSink;
    use crate::state::OperatorState;
    use eddy_abi::OperatorKind;
    use eddy_driver::DriverError;

    struct Drop0 {
        state: OperatorState,
    }

    impl OperatorLogic for Drop0 {
        fn kind(&self) -> OperatorKind {
            OperatorKind::Process
        }
        fn name(&self) -> &str {
            "drop"
        }
        fn call(&mut self, _entry: Entry, _input: &[u8]) -> Result<Outputs, PluginFault> {
            Ok(Vec::new())
        }
        fn state_mut(&mut self) -> &mut OperatorState {
            &mut self.state
        }
    }

    /// Ten records, one a poll; the fourth poll fails as an unreachable
    /// device would, the seventh as a device that refuses the settings.
    struct Flaky {
        polls: u32,
        next: i64,
    }

    impl Driver for Flaky {
        fn poll(&mut self, out: &mut Vec<Record>, _max: usize) -> Result<Poll, DriverError> {
            self.polls += 1;
            match self.polls {
                4 => return Err(DriverError::unavailable("meter-1", "timed out")),
                7 => return Err(DriverError::Config("register 40001 is not readable".into())),
                _ => {}
            }
            if self.next == 10 {
                return Ok(Poll::Ended);
            }
            out.push(Record::new("meter-1", self.next));
            self.next += 1;
            Ok(Poll::Ready)
        }
    }

    #[test]
    fn a_failing_driver_is_retried_and_the_pipeline_reads_on() {
        let harness = super::super::Harness {
            params: serde_json::json!({}),
            window: None,
            allowed_lateness_ms: 0,
            key_by: None,
            bounded_out_of_orderness_ms: 0,
            batch_size: 16,
            limits: crate::plugin::PluginLimits::default(),
            dead_letter_path: "unused.jsonl".into(),
        };
        let mut graph = Graph::single_operator(
            Box::new(Drop0 {
                state: OperatorState::in_memory(),
            }),
            &[],
            Box::new(Flaky { polls: 0, next: 0 }),
            Box::new(NullSink::default()),
            &harness,
        )
        .unwrap();
        let quick = RetryConfig {
            initial_backoff_ms: 1,
            max_backoff_ms: 2,
        };
        graph.sources[0].backoff = Backoff::new(quick);
        let summary = graph.run(&RunControl::default()).unwrap();
        assert!(summary.completed);
        assert_eq!(summary.records_in, 10);
        let status = graph.sources[0].health.status();
        assert_eq!(status.state, ComponentState::Ended);
        assert_eq!((status.errors, status.retries), (2, 2));
        assert_eq!(
            status.last_error.as_deref(),
            Some("register 40001 is not readable")
        );
    }
}
