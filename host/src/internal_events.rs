//! Operational events: each logs with structured fields and bumps its counter.

use std::time::Duration;

use metrics::counter;

use crate::plugin::{PluginFault, PluginModule};

/// A plugin call failed.
pub(crate) struct PluginFailed<'a> {
    operator: &'a str,
    plugin: &'a str,
    fault: &'a PluginFault,
    restart_in: Option<Duration>,
}

impl<'a> PluginFailed<'a> {
    pub(crate) fn new(
        operator: &'a str,
        module: &'a PluginModule,
        fault: &'a PluginFault,
        restart_in: Option<Duration>,
    ) -> Self {
        PluginFailed {
            operator,
            plugin: &module.manifest().name,
            fault,
            restart_in,
        }
    }

    pub(crate) fn emit(self) {
        match self.restart_in {
            Some(backoff) => tracing::warn!(
                operator = self.operator,
                plugin = self.plugin,
                restart_in_ms = backoff.as_millis() as u64,
                "plugin {}; batch dead-lettered, instance dropped",
                self.fault
            ),
            None => tracing::warn!(
                operator = self.operator,
                plugin = self.plugin,
                "plugin {}; batch dead-lettered",
                self.fault
            ),
        }
        counter!("eddy_plugin_failures_total", "operator" => self.operator.to_owned()).increment(1);
    }
}

/// A checkpoint was committed.
pub(crate) struct CheckpointTaken<'a> {
    pub(crate) pipeline: &'a str,
    pub(crate) id: u64,
    pub(crate) bytes: usize,
    pub(crate) took: Duration,
}

impl CheckpointTaken<'_> {
    pub(crate) fn emit(self) {
        tracing::debug!(
            pipeline = self.pipeline,
            checkpoint = self.id,
            bytes = self.bytes,
            took_ms = self.took.as_secs_f64() * 1e3,
            "checkpoint committed"
        );
        counter!("eddy_checkpoints_total", "pipeline" => self.pipeline.to_owned()).increment(1);
        metrics::histogram!("eddy_checkpoint_seconds", "pipeline" => self.pipeline.to_owned())
            .record(self.took.as_secs_f64());
    }
}

/// A fresh plugin instance started after a failure.
pub(crate) struct PluginRestarted<'a> {
    operator: &'a str,
    plugin: &'a str,
}

impl<'a> PluginRestarted<'a> {
    pub(crate) fn new(operator: &'a str, module: &'a PluginModule) -> Self {
        PluginRestarted {
            operator,
            plugin: &module.manifest().name,
        }
    }

    pub(crate) fn emit(self) {
        tracing::info!(
            operator = self.operator,
            plugin = self.plugin,
            "plugin restarted in a fresh instance"
        );
        counter!("eddy_plugin_restarts_total", "operator" => self.operator.to_owned()).increment(1);
    }
}

/// Records went to the dead-letter log.
pub(crate) struct DeadLettered<'a> {
    pub(crate) node: &'a str,
    pub(crate) records: usize,
}

impl DeadLettered<'_> {
    pub(crate) fn emit(self) {
        counter!("eddy_dead_letter_records_total", "node" => self.node.to_owned())
            .increment(self.records as u64);
    }
}

/// Records arrived after their window had fired.
pub(crate) struct LateRecords<'a> {
    pub(crate) operator: &'a str,
    pub(crate) records: usize,
}

impl LateRecords<'_> {
    pub(crate) fn emit(self) {
        tracing::debug!(
            operator = self.operator,
            records = self.records,
            "late records sent to the late output"
        );
        counter!("eddy_late_records_total", "operator" => self.operator.to_owned())
            .increment(self.records as u64);
    }
}
