//! Operational events: each logs with structured fields and bumps its counter.

use std::time::Duration;

use metrics::counter;

use crate::plugin::{PluginFault, PluginModule, SwapReport};

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
    /// How long the pipeline waited for it: the sinks' commits and the
    /// snapshot of the operators' state.
    pub(crate) stall: Duration,
    /// Encoding the operators' state and writing it to its file (not
    /// synced yet), off the pipeline thread.
    pub(crate) encode: Duration,
    /// From its start until it was durable.
    pub(crate) took: Duration,
}

impl CheckpointTaken<'_> {
    pub(crate) fn emit(self) {
        tracing::debug!(
            pipeline = self.pipeline,
            checkpoint = self.id,
            bytes = self.bytes,
            stall_ms = self.stall.as_secs_f64() * 1e3,
            encode_ms = self.encode.as_secs_f64() * 1e3,
            took_ms = self.took.as_secs_f64() * 1e3,
            "checkpoint committed"
        );
        counter!("eddy_checkpoints_total", "pipeline" => self.pipeline.to_owned()).increment(1);
        metrics::histogram!("eddy_checkpoint_seconds", "pipeline" => self.pipeline.to_owned())
            .record(self.took.as_secs_f64());
        metrics::histogram!("eddy_checkpoint_stall_seconds", "pipeline" => self.pipeline.to_owned())
            .record(self.stall.as_secs_f64());
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

/// Dead letters were left out of a full dead-letter log.
pub(crate) struct DeadLettersUnwritten<'a> {
    pub(crate) pipeline: &'a str,
    pub(crate) records: u64,
}

impl DeadLettersUnwritten<'_> {
    pub(crate) fn emit(self) {
        counter!("eddy_dead_letters_unwritten_total", "pipeline" => self.pipeline.to_owned())
            .increment(self.records);
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

/// A plugin kept failing and was quarantined.
pub(crate) struct PluginQuarantined<'a> {
    operator: &'a str,
    plugin: &'a str,
    reason: &'a str,
}

impl<'a> PluginQuarantined<'a> {
    pub(crate) fn new(operator: &'a str, module: &'a PluginModule, reason: &'a str) -> Self {
        PluginQuarantined {
            operator,
            plugin: &module.manifest().name,
            reason,
        }
    }

    pub(crate) fn emit(self) {
        tracing::error!(
            operator = self.operator,
            plugin = self.plugin,
            "plugin {}; its input goes to the dead-letter log",
            self.reason
        );
        counter!("eddy_plugin_quarantines_total", "operator" => self.operator.to_owned())
            .increment(1);
    }
}

/// A swapped-in plugin version was kept, or rolled back.
pub(crate) enum PluginSwapped<'a> {
    Kept {
        operator: &'a str,
        plugin: &'a str,
        report: &'a SwapReport,
    },
    RolledBack {
        operator: &'a str,
        plugin: &'a str,
        version: &'a str,
        fault: &'a PluginFault,
    },
}

impl<'a> PluginSwapped<'a> {
    pub(crate) fn kept(
        operator: &'a str,
        module: &'a PluginModule,
        report: &'a SwapReport,
    ) -> Self {
        PluginSwapped::Kept {
            operator,
            plugin: &module.manifest().name,
            report,
        }
    }

    pub(crate) fn rolled_back(
        operator: &'a str,
        failed: &'a PluginModule,
        fault: &'a PluginFault,
    ) -> Self {
        PluginSwapped::RolledBack {
            operator,
            plugin: &failed.manifest().name,
            version: &failed.manifest().version,
            fault,
        }
    }

    pub(crate) fn emit(self) {
        match self {
            PluginSwapped::Kept {
                operator,
                plugin,
                report,
            } => {
                tracing::info!(
                    operator,
                    plugin,
                    from = %report.from,
                    to = %report.to,
                    pause_ms = report.pause.as_secs_f64() * 1e3,
                    "swapped plugin version passed its probation"
                );
                counter!("eddy_plugin_swaps_total", "operator" => operator.to_owned()).increment(1);
                metrics::histogram!("eddy_plugin_swap_pause_seconds", "operator" => operator.to_owned())
                    .record(report.pause.as_secs_f64());
            }
            PluginSwapped::RolledBack {
                operator,
                plugin,
                version,
                fault,
            } => {
                tracing::warn!(
                    operator,
                    plugin,
                    version,
                    "swapped plugin version {fault} on probation; rolled back to the previous version"
                );
                counter!("eddy_plugin_rollbacks_total", "operator" => operator.to_owned())
                    .increment(1);
            }
        }
    }
}

/// A source or sink works (again).
pub(crate) struct ComponentUp<'a> {
    pub(crate) component: &'a str,
    pub(crate) role: crate::io::Role,
    pub(crate) kind: &'a str,
    /// Whether it was down before.
    pub(crate) recovered: bool,
}

impl ComponentUp<'_> {
    pub(crate) fn emit(self) {
        if self.recovered {
            tracing::info!(
                component = self.component,
                role = self.role.as_str(),
                kind = self.kind,
                "{} `{}` is up again",
                self.role.as_str(),
                self.component
            );
        }
        metrics::gauge!("eddy_component_up", "component" => self.component.to_owned(), "role" => self.role.as_str())
            .set(1.0);
    }
}

/// A source or sink failed.
pub(crate) struct ComponentDown<'a> {
    pub(crate) component: &'a str,
    pub(crate) role: crate::io::Role,
    pub(crate) kind: &'a str,
    pub(crate) error: &'a str,
    pub(crate) transient: bool,
    pub(crate) retry_in: Duration,
    /// Whether it was up (or otherwise) before: the first failure of a run of them.
    pub(crate) first: bool,
}

impl ComponentDown<'_> {
    pub(crate) fn emit(self) {
        let retry_in_ms = self.retry_in.as_millis() as u64;
        let role = self.role.as_str();
        match (self.transient, self.first) {
            (true, true) => tracing::warn!(
                component = self.component,
                role,
                kind = self.kind,
                retry_in_ms,
                "{role} `{}`: {}; retrying",
                self.component,
                self.error
            ),
            (true, false) => tracing::debug!(
                component = self.component,
                role,
                retry_in_ms,
                "{role} `{}` still down: {}",
                self.component,
                self.error
            ),
            (false, _) => tracing::error!(
                component = self.component,
                role,
                kind = self.kind,
                retry_in_ms,
                "{role} `{}` failed: {}; trying again in {retry_in_ms} ms",
                self.component,
                self.error
            ),
        }
        counter!("eddy_component_errors_total", "component" => self.component.to_owned(), "role" => role)
            .increment(1);
        metrics::gauge!("eddy_component_up", "component" => self.component.to_owned(), "role" => role)
            .set(0.0);
    }
}

/// A source or sink tries its peer again.
pub(crate) struct ComponentRetried<'a> {
    pub(crate) component: &'a str,
    pub(crate) role: crate::io::Role,
}

impl ComponentRetried<'_> {
    pub(crate) fn emit(self) {
        counter!("eddy_component_retries_total", "component" => self.component.to_owned(), "role" => self.role.as_str())
            .increment(1);
    }
}

/// A source polled one of its devices.
pub(crate) struct DevicePolled<'a> {
    pub(crate) component: &'a str,
    pub(crate) device: &'a str,
    /// Why the poll gave no record.
    pub(crate) fault: Option<&'a str>,
    /// Whether the device went from up to fault or back.
    pub(crate) changed: bool,
}

impl DevicePolled<'_> {
    pub(crate) fn emit(self) {
        let labels = [
            ("component", self.component.to_owned()),
            ("device", self.device.to_owned()),
        ];
        counter!("eddy_device_polls_total", &labels).increment(1);
        match self.fault {
            Some(fault) => {
                if self.changed {
                    tracing::warn!(
                        component = self.component,
                        device = self.device,
                        "source `{}`: device `{}` in fault: {fault}",
                        self.component,
                        self.device
                    );
                } else {
                    tracing::debug!(
                        component = self.component,
                        device = self.device,
                        "source `{}`: device `{}` still in fault: {fault}",
                        self.component,
                        self.device
                    );
                }
                counter!("eddy_device_faults_total", &labels).increment(1);
                metrics::gauge!("eddy_device_up", &labels).set(0.0);
            }
            None => {
                if self.changed {
                    tracing::info!(
                        component = self.component,
                        device = self.device,
                        "source `{}`: device `{}` answers again",
                        self.component,
                        self.device
                    );
                }
                metrics::gauge!("eddy_device_up", &labels).set(1.0);
            }
        }
    }
}

/// A sink's buffer was full and its policy dropped records.
pub(crate) struct SinkDropped<'a> {
    pub(crate) sink: &'a str,
    pub(crate) policy: &'static str,
    pub(crate) records: u64,
    /// Dropped so far by this sink, this one included.
    pub(crate) total: u64,
}

impl SinkDropped<'_> {
    pub(crate) fn emit(self) {
        // Once per power of two, so a long outage does not flood the log.
        if (self.total - self.records + 1..=self.total).any(u64::is_power_of_two) {
            tracing::warn!(
                sink = self.sink,
                policy = self.policy,
                dropped_total = self.total,
                "sink `{}`: buffer full, {} record(s) dropped ({} so far)",
                self.sink,
                self.records,
                self.total
            );
        }
        counter!("eddy_sink_dropped_records_total", "sink" => self.sink.to_owned(), "policy" => self.policy)
            .increment(self.records);
    }
}

/// Records a sink holds, waiting for its peer.
pub(crate) struct SinkHeld<'a> {
    pub(crate) sink: &'a str,
    pub(crate) records: usize,
}

impl SinkHeld<'_> {
    pub(crate) fn emit(self) {
        metrics::gauge!("eddy_sink_buffered_records", "sink" => self.sink.to_owned())
            .set(self.records as f64);
    }
}

/// What a broker sink's durable outbox holds and has dropped.
pub(crate) struct OutboxHeld<'a> {
    pub(crate) sink: &'a str,
    pub(crate) counters: crate::io::sink::OutboxCounters,
}

impl OutboxHeld<'_> {
    pub(crate) fn emit(self) {
        let sink = self.sink.to_owned();
        let c = self.counters;
        metrics::gauge!("eddy_outbox_bytes", "sink" => sink.clone()).set(c.bytes as f64);
        metrics::gauge!("eddy_outbox_entries", "sink" => sink.clone()).set(c.entries as f64);
        let age = c
            .oldest_ms
            .map_or(0.0, |t| (eddy_codec::now_ms() - t).max(0) as f64 / 1000.0);
        metrics::gauge!("eddy_outbox_oldest_age_seconds", "sink" => sink.clone()).set(age);
        metrics::gauge!("eddy_outbox_dropped", "sink" => sink.clone(), "why" => "full")
            .set(c.dropped as f64);
        metrics::gauge!("eddy_outbox_dropped", "sink" => sink, "why" => "expired")
            .set(c.expired as f64);
    }
}

/// Records moved through a source or a sink.
pub(crate) struct ComponentRecords<'a> {
    pub(crate) component: &'a str,
    pub(crate) role: crate::io::Role,
    pub(crate) records: u64,
}

impl ComponentRecords<'_> {
    pub(crate) fn emit(self) {
        if self.records > 0 {
            counter!("eddy_component_records_total", "component" => self.component.to_owned(), "role" => self.role.as_str())
                .increment(self.records);
        }
    }
}
