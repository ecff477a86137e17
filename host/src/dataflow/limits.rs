//! The `[plugins]` limits, and an operator's overrides, as the plugin host takes them.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{OperatorConfig, PipelineConfig, PluginDefaults};
use crate::plugin::{CompileLimits, PluginCaps, PluginEngine, PluginLimits, QuarantinePolicy};

/// A setting in bytes or counts as a `usize` (saturating on 32-bit hosts).
fn size(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// What `op` may make the host hold.
pub(crate) fn caps(defaults: &PluginDefaults, op: &OperatorConfig) -> PluginCaps {
    PluginCaps {
        state_bytes: size(op.state_limit_bytes.unwrap_or(defaults.state_limit_bytes)),
        state_keys: size(op.state_limit_keys.unwrap_or(defaults.state_limit_keys)),
        timers: size(op.timer_limit.unwrap_or(defaults.timer_limit)),
        emit_records: size(op.emit_limit_records.unwrap_or(defaults.emit_limit_records)),
        output_bytes: size(op.output_limit_bytes.unwrap_or(defaults.output_limit_bytes)),
        table_elements: size(
            op.table_limit_elements
                .unwrap_or(defaults.table_limit_elements),
        ),
    }
}

/// The resources and restart policy of `op`'s plugin.
pub(crate) fn plugin_limits(defaults: &PluginDefaults, op: &OperatorConfig) -> PluginLimits {
    PluginLimits {
        deadline: Duration::from_millis(op.deadline_ms.unwrap_or(defaults.deadline_ms)),
        memory_bytes: size(op.memory_limit_bytes.unwrap_or(defaults.memory_limit_bytes)),
        caps: caps(defaults, op),
        restart_backoff: Duration::from_millis(defaults.restart_backoff_ms),
        max_restart_backoff: Duration::from_millis(defaults.max_restart_backoff_ms),
        quarantine: QuarantinePolicy {
            failures: defaults.quarantine_failures,
            window: Duration::from_millis(defaults.quarantine_window_ms),
        },
        probation_calls: defaults.probation_calls,
        grants: op.grants.as_ref().map(|g| g.get_ref().clone()),
    }
}

/// How `op`'s plugin is compiled; with no operator, the `[plugins]` defaults.
pub(crate) fn compile_limits(
    defaults: &PluginDefaults,
    op: Option<&OperatorConfig>,
) -> CompileLimits {
    let pick = |own: Option<u64>, default: u64| own.unwrap_or(default);
    CompileLimits {
        module_bytes: size(pick(
            op.and_then(|o| o.module_limit_bytes),
            defaults.module_limit_bytes,
        )),
        function_bytes: size(pick(
            op.and_then(|o| o.function_limit_bytes),
            defaults.function_limit_bytes,
        )),
        timeout: Duration::from_millis(pick(
            op.and_then(|o| o.compile_timeout_ms),
            defaults.compile_timeout_ms,
        )),
        memory_bytes: pick(
            op.and_then(|o| o.compile_memory_limit_bytes),
            defaults.compile_memory_limit_bytes,
        ),
    }
}

/// The compile limits of every operator.
pub(crate) fn compile_limits_by_operator(
    config: &PipelineConfig,
) -> BTreeMap<String, CompileLimits> {
    config
        .operators
        .iter()
        .map(|(name, op)| {
            (
                name.clone(),
                compile_limits(&config.plugins, Some(op.get_ref())),
            )
        })
        .collect()
}

/// The plugin engine for a pipeline, sized for its operators.
pub(crate) fn engine(config: &PipelineConfig) -> wasmtime::Result<PluginEngine> {
    let defaults = &config.plugins;
    // Each operator has one instance, two while a swapped-in version is on probation.
    let instances = 2 * config.operators.len() as u32 + 2;
    let most = |own: fn(&OperatorConfig) -> Option<u64>, default: u64| {
        config
            .operators
            .values()
            .map(|o| own(o.get_ref()).unwrap_or(default))
            .max()
            .unwrap_or(default)
    };
    let max_memory = most(|o| o.memory_limit_bytes, defaults.memory_limit_bytes);
    let max_table = most(|o| o.table_limit_elements, defaults.table_limit_elements);
    PluginEngine::for_instances(
        instances,
        size(max_memory),
        size(max_table),
        defaults.allocation,
    )
}
