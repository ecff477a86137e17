//! One-operator graphs: what `eddy plugin test` runs, and what benchmarks measure.

use std::path::PathBuf;
use std::sync::Arc;

use eddy_abi::{LATE_OUTPUT, Record};
use eddy_driver::Driver;

use super::graph::{Graph, OperatorSlot, Route, SinkNode, SourceNode};
use super::operator::OperatorNode;
use super::watermark::BoundedOutOfOrderness;
use super::window::Windowing;
use crate::config::WindowConfig;
use crate::config::{CheckpointConfig, JournalMode, RetryConfig, StateVersionMismatch};
use crate::io::{Backoff, Health, Role, SinkPort};
use crate::plugin::{OperatorLogic, PluginEngine, PluginLimits, PluginModule, PluginRunner};
use crate::sinks::{DeadLetter, Sink};
use crate::sources::RecordsDriver;
use crate::state::OperatorState;

/// How a plugin is run by itself.
#[derive(Debug, Clone)]
pub struct Harness {
    /// The params, as the pipeline file's `params` table would give them.
    pub params: serde_json::Value,
    /// The windows of a window plugin.
    pub window: Option<WindowConfig>,
    /// Allowed lateness of event-time windows, in ms.
    pub allowed_lateness_ms: u64,
    /// A field to key by.
    pub key_by: Option<String>,
    /// Out-of-orderness bound of the input, in ms.
    pub bounded_out_of_orderness_ms: u64,
    /// Records per plugin call.
    pub batch_size: usize,
    /// Plugin limits.
    pub limits: PluginLimits,
    /// Where failed batches go.
    pub dead_letter_path: PathBuf,
}

impl Graph {
    /// A graph that feeds `records` (then end of input) to the plugin and
    /// writes its main output, declared side outputs and late records to `sink`.
    pub fn single_plugin(
        engine: &PluginEngine,
        module: PluginModule,
        records: Vec<Record>,
        sink: Box<dyn Sink>,
        harness: &Harness,
    ) -> Result<Graph, String> {
        let side_outputs = module.manifest().capabilities.side_outputs.clone();
        let name = module.manifest().name.clone();
        let runner = PluginRunner::start(
            engine,
            Arc::new(module),
            &name,
            &harness.params,
            harness.limits.clone(),
            OperatorState::in_memory(),
        )
        .map_err(|e| format!("plugin `{name}` {e}"))?;
        let driver = Box::new(RecordsDriver::new(records));
        Self::single_operator(Box::new(runner), &side_outputs, driver, sink, harness)
    }

    /// A graph of one source, one operator and one sink that takes the
    /// operator's main output, `side_outputs`, and (for windows) late records.
    pub fn single_operator(
        logic: Box<dyn OperatorLogic>,
        side_outputs: &[String],
        driver: Box<dyn Driver>,
        sink: Box<dyn Sink>,
        harness: &Harness,
    ) -> Result<Graph, String> {
        let window = match (logic.kind(), &harness.window) {
            (kind, Some(config)) if kind.windowed() => Some(Windowing::new(
                config,
                harness.allowed_lateness_ms,
                kind == eddy_abi::OperatorKind::Aggregate,
            )?),
            (kind, None) if kind.windowed() => {
                return Err(format!(
                    "plugin `{}` is a window plugin: give it a window (e.g. --window-ms)",
                    logic.name()
                ));
            }
            _ => None,
        };
        let mut outputs = vec![String::new()];
        outputs.extend(side_outputs.iter().cloned());
        if window.is_some() {
            outputs.push(LATE_OUTPUT.to_owned());
        }
        let name = logic.name().to_owned();
        let node = OperatorNode::new(
            &name,
            logic,
            1,
            harness.key_by.as_deref(),
            window,
            harness.batch_size,
        );
        Ok(Graph {
            services: None,
            name: format!("test-{name}"),
            sources: vec![SourceNode {
                name: "input".into(),
                settings: None,
                at: None,
                driver: Some(driver),
                polled: true,
                health: Health::new("input", Role::Source, "records"),
                up: false,
                retry: RetryConfig::default(),
                backoff: Backoff::new(RetryConfig::default()),
                watermark: BoundedOutOfOrderness::new(harness.bounded_out_of_orderness_ms),
                routes: vec![Route::Operator { index: 0, input: 0 }],
                ended: false,
                wait_until: None,
                idle_timeout: None,
                last_records: std::time::Instant::now(),
                idle: false,
                records_out: 0,
                journal: JournalMode::Off,
            }],
            operators: vec![OperatorSlot {
                node,
                routes: outputs
                    .into_iter()
                    .map(|o| (o, vec![Route::Sink { index: 0 }]))
                    .collect(),
                unrouted_warned: Vec::new(),
                idle: false,
                sent_watermark: i64::MIN,
                state_version_mismatch: StateVersionMismatch::Refuse,
            }],
            sinks: vec![SinkNode {
                name: "output".into(),
                settings: None,
                at: None,
                port: Some(SinkPort::direct("output", sink)),
                inbox: Vec::new(),
            }],
            dead_letter: DeadLetter::new(&format!("test-{name}"), &harness.dead_letter_path),
            batch_size: harness.batch_size.max(1),
            linger: std::time::Duration::ZERO,
            checkpoint: CheckpointConfig {
                enabled: false,
                ..CheckpointConfig::default()
            },
            durability: None,
            requests: None,
            pending_swaps: Vec::new(),
            loader: None,
            doorbell: eddy_driver::Doorbell::new(),
            base_dir: ".".into(),
            dead: Vec::new(),
            closed: None,
            shutdown_timeout: std::time::Duration::from_secs(5),
            kept: None,
        })
    }
}
