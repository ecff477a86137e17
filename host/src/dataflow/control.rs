//! Requests to a running pipeline (status, plugin swap, reset), served on the
//! pipeline's own thread between two loop steps, when nothing is in flight.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use serde::Serialize;
use tokio::sync::oneshot;

use super::graph::Graph;
use crate::io::ComponentStatus;
use crate::plugin::{Allocation, PluginModule, PluginRunner, SwapError, SwapOutcome, SwapReport};

/// A request to a running pipeline.
pub enum Request {
    /// What the pipeline is doing.
    Status(oneshot::Sender<PipelineStatus>),
    /// Swap an operator's plugin for another version.
    Swap {
        /// The operator.
        operator: String,
        /// The new version, already checked and compiled.
        module: Arc<PluginModule>,
        /// The plugin file's bytes, kept in the state directory once the
        /// version passes its probation.
        plugin: Arc<[u8]>,
        /// Start the new version with empty state.
        reset_state: bool,
        /// Gets how the swap ended: refused, kept, or rolled back.
        reply: oneshot::Sender<SwapResult>,
    },
    /// Run an operator's plugin with params overridden (from the device
    /// twin's desired state), from its next call on.
    SetParams {
        /// The operator.
        operator: String,
        /// Merged over the pipeline file's params; `null` removes one.
        overrides: serde_json::Map<String, serde_json::Value>,
        /// Gets whether the plugin took them, or why not.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Lift an operator's quarantine and restart backoff.
    Reset {
        /// The operator.
        operator: String,
        /// Gets whether there was such an operator.
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// How a swap request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SwapResult {
    /// Not attempted: the running version carries on.
    Refused(String),
    /// The new version went in and passed its probation, or was rolled back.
    Done(SwapOutcome),
}

/// A running pipeline, as `eddy status` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PipelineStatus {
    /// The pipeline's name.
    pub pipeline: String,
    /// The release this eddy runs (set by `eddy-start` on a deployed device).
    #[serde(default)]
    pub release: Option<String>,
    /// The host's resident memory, in bytes (0 where unknown).
    pub resident_bytes: u64,
    /// The most resident memory the process has had.
    #[serde(default)]
    pub peak_resident_bytes: u64,
    /// Records and timers in the dead-letter log.
    pub dead_lettered: u64,
    /// Of those, how many were not written because the log had reached
    /// `[pipeline] dead_letter_max_mib`.
    #[serde(default)]
    pub dead_letters_unwritten: u64,
    /// How plugin memory is allocated: `pooled (N slots)` or `on demand`.
    pub plugin_memory: String,
    /// The bits of address space the process was found to have at start.
    pub address_space_bits: Option<u32>,
    /// Sources.
    pub sources: Vec<SourceStatus>,
    /// Operators, in topological order.
    pub operators: Vec<OperatorStatus>,
    /// Sinks.
    pub sinks: Vec<SinkStatus>,
}

/// A source in [`PipelineStatus`].
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SourceStatus {
    /// Its name.
    pub name: String,
    /// Records read.
    pub records: u64,
    /// Whether it has ended.
    pub ended: bool,
    /// Whether it holds back event time (no records for its idle timeout
    /// makes it idle, and then it does not).
    pub idle: bool,
    /// Its kind, state (`up`, `retrying`, …), since when, last error and counters.
    #[serde(flatten)]
    pub health: ComponentStatus,
}

/// An operator in [`PipelineStatus`].
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct OperatorStatus {
    /// Its name.
    pub name: String,
    /// Its plugin's name.
    pub plugin: String,
    /// Its plugin's version.
    pub version: String,
    /// Records taken in.
    pub records_in: u64,
    /// Plugin calls.
    pub calls: u64,
    /// Records and timers of this operator in the dead-letter log.
    pub dead_lettered: u64,
    /// `running`, `restarting` (waiting out a backoff) or `quarantined`.
    pub state: String,
    /// Why it is quarantined.
    pub quarantined: Option<String>,
    /// The size of its plugin's linear memory, in bytes.
    pub memory_bytes: u64,
    /// Failed calls.
    pub faults: u64,
    /// Fresh instances after failures.
    pub restarts: u64,
    /// Versions swapped in and kept.
    pub swaps: u64,
    /// Swaps rolled back.
    pub rollbacks: u64,
    /// The version being replaced, while a swapped-in version is on probation.
    pub probation_from: Option<String>,
    /// What the host holds for it now.
    pub usage: OperatorUsage,
    /// What it may use (absent for logic that is not a plugin).
    pub limits: Option<OperatorLimits>,
}

/// What the host holds for an operator's plugin, against its caps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OperatorUsage {
    /// Keyed-state values.
    pub state_keys: u64,
    /// Keyed-state bytes, as the cap counts them.
    pub state_bytes: u64,
    /// Timers set.
    pub timers: u64,
}

/// An operator's limits, as `[plugins]` and its own table set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OperatorLimits {
    /// CPU time per call, ms.
    pub deadline_ms: u64,
    /// Linear memory, bytes.
    pub memory_bytes: u64,
    /// Keyed state, bytes.
    pub state_bytes: u64,
    /// Keyed-state values.
    pub state_keys: u64,
    /// Timers.
    pub timers: u64,
    /// Records emitted per call.
    pub emit_records: u64,
    /// Bytes of output per call, as the host holds it.
    pub output_bytes: u64,
    /// Table elements.
    pub table_elements: u64,
}

/// A sink in [`PipelineStatus`].
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SinkStatus {
    /// Its name.
    pub name: String,
    /// Records written (delivered to its peer).
    pub written: u64,
    /// Records held, waiting for its peer.
    pub held: u64,
    /// Records its buffer's policy dropped.
    pub dropped: u64,
    /// A broker sink's durable outbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<OutboxStatus>,
    /// Its kind, state (`up`, `retrying`, …), since when, last error and counters.
    #[serde(flatten)]
    pub health: ComponentStatus,
}

/// A durable outbox in [`SinkStatus`].
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct OutboxStatus {
    /// Results waiting for the broker.
    pub entries: u64,
    /// Their bytes on disk.
    pub bytes: u64,
    /// How long the oldest has waited, in ms.
    pub oldest_age_ms: Option<i64>,
    /// Dropped because the outbox was full.
    pub dropped_full: u64,
    /// Dropped because they were older than `max_age_ms`.
    pub expired: u64,
    /// Produced again after a restore but already delivered, so not sent again.
    pub replayed: u64,
}

/// A swap waiting for its new version's probation to end.
pub(crate) struct PendingSwap {
    operator: usize,
    plugin: Arc<[u8]>,
    reply: oneshot::Sender<SwapResult>,
}

impl Graph {
    /// Serves every request that has come in; never waits.
    pub(crate) fn serve_requests(&mut self) {
        let Some(requests) = self.requests.take() else {
            return;
        };
        loop {
            match requests.try_recv() {
                Ok(request) => self.serve(request),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.pending_swaps.clear();
                    return;
                }
            }
        }
        self.requests = Some(requests);
    }

    /// Answers swaps whose probation has ended.
    pub(crate) fn answer_swaps(&mut self) {
        if self.pending_swaps.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending_swaps);
        for swap in pending {
            let outcome = self.operators[swap.operator]
                .node
                .logic
                .plugin()
                .and_then(|p| p.take_outcome());
            match outcome {
                Some(outcome) => {
                    if let SwapOutcome::Kept(report) = &outcome {
                        self.keep(swap.operator, &swap.plugin, &report.to);
                    }
                    // Whether or not anybody still waits for the answer.
                    let _ = swap.reply.send(SwapResult::Done(outcome));
                }
                None => self.pending_swaps.push(swap),
            }
        }
    }

    /// A version passed its probation: keeps it for restarts, and has the
    /// state (which now belongs to it) checkpointed soon, so that a restart
    /// finds it with the version's `state_version`.
    fn keep(&mut self, operator: usize, plugin: &[u8], version: &str) {
        if let Some(durability) = self.durability.as_mut() {
            durability.next_at = std::time::Instant::now();
        }
        let name = self.operators[operator].node.name.clone();
        if let Some(kept) = &self.kept
            && let Err(e) = kept.keep(&name, plugin, version)
        {
            tracing::warn!(
                operator = &*name,
                "the swapped-in version could not be kept in the state directory ({e}); a restart runs the pipeline file's"
            );
        }
    }

    /// Serves one request.
    fn serve(&mut self, request: Request) {
        match request {
            Request::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Request::Swap {
                operator,
                module,
                plugin,
                reset_state,
                reply,
            } => match self.swap(&operator, module, reset_state) {
                Ok((index, _)) => {
                    self.pending_swaps.push(PendingSwap {
                        operator: index,
                        plugin,
                        reply,
                    });
                    self.answer_swaps();
                }
                Err(reason) => {
                    let _ = reply.send(SwapResult::Refused(reason));
                }
            },
            Request::SetParams {
                operator,
                overrides,
                reply,
            } => {
                let result = self.operator_index(&operator).and_then(|i| {
                    match self.operators[i].node.logic.plugin() {
                        Some(runner) => runner.set_param_overrides(&overrides),
                        None => Err(SwapError::NotAPlugin.to_string()),
                    }
                });
                match &result {
                    Ok(()) => tracing::info!(operator, ?overrides, "params set from the twin"),
                    Err(reason) => {
                        tracing::warn!(
                            operator,
                            ?overrides,
                            "params from the twin refused: {reason}"
                        )
                    }
                }
                let _ = reply.send(result);
            }
            Request::Reset { operator, reply } => {
                let result = match self.operator_index(&operator) {
                    Ok(i) => match self.operators[i].node.logic.plugin() {
                        Some(runner) => {
                            runner.reset();
                            tracing::info!(operator, "plugin reset: quarantine and backoff lifted");
                            Ok(())
                        }
                        None => Err(SwapError::NotAPlugin.to_string()),
                    },
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
        }
    }

    fn operator_index(&self, operator: &str) -> Result<usize, String> {
        self.operators
            .iter()
            .position(|o| &*o.node.name == operator)
            .ok_or_else(|| {
                let names: Vec<&str> = self.operators.iter().map(|o| &*o.node.name).collect();
                format!(
                    "pipeline `{}` has no operator `{operator}`; it has: {}",
                    self.name,
                    names.join(", ")
                )
            })
    }

    /// Swaps operator `operator`'s plugin now; returns its index and the report.
    fn swap(
        &mut self,
        operator: &str,
        module: Arc<PluginModule>,
        reset_state: bool,
    ) -> Result<(usize, SwapReport), String> {
        let index = self.operator_index(operator)?;
        let slot = &mut self.operators[index];
        let runner = slot
            .node
            .logic
            .plugin()
            .ok_or_else(|| SwapError::NotAPlugin.to_string())?;
        let report = runner
            .swap(module, reset_state)
            .map_err(|e| format!("operator `{operator}`: {e}"))?;
        tracing::info!(
            operator,
            from = %report.from,
            to = %report.to,
            pause_ms = report.pause.as_secs_f64() * 1e3,
            "plugin swapped in; on probation"
        );
        Ok((index, report))
    }

    /// What the pipeline is doing now.
    pub fn status(&self) -> PipelineStatus {
        PipelineStatus {
            pipeline: self.name.clone(),
            release: crate::runtime::release::Release::from_env().map(|r| r.id().to_owned()),
            resident_bytes: resident_bytes(),
            peak_resident_bytes: peak_resident_bytes(),
            dead_lettered: self.dead_letter.records(),
            dead_letters_unwritten: self.dead_letter.unwritten(),
            plugin_memory: match self.loader.as_ref().map(|l| l.engine().allocation()) {
                Some(Allocation::Pooling { slots }) => format!("pooled ({slots} slots)"),
                _ => "on demand".into(),
            },
            address_space_bits: self
                .loader
                .as_ref()
                .and_then(|l| l.engine().address_space_bits()),
            sources: self
                .sources
                .iter()
                .map(|s| SourceStatus {
                    name: s.name.to_string(),
                    records: s.records_out,
                    ended: s.ended,
                    idle: s.idle,
                    health: s.health.status(),
                })
                .collect(),
            operators: self
                .operators
                .iter()
                .map(|o| {
                    let node = &o.node;
                    let runner = node.logic.plugin_ref();
                    let counters = runner.map(|r| r.counters()).unwrap_or_default();
                    let quarantined = runner.and_then(|r| r.quarantined()).map(str::to_owned);
                    let state = match (&quarantined, runner.is_none_or(|r| r.running())) {
                        (Some(_), _) => "quarantined",
                        (None, true) => "running",
                        (None, false) => "restarting",
                    };
                    OperatorStatus {
                        name: node.name.to_string(),
                        plugin: node.logic.name().to_owned(),
                        version: node.logic.version().to_owned(),
                        records_in: node.records_in,
                        calls: node.calls,
                        dead_lettered: self.dead_letter.records_of(&node.name),
                        state: state.to_owned(),
                        quarantined,
                        memory_bytes: runner.map_or(0, |r| r.memory_bytes() as u64),
                        faults: counters.faults,
                        restarts: counters.restarts,
                        swaps: counters.swaps,
                        rollbacks: counters.rollbacks,
                        probation_from: runner.and_then(|r| r.probation_from()).map(str::to_owned),
                        usage: runner.map(usage).unwrap_or_default(),
                        limits: runner.map(limits),
                    }
                })
                .collect(),
            sinks: self
                .sinks
                .iter()
                .filter_map(|s| {
                    let port = s.port.as_ref()?;
                    let counters = port.counters();
                    Some(SinkStatus {
                        name: s.name.to_string(),
                        written: counters.written,
                        held: counters.held,
                        dropped: counters.dropped,
                        outbox: counters.outbox.map(|o| OutboxStatus {
                            entries: o.entries,
                            bytes: o.bytes,
                            oldest_age_ms: o.oldest_ms.map(|t| (eddy_codec::now_ms() - t).max(0)),
                            dropped_full: o.dropped,
                            expired: o.expired,
                            replayed: o.replayed,
                        }),
                        health: port.health().status(),
                    })
                })
                .collect(),
        }
    }

    /// Lets the pipeline take requests from `requests` while it runs; ring
    /// its [`Graph::doorbell`] after sending one, so it is served at once.
    pub fn accept_requests(&mut self, requests: Receiver<Request>) {
        self.requests = Some(requests);
    }

    /// Keeps versions that pass probation in `kept`, so that a restart runs them.
    pub fn keep_swaps_in(&mut self, kept: crate::plugin::KeptSwaps) {
        self.kept = Some(kept);
    }

    /// What wakes the pipeline thread when there is work for it.
    pub fn doorbell(&self) -> eddy_driver::Doorbell {
        self.doorbell.clone()
    }
}

/// What the host holds for a plugin.
fn usage(runner: &PluginRunner) -> OperatorUsage {
    let state = runner.state();
    OperatorUsage {
        state_keys: state.keyed.len() as u64,
        state_bytes: state.keyed.bytes() as u64,
        timers: state.timers.len() as u64,
    }
}

/// A plugin's limits.
fn limits(runner: &PluginRunner) -> OperatorLimits {
    let limits = runner.limits();
    let caps = &limits.caps;
    OperatorLimits {
        deadline_ms: limits.deadline.as_millis() as u64,
        memory_bytes: limits.memory_bytes as u64,
        state_bytes: caps.state_bytes as u64,
        state_keys: caps.state_keys as u64,
        timers: caps.timers as u64,
        emit_records: caps.emit_records as u64,
        output_bytes: caps.output_bytes as u64,
        table_elements: caps.table_elements as u64,
    }
}

/// The process's resident memory, from `/proc/self/status` (0 where unknown).
pub fn resident_bytes() -> u64 {
    proc_status_bytes("VmRSS:")
}

/// The most resident memory the process has had (0 where unknown).
pub fn peak_resident_bytes() -> u64 {
    proc_status_bytes("VmHWM:")
}

/// A size in kB from `/proc/self/status`, in bytes.
fn proc_status_bytes(field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
