//! Running a plugin for an operator: calls, failures, restarts with backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_abi::{Capabilities, OperatorKind, Record};

use super::health::{Health, QuarantinePolicy};
use super::instance::{InstanceConfig, PluginInstance};
use super::swap::{Probation, SwapError, SwapOutcome, SwapReport};
use super::{Entry, PluginCaps, PluginEngine, PluginFault, PluginModule};
use crate::internal_events::{PluginFailed, PluginQuarantined, PluginRestarted, PluginSwapped};
use crate::state::OperatorState;

/// What one call emitted, in order.
pub type Outputs = Vec<OutputRun>;

/// Records one call emitted in a row to one output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRun {
    /// The output's name; `""` is the main output.
    pub output: String,
    /// The records, each with the index of the input item (record, window,
    /// timer) it derives from, when the guest said so.
    pub records: Vec<(Option<u32>, Record)>,
}

/// What an operator calls with its encoded input: a plugin, or (for
/// comparison in benchmarks and tests) the same logic compiled natively.
pub trait OperatorLogic: Send {
    /// Which entry points it has.
    fn kind(&self) -> OperatorKind;
    /// Its name, for dead letters and logs.
    fn name(&self) -> &str;
    /// Calls an entry point with an encoded input (see `eddy-abi`).
    fn call(&mut self, entry: Entry, input: &[u8]) -> Result<Outputs, PluginFault>;
    /// The operator's keyed state and timers.
    fn state_mut(&mut self) -> &mut OperatorState;

    /// Whether [`Entry::FoldResult`] may be called: an aggregate that folds
    /// fired windows and emits their results in one call. A call can still
    /// find it missing (a version rolled back to), and fails with
    /// [`PluginFault::NoEntry`] then.
    fn folds_results(&self) -> bool {
        false
    }

    /// The accumulators the last successful [`Entry::Aggregate`] call produced, one per group.
    fn take_accumulators(&mut self) -> Vec<std::sync::Arc<[u8]>> {
        Vec::new()
    }

    /// State the logic keeps in its own memory, for a checkpoint; `None` when it keeps none.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, PluginFault> {
        Ok(None)
    }

    /// Takes back what [`OperatorLogic::snapshot`] saved.
    fn restore(&mut self, _snapshot: &[u8]) -> Result<(), PluginFault> {
        Ok(())
    }

    /// The `state_version` the logic declares for its state.
    fn state_version(&self) -> u32 {
        0
    }

    /// Its version, for checkpoints.
    fn version(&self) -> &str {
        ""
    }

    /// While it waits out a restart backoff after a failure: when it takes
    /// calls again. Input that arrives meanwhile is held for it, not lost.
    fn restarting_until(&self) -> Option<Instant> {
        None
    }

    /// The plugin runner behind it, if it is one: for swaps, resets and status.
    fn plugin(&mut self) -> Option<&mut PluginRunner> {
        None
    }

    /// What [`OperatorLogic::plugin`] gives, read-only.
    fn plugin_ref(&self) -> Option<&PluginRunner> {
        None
    }
}

/// The resources and restart policy of one operator's plugin.
#[derive(Debug, Clone)]
pub struct PluginLimits {
    /// CPU time one call may take.
    pub deadline: Duration,
    /// The most linear memory the plugin may have.
    pub memory_bytes: usize,
    /// What it may make the host hold: state, timers, output, tables.
    pub caps: PluginCaps,
    /// Wait before the first restart after a failure; doubles on each failure in a row.
    pub restart_backoff: Duration,
    /// The longest wait between restarts.
    pub max_restart_backoff: Duration,
    /// When a plugin that keeps failing is quarantined.
    pub quarantine: QuarantinePolicy,
    /// Calls a swapped-in version must get through before the version it
    /// replaced is let go; a fault before that rolls the swap back.
    pub probation_calls: u32,
    /// The operator's grants table; `None` grants what the plugin declares.
    pub grants: Option<Capabilities>,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            deadline: Duration::from_millis(100),
            memory_bytes: 64 << 20,
            caps: PluginCaps::default(),
            restart_backoff: Duration::from_millis(100),
            max_restart_backoff: Duration::from_secs(30),
            quarantine: QuarantinePolicy::default(),
            probation_calls: 3,
            grants: None,
        }
    }
}

/// One version of the plugin: its module, live instance and health.
pub(crate) struct Version {
    pub(crate) module: Arc<PluginModule>,
    /// What it may touch, checked on every state and side-output call.
    granted: Arc<Capabilities>,
    instance: Option<PluginInstance>,
    /// The state while there is no instance to hold it.
    parked: Option<OperatorState>,
    pub(crate) health: Health,
}

impl Version {
    /// Takes the operator's state out, wherever it is held.
    fn take_state(&mut self) -> OperatorState {
        match self.instance.as_mut() {
            Some(instance) => std::mem::take(instance.state_mut()),
            None => self.parked.take().unwrap_or_default(),
        }
    }

    /// Puts the operator's state back.
    fn put_state(&mut self, state: OperatorState) {
        match self.instance.as_mut() {
            Some(instance) => *instance.state_mut() = state,
            None => self.parked = Some(state),
        }
    }
}

/// Counters of what happened to an operator's plugin, for `eddy status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunnerCounters {
    /// Calls that failed.
    pub faults: u64,
    /// Fresh instances started after a failure.
    pub restarts: u64,
    /// Versions swapped in and kept.
    pub swaps: u64,
    /// Swaps rolled back.
    pub rollbacks: u64,
}

/// A plugin as an operator runs it. Keeps its state when an instance fails,
/// starts a fresh instance once the backoff has passed, quarantines a
/// version that keeps failing, and swaps versions at a call boundary.
pub struct PluginRunner {
    engine: PluginEngine,
    config: InstanceConfig,
    limits: PluginLimits,
    pub(crate) current: Version,
    /// The version a swap replaced, until the new one has proven itself.
    pub(crate) probation: Option<Probation>,
    /// How the last swap ended, until someone takes it.
    outcome: Option<SwapOutcome>,
    counters: RunnerCounters,
    /// The params the pipeline file gives; overrides apply over them.
    base_params: serde_json::Value,
}

impl PluginRunner {
    /// Starts the plugin. Fails when the first instance cannot start, for
    /// example because the plugin rejects its params.
    pub fn start(
        engine: &PluginEngine,
        module: Arc<PluginModule>,
        operator: &str,
        params: &serde_json::Value,
        limits: PluginLimits,
        state: OperatorState,
    ) -> Result<Self, PluginFault> {
        let config = InstanceConfig {
            params: serde_json::to_vec(params)
                .map_err(|e| PluginFault::Start(e.to_string()))?
                .into(),
            memory_cap: limits.memory_bytes,
            caps: limits.caps,
            deadline: limits.deadline,
            operator: operator.into(),
        };
        let granted = Arc::new(
            limits
                .grants
                .clone()
                .unwrap_or_else(|| module.manifest().capabilities.clone()),
        );
        let instance = PluginInstance::start(engine, &module, &config, &granted, state)
            .map_err(|(fault, _)| fault)?;
        Ok(PluginRunner {
            engine: engine.clone(),
            config,
            current: Version {
                module,
                granted,
                instance: Some(instance),
                parked: None,
                health: Health::new(limits.restart_backoff),
            },
            limits,
            probation: None,
            outcome: None,
            counters: RunnerCounters::default(),
            base_params: params.clone(),
        })
    }

    /// Runs the plugin with `overrides` merged over the pipeline file's
    /// params (a device twin's desired params: objects merge, `null`
    /// removes an override), from its next call on, without a restart and
    /// with its state kept. The plugin must be granted `twin`; its `init`
    /// checks the new params, and when it refuses them the old ones stay.
    pub fn set_param_overrides(
        &mut self,
        overrides: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), String> {
        let plugin = &self.current.module.manifest().name;
        if !self.current.granted.twin {
            return Err(format!(
                "plugin `{plugin}` does not take params from its twin (it must declare `twin` and be granted it)"
            ));
        }
        if self.probation.is_some() {
            return Err("a new plugin version is on probation; try again after it".into());
        }
        let mut params = self.base_params.clone();
        let serde_json::Value::Object(map) = &mut params else {
            return Err("the operator's params are not a table".into());
        };
        crate::twin::document::merge(map, overrides);
        let bytes: Arc<[u8]> = serde_json::to_vec(&params)
            .map_err(|e| e.to_string())?
            .into();
        let Some(instance) = self.current.instance.as_mut() else {
            return Err(format!(
                "plugin `{plugin}` is not running now (restarting or quarantined); the params are tried again later"
            ));
        };
        match instance.reinit(bytes.clone()) {
            Ok(()) => {
                self.config.params = bytes;
                Ok(())
            }
            Err((fault, usable)) => {
                if !usable {
                    if let Some(instance) = self.current.instance.take() {
                        self.current.parked = Some(instance.into_state());
                    }
                    self.schedule_restart(&fault);
                }
                Err(fault.to_string())
            }
        }
    }

    /// The running version's module.
    pub fn module(&self) -> &PluginModule {
        &self.current.module
    }

    /// What happened so far.
    pub fn counters(&self) -> RunnerCounters {
        self.counters
    }

    /// Why the running version is quarantined, if it is.
    pub fn quarantined(&self) -> Option<&str> {
        self.current.health.quarantined.as_deref()
    }

    /// The version being replaced, while a swapped-in one is on probation.
    pub fn probation_from(&self) -> Option<&str> {
        self.probation
            .as_ref()
            .map(|p| p.previous.module.manifest().version.as_str())
    }

    /// The size of the running instance's linear memory, in bytes (0 when none is up).
    pub fn memory_bytes(&self) -> usize {
        self.current
            .instance
            .as_ref()
            .map_or(0, PluginInstance::memory_bytes)
    }

    /// Its limits.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// The operator's keyed state and timers, wherever they are held.
    pub fn state(&self) -> &OperatorState {
        static EMPTY: std::sync::OnceLock<OperatorState> = std::sync::OnceLock::new();
        match (&self.current.instance, &self.current.parked) {
            (Some(instance), _) => instance.state(),
            (None, Some(parked)) => parked,
            (None, None) => EMPTY.get_or_init(OperatorState::default),
        }
    }

    /// Whether an instance is up (not waiting out a backoff or quarantined).
    pub fn running(&self) -> bool {
        self.current.instance.is_some()
    }

    /// Swaps in another version of the plugin, between two calls.
    ///
    /// The operator's keyed state and timers move to the new version, and so
    /// does the state the plugin keeps in its own memory (through its
    /// `snapshot`/`restore` exports). With `reset_state` the new version
    /// starts empty instead, as it must when its `state_version` differs.
    /// The old version is kept until the new one has made
    /// [`PluginLimits::probation_calls`] calls; a fault before that rolls the
    /// swap back and the failed call is made again by the old version, so no
    /// input is lost or processed twice. The report gives the pause: how
    /// long the operator could not be called.
    pub fn swap(
        &mut self,
        module: Arc<PluginModule>,
        reset_state: bool,
    ) -> Result<SwapReport, SwapError> {
        let started = Instant::now();
        if self.probation.is_some() {
            return Err(SwapError::InProgress);
        }
        let old = self.current.module.clone();
        if module.kind() != old.kind() {
            return Err(SwapError::Kind {
                old: old.kind(),
                new: module.kind(),
            });
        }
        let (old_version, new_version) = (
            old.manifest().state_version,
            module.manifest().state_version,
        );
        if !reset_state && old_version != new_version {
            return Err(SwapError::StateVersion {
                old: old_version,
                new: new_version,
            });
        }
        if !reset_state && old.has_snapshot() && !module.has_snapshot() {
            return Err(SwapError::DropsSnapshot);
        }
        let granted = Arc::new(
            self.limits
                .grants
                .clone()
                .unwrap_or_else(|| module.manifest().capabilities.clone()),
        );
        super::grants::check(&module, &granted).map_err(SwapError::Grants)?;
        let snapshot = match self.current.instance.as_mut() {
            Some(instance) if !reset_state && module.has_snapshot() && old.has_snapshot() => {
                // A running version that fails here is dropped as after any fault.
                let saved = instance.snapshot();
                Some(self.fail_on_fault(saved).map_err(SwapError::Snapshot)?)
            }
            _ => None,
        };
        let state = if reset_state {
            let ttl = self.state_mut().keyed.ttl().map(|t| t as u64);
            OperatorState::with_ttl(ttl)
        } else {
            self.current.take_state()
        };
        let mut instance =
            match PluginInstance::start(&self.engine, &module, &self.config, &granted, state) {
                Ok(instance) => instance,
                Err((fault, state)) => {
                    if !reset_state {
                        self.current.put_state(*state);
                    }
                    return Err(SwapError::Start(fault));
                }
            };
        if let Some(bytes) = &snapshot
            && let Err(fault) = instance.restore(bytes)
        {
            if !reset_state {
                self.current.put_state(instance.into_state());
            }
            return Err(SwapError::Start(fault));
        }
        let (from, to) = (
            old.manifest().version.clone(),
            module.manifest().version.clone(),
        );
        let previous = std::mem::replace(
            &mut self.current,
            Version {
                module,
                granted,
                instance: Some(instance),
                parked: None,
                health: Health::new(self.limits.restart_backoff),
            },
        );
        let report = SwapReport {
            from,
            to,
            pause: started.elapsed(),
        };
        self.probation = Some(Probation {
            previous,
            reset_state,
            calls_left: self.limits.probation_calls,
            snapshot,
            report: report.clone(),
        });
        if self.limits.probation_calls == 0 {
            self.end_probation();
        }
        Ok(report)
    }

    /// Takes how the last swap ended, once it has.
    pub fn take_outcome(&mut self) -> Option<SwapOutcome> {
        self.outcome.take()
    }

    /// Lifts a quarantine and any restart backoff: the next call starts a
    /// fresh instance.
    pub fn reset(&mut self) {
        self.current.health = Health::new(self.limits.restart_backoff);
    }

    /// A call on the running version, with its failures handled.
    fn call_current(&mut self, entry: Entry, input: &[u8]) -> Result<Outputs, PluginFault> {
        let result = self.instance()?.call(entry, input);
        self.fail_on_fault(result)
    }

    /// The new version got through a call on probation.
    fn passed_probation_call(&mut self) {
        let Some(probation) = self.probation.as_mut() else {
            return;
        };
        if self.current.module.has_snapshot()
            && let Some(instance) = self.current.instance.as_mut()
        {
            // What to hand back to the old version, should a later call fail.
            probation.snapshot = instance.snapshot().ok();
        }
        probation.calls_left = probation.calls_left.saturating_sub(1);
        if probation.calls_left == 0 {
            self.end_probation();
        }
    }

    /// The new version has proven itself: the old one goes.
    fn end_probation(&mut self) {
        if let Some(probation) = self.probation.take() {
            self.counters.swaps += 1;
            PluginSwapped::kept(
                &self.config.operator,
                &self.current.module,
                &probation.report,
            )
            .emit();
            self.outcome = Some(SwapOutcome::Kept(probation.report));
        }
    }

    /// The new version failed on probation: the old one comes back, with the
    /// state as the new one left it after its last successful call.
    fn roll_back(&mut self, fault: PluginFault) {
        let Some(probation) = self.probation.take() else {
            return;
        };
        let mut failed = std::mem::replace(&mut self.current, probation.previous);
        if !probation.reset_state {
            let state = failed.take_state();
            self.current.put_state(state);
            if let Some(bytes) = probation.snapshot
                && let Ok(instance) = self.instance()
                && let Err(e) = instance.restore(&bytes)
            {
                tracing::warn!(
                    operator = &*self.config.operator,
                    "the restored version could not take back its memory snapshot: {e}"
                );
            }
        }
        self.counters.rollbacks += 1;
        PluginSwapped::rolled_back(&self.config.operator, &failed.module, &fault).emit();
        self.outcome = Some(SwapOutcome::RolledBack {
            report: probation.report,
            fault,
        });
    }
}

impl OperatorLogic for PluginRunner {
    fn kind(&self) -> OperatorKind {
        self.current.module.kind()
    }

    fn name(&self) -> &str {
        &self.current.module.manifest().name
    }

    fn folds_results(&self) -> bool {
        self.current.module.has_fold_result()
    }

    /// Calls `entry` with an encoded input. On a fault the caller dead-letters
    /// the input; the runner has already dropped a broken instance. A version
    /// on probation that fails is rolled back, and the old one takes the call.
    fn call(&mut self, entry: Entry, input: &[u8]) -> Result<Outputs, PluginFault> {
        let result = self.call_current(entry, input);
        if self.probation.is_none() {
            return result;
        }
        match result {
            Ok(outputs) => {
                self.passed_probation_call();
                Ok(outputs)
            }
            Err(fault) => {
                self.roll_back(fault);
                self.call_current(entry, input)
            }
        }
    }

    fn restarting_until(&self) -> Option<Instant> {
        let health = &self.current.health;
        if health.quarantined.is_some() || self.current.instance.is_some() {
            return None;
        }
        health.restart_at.filter(|at| *at > Instant::now())
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, PluginFault> {
        if !self.current.module.has_snapshot() {
            return Ok(None);
        }
        let snapshot = self.instance()?.snapshot();
        self.fail_on_fault(snapshot).map(Some)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), PluginFault> {
        if !self.current.module.has_snapshot() {
            return Ok(());
        }
        let restored = self.instance()?.restore(snapshot);
        self.fail_on_fault(restored)
    }

    fn state_version(&self) -> u32 {
        self.current.module.manifest().state_version
    }

    fn version(&self) -> &str {
        &self.current.module.manifest().version
    }

    fn take_accumulators(&mut self) -> Vec<std::sync::Arc<[u8]>> {
        self.current
            .instance
            .as_mut()
            .map(PluginInstance::take_accumulators)
            .unwrap_or_default()
    }

    /// The operator's state, wherever it is held right now.
    fn state_mut(&mut self) -> &mut OperatorState {
        let current = &mut self.current;
        if let Some(instance) = current.instance.as_mut() {
            return instance.state_mut();
        }
        current.parked.get_or_insert_with(OperatorState::in_memory)
    }

    fn plugin(&mut self) -> Option<&mut PluginRunner> {
        Some(self)
    }

    fn plugin_ref(&self) -> Option<&PluginRunner> {
        Some(self)
    }
}

impl PluginRunner {
    /// Resets the backoff after a success; after a fault that broke the
    /// instance, drops it (keeping its state), schedules a restart, and
    /// quarantines a version that keeps failing.
    fn fail_on_fault<T>(&mut self, result: Result<T, PluginFault>) -> Result<T, PluginFault> {
        match result {
            Ok(value) => {
                self.current.health.backoff = self.limits.restart_backoff;
                Ok(value)
            }
            // Neither is the instance's fault: nothing ran.
            Err(fault @ (PluginFault::Quarantined(_) | PluginFault::NoEntry(_))) => Err(fault),
            Err(fault) => {
                self.counters.faults += 1;
                if fault.needs_restart() {
                    if let Some(instance) = self.current.instance.take() {
                        self.current.parked = Some(instance.into_state());
                    }
                    self.schedule_restart(&fault);
                } else {
                    PluginFailed::new(&self.config.operator, &self.current.module, &fault, None)
                        .emit();
                }
                Err(fault)
            }
        }
    }

    /// The live instance, starting a fresh one if the backoff has passed.
    fn instance(&mut self) -> Result<&mut PluginInstance, PluginFault> {
        if let Some(reason) = &self.current.health.quarantined {
            return Err(PluginFault::Quarantined(reason.clone()));
        }
        if self.current.instance.is_none() {
            if let Some(at) = self.current.health.restart_at {
                let now = Instant::now();
                if now < at {
                    return Err(PluginFault::Restarting(at - now));
                }
            }
            let state = self.current.parked.take().unwrap_or_default();
            let current = &self.current;
            match PluginInstance::start(
                &self.engine,
                &current.module,
                &self.config,
                &current.granted,
                state,
            ) {
                Ok(instance) => {
                    PluginRestarted::new(&self.config.operator, &self.current.module).emit();
                    self.counters.restarts += 1;
                    self.current.instance = Some(instance);
                    self.current.health.restart_at = None;
                }
                Err((fault, state)) => {
                    self.current.parked = Some(*state);
                    self.counters.faults += 1;
                    self.schedule_restart(&fault);
                    return Err(fault);
                }
            }
        }
        self.current
            .instance
            .as_mut()
            .ok_or_else(|| PluginFault::Start("no instance".into()))
    }

    fn schedule_restart(&mut self, fault: &PluginFault) {
        let now = Instant::now();
        let health = &mut self.current.health;
        PluginFailed::new(
            &self.config.operator,
            &self.current.module,
            fault,
            Some(health.backoff),
        )
        .emit();
        health.restart_at = Some(now + health.backoff);
        health.backoff = (health.backoff * 2).min(self.limits.max_restart_backoff);
        if let Some(reason) = health.fault(now, self.limits.quarantine) {
            PluginQuarantined::new(&self.config.operator, &self.current.module, &reason).emit();
        }
    }
}
