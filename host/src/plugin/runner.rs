//! Running a plugin for an operator: calls, failures, restarts with backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_abi::{OperatorKind, Record};

use super::instance::{InstanceConfig, PluginInstance};
use super::{Entry, PluginEngine, PluginFault, PluginModule};
use crate::internal_events::{PluginFailed, PluginRestarted};
use crate::state::OperatorState;

/// What one call emitted, in order.
pub type Outputs = Vec<OutputRun>;

/// Records one call emitted in a row to one output, for one cause.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRun {
    /// The output's name; `""` is the main output.
    pub output: String,
    /// The index of the input item (record, window, timer) they derive from,
    /// when the guest said so.
    pub cause: Option<u32>,
    /// The records.
    pub records: Vec<Record>,
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

    /// The accumulators the last successful [`Entry::Aggregate`] call produced, one per group.
    fn take_accumulators(&mut self) -> Vec<Vec<u8>> {
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
}

/// The resources and restart policy of one operator's plugin.
#[derive(Debug, Clone)]
pub struct PluginLimits {
    /// CPU time one call may take.
    pub deadline: Duration,
    /// The most linear memory the plugin may have.
    pub memory_bytes: usize,
    /// The most encoded output one call may emit.
    pub output_bytes: usize,
    /// Wait before the first restart after a failure; doubles on each failure in a row.
    pub restart_backoff: Duration,
    /// The longest wait between restarts.
    pub max_restart_backoff: Duration,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            deadline: Duration::from_millis(100),
            memory_bytes: 64 << 20,
            output_bytes: 64 << 20,
            restart_backoff: Duration::from_millis(100),
            max_restart_backoff: Duration::from_secs(30),
        }
    }
}

/// A plugin as an operator runs it. Keeps its state when an instance fails,
/// and starts a fresh instance once the backoff has passed.
pub struct PluginRunner {
    engine: PluginEngine,
    module: Arc<PluginModule>,
    config: InstanceConfig,
    limits: PluginLimits,
    instance: Option<PluginInstance>,
    /// The state while there is no instance to hold it.
    parked: Option<OperatorState>,
    /// When the next instance may start, after a failure.
    restart_at: Option<Instant>,
    backoff: Duration,
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
            output_cap: limits.output_bytes,
            deadline: limits.deadline,
            operator: operator.into(),
        };
        let instance =
            PluginInstance::start(engine, &module, &config, state).map_err(|(fault, _)| fault)?;
        Ok(PluginRunner {
            engine: engine.clone(),
            module,
            config,
            backoff: limits.restart_backoff,
            limits,
            instance: Some(instance),
            parked: None,
            restart_at: None,
        })
    }

    /// The plugin's module.
    pub fn module(&self) -> &PluginModule {
        &self.module
    }
}

impl OperatorLogic for PluginRunner {
    fn kind(&self) -> OperatorKind {
        self.module.kind()
    }

    fn name(&self) -> &str {
        &self.module.manifest().name
    }

    /// Calls `entry` with an encoded input. On a fault the caller dead-letters
    /// the input; the runner has already dropped a broken instance.
    fn call(&mut self, entry: Entry, input: &[u8]) -> Result<Outputs, PluginFault> {
        let result = self.instance()?.call(entry, input);
        self.fail_on_fault(result)
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, PluginFault> {
        if !self.module.has_snapshot() {
            return Ok(None);
        }
        let snapshot = self.instance()?.snapshot();
        self.fail_on_fault(snapshot).map(Some)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), PluginFault> {
        if !self.module.has_snapshot() {
            return Ok(());
        }
        let restored = self.instance()?.restore(snapshot);
        self.fail_on_fault(restored)
    }

    fn state_version(&self) -> u32 {
        self.module.manifest().state_version
    }

    fn version(&self) -> &str {
        &self.module.manifest().version
    }

    fn take_accumulators(&mut self) -> Vec<Vec<u8>> {
        self.instance
            .as_mut()
            .map(PluginInstance::take_accumulators)
            .unwrap_or_default()
    }

    /// The operator's state, wherever it is held right now.
    fn state_mut(&mut self) -> &mut OperatorState {
        if let Some(instance) = self.instance.as_mut() {
            return instance.state_mut();
        }
        self.parked.get_or_insert_with(OperatorState::in_memory)
    }
}

impl PluginRunner {
    /// Resets the backoff after a success; after a fault that broke the
    /// instance, drops it (keeping its state) and schedules a restart.
    fn fail_on_fault<T>(&mut self, result: Result<T, PluginFault>) -> Result<T, PluginFault> {
        match result {
            Ok(value) => {
                self.backoff = self.limits.restart_backoff;
                Ok(value)
            }
            Err(fault) => {
                if fault.needs_restart() {
                    if let Some(instance) = self.instance.take() {
                        self.parked = Some(instance.into_state());
                    }
                    self.schedule_restart(&fault);
                } else {
                    PluginFailed::new(&self.config.operator, &self.module, &fault, None).emit();
                }
                Err(fault)
            }
        }
    }

    /// The live instance, starting a fresh one if the backoff has passed.
    fn instance(&mut self) -> Result<&mut PluginInstance, PluginFault> {
        if self.instance.is_none() {
            if let Some(at) = self.restart_at {
                let now = Instant::now();
                if now < at {
                    return Err(PluginFault::Restarting(at - now));
                }
            }
            let state = self.parked.take().unwrap_or_else(OperatorState::in_memory);
            match PluginInstance::start(&self.engine, &self.module, &self.config, state) {
                Ok(instance) => {
                    PluginRestarted::new(&self.config.operator, &self.module).emit();
                    self.instance = Some(instance);
                    self.restart_at = None;
                }
                Err((fault, state)) => {
                    self.parked = Some(*state);
                    self.schedule_restart(&fault);
                    return Err(fault);
                }
            }
        }
        self.instance
            .as_mut()
            .ok_or_else(|| PluginFault::Start("no instance".into()))
    }

    fn schedule_restart(&mut self, fault: &PluginFault) {
        PluginFailed::new(
            &self.config.operator,
            &self.module,
            fault,
            Some(self.backoff),
        )
        .emit();
        self.restart_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(self.limits.max_restart_backoff);
    }
}
