//! Turning a pipeline file into a [`Graph`]: names resolved, plugins loaded,
//! operators in topological order. Every error points into the file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eddy_abi::OperatorKind;
use toml::Spanned;

use super::graph::{
    Graph, OperatorSlot, Route, Routes, RunError, SinkNode, SinkSettings, SourceNode,
};
use super::operator::OperatorNode;
use super::watermark::BoundedOutOfOrderness;
use super::window::Windowing;
use crate::config::{
    ConfigError, JournalMode, LoadedPipeline, Location, OperatorConfig, RetryConfig,
};
use crate::io::sink::OutboxPlace;
use crate::io::{Backoff, Health, IoContext, Role, SinkPort};
use crate::plugin::signing::TrustedKeys;
use crate::plugin::{Loader, PluginRunner, SwappedPlugins};
use crate::sinks::DeadLetter;
use crate::state::OperatorState;

/// Why a pipeline cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The file says something that cannot work; the error names the place.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The WebAssembly engine could not start with the `[plugins]` limits
    /// (at `location`) on this host.
    #[error("{location}: cannot start the WebAssembly engine: {error:#}")]
    Engine {
        /// The `[plugins]` table, or the file's start without one.
        location: Location,
        /// Why.
        error: wasmtime::Error,
    },
}

/// An input reference: `node` or `node.output`.
struct InputRef<'a> {
    node: &'a str,
    output: &'a str,
}

fn parse_input(input: &str) -> InputRef<'_> {
    match input.split_once('.') {
        Some((node, output)) => InputRef { node, output },
        None => InputRef {
            node: input,
            output: "",
        },
    }
}

impl Graph {
    /// Builds a graph from a loaded pipeline file, with a new plugin engine.
    pub fn build(pipeline: &LoadedPipeline) -> Result<Graph, BuildError> {
        Self::build_with_swapped(pipeline, None)
    }

    /// Builds a graph, running the plugin versions `swapped` keeps (swapped
    /// in at run time before) where the file has not changed since.
    pub fn build_with_swapped(
        pipeline: &LoadedPipeline,
        swapped: Option<&SwappedPlugins>,
    ) -> Result<Graph, BuildError> {
        let config = &pipeline.config;
        // The engine is sized by the `[plugins]` limits: a failure is theirs.
        let engine = super::limits::engine(config).map_err(|error| BuildError::Engine {
            location: Location::of(
                &pipeline.path,
                &pipeline.text,
                pipeline.text.find("[plugins]").unwrap_or(0),
            ),
            error,
        })?;
        let loader = Loader::new(engine, trusted_keys(pipeline)?).with_limits(
            super::limits::compile_limits(&config.plugins, None),
            super::limits::compile_limits_by_operator(config),
        );
        let name = pipeline.name();
        if config.sources.is_empty() {
            return Err(pipeline
                .error_at(0, "a pipeline needs at least one [sources.NAME]")
                .into());
        }
        check_names(pipeline)?;
        if config.twin.is_none()
            && let Some(sink) = config
                .sinks
                .values()
                .find(|s| s.get_ref().kind.kind == "twin")
        {
            return Err(pipeline
                .error_at(
                    sink.get_ref().kind.span.start,
                    "a twin sink reports on device twins: the pipeline needs a [twin] table",
                )
                .into());
        }
        // Shared broker connections: checked here, connected when first used.
        #[cfg_attr(not(feature = "mqtt"), allow(unused_mut))]
        let mut services = eddy_driver::Services::new();
        #[cfg(feature = "mqtt")]
        services.insert(shared_brokers(pipeline)?);
        if let Some(twin) = &config.twin {
            twin.get_ref()
                .validate(&pipeline.base_dir(), &services)
                .map_err(|e| located(pipeline, &twin.span(), e, "[twin]".into()))?;
        }
        let order = topological_order(pipeline)?;
        let position: BTreeMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let batch_size = config.pipeline.batch_size.max(1);

        let mut operators = Vec::new();
        let mut side_outputs = BTreeMap::new();
        for op_name in &order {
            let op = &config.operators[op_name];
            let (node, outputs) = operator(pipeline, &loader, swapped, op_name, op, batch_size)?;
            side_outputs.insert(op_name.as_str(), outputs);
            operators.push(OperatorSlot {
                node,
                routes: Routes::new(),
                unrouted_warned: Vec::new(),
                idle: false,
                sent_watermark: i64::MIN,
                state_version_mismatch: op.get_ref().state_version_mismatch,
            });
        }
        check_side_outputs(pipeline, &side_outputs)?;
        let base_dir = pipeline
            .path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let mut sources_out = Vec::new();
        for (source_name, source) in &config.sources {
            let table = source.get_ref();
            let kind = &table.kind;
            kind.settings
                .validate(&eddy_driver::Context {
                    pipeline: &name,
                    name: source_name,
                    base_dir: &base_dir,
                    services: &services,
                    watermarks: eddy_driver::Watermarks {
                        bounded_out_of_orderness_ms: table.bounded_out_of_orderness_ms,
                        idle_timeout_ms: table.idle_timeout_ms,
                    },
                })
                .map_err(|e| located(pipeline, &kind.span, e, format!("source `{source_name}`")))?;
            check_retry(pipeline, source.span(), &table.retry)?;
            // Sources that can rewind need no journal unless asked for one.
            let journal = table.journal.unwrap_or(if kind.settings.rewindable() {
                JournalMode::Off
            } else {
                JournalMode::Buffered
            });
            sources_out.push(SourceNode {
                name: source_name.as_str().into(),
                settings: Some(kind.settings.clone()),
                at: Some(Location::of(
                    &pipeline.path,
                    &pipeline.text,
                    kind.span.start,
                )),
                driver: None,
                polled: true,
                health: Health::new(source_name, Role::Source, kind.kind),
                up: false,
                retry: table.retry,
                backoff: Backoff::new(table.retry),
                watermark: BoundedOutOfOrderness::new(table.bounded_out_of_orderness_ms),
                routes: Vec::new(),
                ended: false,
                wait_until: None,
                idle_timeout: table.idle_timeout_ms.map(Duration::from_millis),
                last_records: std::time::Instant::now(),
                idle: false,
                records_out: 0,
                journal,
            });
        }
        let mut sinks_out = Vec::new();
        for (sink_name, sink) in &config.sinks {
            let table = sink.get_ref();
            let kind = &table.kind;
            kind.settings
                .validate(&eddy_driver::Context {
                    pipeline: &name,
                    name: sink_name,
                    base_dir: &base_dir,
                    services: &services,
                    watermarks: eddy_driver::Watermarks::default(),
                })
                .map_err(|e| located(pipeline, &kind.span, e, format!("sink `{sink_name}`")))?;
            check_retry(pipeline, sink.span(), &table.retry)?;
            if table.buffer.max_records == 0 {
                return Err(pipeline
                    .error_at(
                        sink.span().start,
                        format!("sink `{sink_name}`: buffer.max_records must be at least 1"),
                    )
                    .into());
            }
            check_outbox(pipeline, sink_name, sink, &table.outbox)?;
            sinks_out.push(SinkNode {
                name: sink_name.as_str().into(),
                settings: Some(SinkSettings {
                    kind: kind.kind,
                    config: kind.settings.clone(),
                    buffer: table.buffer,
                    outbox: table.outbox.clone(),
                    retry: table.retry,
                }),
                at: Some(Location::of(
                    &pipeline.path,
                    &pipeline.text,
                    kind.span.start,
                )),
                port: None,
                inbox: Vec::new(),
            });
        }

        // Wire every input to the output it names.
        let source_index: BTreeMap<&str, usize> = config
            .sources
            .keys()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let add_route = |input: &str,
                         route: Route,
                         sources: &mut Vec<SourceNode>,
                         ops: &mut Vec<OperatorSlot>| {
            let r = parse_input(input);
            if let Some(&i) = source_index.get(r.node) {
                sources[i].routes.push(route);
            } else if let Some(&i) = position.get(r.node) {
                add_to(&mut ops[i].routes, r.output, route);
            }
        };
        for (index, op_name) in order.iter().enumerate() {
            for (input, reference) in config.operators[op_name]
                .get_ref()
                .inputs
                .iter()
                .enumerate()
            {
                add_route(
                    reference.get_ref(),
                    Route::Operator { index, input },
                    &mut sources_out,
                    &mut operators,
                );
            }
        }
        for (index, sink) in config.sinks.values().enumerate() {
            for reference in &sink.get_ref().inputs {
                add_route(
                    reference.get_ref(),
                    Route::Sink { index },
                    &mut sources_out,
                    &mut operators,
                );
            }
        }

        Ok(Graph {
            services: Some(services),
            dead_letter: DeadLetter::new(
                &name,
                &pipeline.resolve(&config.pipeline.dead_letter_path),
            )
            .with_limit(
                (config.pipeline.dead_letter_max_mib > 0)
                    .then(|| config.pipeline.dead_letter_max_mib.saturating_mul(1 << 20)),
            ),
            doorbell: eddy_driver::Doorbell::new(),
            base_dir,
            dead: Vec::new(),
            closed: None,
            shutdown_timeout: Duration::from_millis(config.pipeline.shutdown_timeout_ms),
            kept: None,
            name,
            sources: sources_out,
            operators,
            sinks: sinks_out,
            batch_size,
            linger: Duration::from_millis(config.pipeline.linger_ms),
            checkpoint: config.checkpoint,
            durability: None,
            requests: None,
            pending_swaps: Vec::new(),
            loader: Some(loader),
        })
    }
}

impl Graph {
    /// Hands `service` to the sources and sinks that ask for its type
    /// when they open (the device twin's writes and reports).
    pub fn provide<T: std::any::Any + Send + Sync>(&mut self, service: std::sync::Arc<T>) {
        self.services
            .get_or_insert_with(eddy_driver::Services::new)
            .insert(service);
    }

    /// The service of type `T` handed to sources and sinks, if there is
    /// one (before [`Graph::open`] hands them over).
    pub fn service<T: std::any::Any + Send + Sync>(&self) -> Option<std::sync::Arc<T>> {
        self.services.as_ref()?.get::<T>()
    }

    /// Opens every source and sink: polled drivers open their files,
    /// tasks start on `runtime` at their first poll (so an unreachable peer
    /// is not an error here, but a `retrying` component). Settings that
    /// cannot work are an error naming the component and its place in the file.
    pub fn open(
        &mut self,
        runtime: Option<&tokio::runtime::Handle>,
        store: Option<&crate::checkpoint::StateStore>,
    ) -> Result<(), RunError> {
        let io = runtime.map(|runtime| IoContext {
            runtime: runtime.clone(),
            doorbell: self.doorbell.clone(),
        });
        let mut services = self.services.take().unwrap_or_default();
        services.insert(std::sync::Arc::new(self.dead_letter.clone()));
        let at = |at: &Option<Location>| at.as_ref().map_or(String::new(), |l| format!("{l}: "));
        for source in &mut self.sources {
            let Some(settings) = source.settings.take() else {
                continue;
            };
            let cx = eddy_driver::Context {
                pipeline: &self.name,
                name: &source.name,
                base_dir: &self.base_dir,
                services: &services,
                watermarks: eddy_driver::Watermarks {
                    bounded_out_of_orderness_ms: source.watermark.bound_ms(),
                    idle_timeout_ms: source.idle_timeout.map(|t| t.as_millis() as u64),
                },
            };
            let opened = crate::io::source::open(
                settings.as_ref(),
                &cx,
                io.as_ref(),
                &source.health,
                source.retry,
            );
            match opened {
                Ok((driver, polled)) => {
                    source.polled = polled;
                    source.driver = Some(driver);
                }
                Err(e) => {
                    return Err(RunError::Open(format!(
                        "{}source `{}`: {e}",
                        at(&source.at),
                        source.name
                    )));
                }
            }
        }
        for sink in &mut self.sinks {
            let Some(settings) = sink.settings.take() else {
                continue;
            };
            let cx = eddy_driver::Context {
                pipeline: &self.name,
                name: &sink.name,
                base_dir: &self.base_dir,
                services: &services,
                watermarks: eddy_driver::Watermarks::default(),
            };
            let health = Health::new(&sink.name, Role::Sink, settings.kind);
            let outbox = store.map(|store| OutboxPlace {
                store,
                pipeline: &self.name,
                config: settings.outbox.clone(),
                exactly_once: self.checkpoint.enabled,
            });
            let port = settings.config.open(&cx).and_then(|opened| {
                SinkPort::new(
                    &sink.name,
                    opened,
                    health,
                    settings.buffer,
                    settings.retry,
                    io.as_ref(),
                    outbox,
                )
            });
            match port {
                Ok(port) => sink.port = Some(port),
                Err(e) => {
                    return Err(RunError::Open(format!(
                        "{}sink `{}`: {e}",
                        at(&sink.at),
                        sink.name
                    )));
                }
            }
        }
        Ok(())
    }
}

/// An outbox that cannot work: no room at all, or a priority for an input
/// the sink does not take.
fn check_outbox(
    pipeline: &LoadedPipeline,
    sink_name: &str,
    sink: &Spanned<crate::config::SinkTable>,
    outbox: &crate::config::OutboxConfig,
) -> Result<(), BuildError> {
    let refuse = |message: String| -> Result<(), BuildError> {
        Err(pipeline
            .error_at(sink.span().start, format!("sink `{sink_name}`: {message}"))
            .into())
    };
    if outbox.max_bytes < 4096 {
        return refuse("outbox.max_bytes must be at least 4096".into());
    }
    let inputs = &sink.get_ref().inputs;
    for priority in &outbox.priorities {
        if !inputs.iter().any(|i| i.get_ref() == priority) {
            return refuse(format!(
                "outbox.priorities names `{priority}`, which is not one of its inputs"
            ));
        }
    }
    Ok(())
}

/// The pipeline's `[brokers.NAME]` tables, checked, as the service the
/// components that name them share.
#[cfg(feature = "mqtt")]
fn shared_brokers(
    pipeline: &LoadedPipeline,
) -> Result<std::sync::Arc<eddy_driver_mqtt::SharedBrokers>, ConfigError> {
    let mut brokers = eddy_driver_mqtt::SharedBrokers::new();
    for (name, broker) in &pipeline.config.brokers {
        brokers
            .add(name, broker.get_ref(), &pipeline.base_dir())
            .map_err(|e| located(pipeline, &broker.span(), e, format!("[brokers.{name}]")))?;
    }
    Ok(std::sync::Arc::new(brokers))
}

/// A component's validation error, at the setting it names or its kind table.
fn located(
    pipeline: &LoadedPipeline,
    table: &std::ops::Range<usize>,
    e: eddy_driver::Invalid,
    what: String,
) -> ConfigError {
    let at = e.span.as_ref().map_or(table.start, |s| s.start);
    pipeline.error_at(at, format!("{what}: {}", e.message))
}

/// Backoff settings that can work.
fn check_retry(
    pipeline: &LoadedPipeline,
    table: std::ops::Range<usize>,
    retry: &RetryConfig,
) -> Result<(), ConfigError> {
    if retry.initial_backoff_ms == 0 || retry.max_backoff_ms == 0 {
        return Err(pipeline.error_at(
            table.start,
            "retry_initial_backoff_ms and retry_max_backoff_ms must be at least 1",
        ));
    }
    Ok(())
}

/// The keys of `[trust]`, if it lists any.
fn trusted_keys(pipeline: &LoadedPipeline) -> Result<Option<TrustedKeys>, ConfigError> {
    let keys = &pipeline.config.trust.keys;
    if keys.is_empty() {
        return Ok(None);
    }
    let paths: Vec<_> = keys.iter().map(|k| pipeline.resolve(k.get_ref())).collect();
    TrustedKeys::read(&paths).map(Some).map_err(|(index, e)| {
        pipeline.error_at(keys[index].span().start, format!("[trust] keys: {e}"))
    })
}

fn add_to(routes: &mut Routes, output: &str, route: Route) {
    match routes.iter_mut().find(|(o, _)| o == output) {
        Some((_, list)) => list.push(route),
        None => routes.push((output.to_owned(), vec![route])),
    }
}

/// Every input names a source, an operator, or an operator's side output.
fn check_names(pipeline: &LoadedPipeline) -> Result<(), ConfigError> {
    let config = &pipeline.config;
    let known = || {
        let sources: Vec<&str> = config.sources.keys().map(String::as_str).collect();
        let operators: Vec<&str> = config.operators.keys().map(String::as_str).collect();
        format!(
            "sources: {}; operators: {}",
            list(&sources),
            list(&operators)
        )
    };
    let check = |owner: &str, inputs: &[Spanned<String>], span: std::ops::Range<usize>| {
        if inputs.is_empty() {
            return Err(pipeline.error_at(
                span.start,
                format!(
                    "{owner} has no inputs; expected at least one of {}",
                    known()
                ),
            ));
        }
        for input in inputs {
            let r = parse_input(input.get_ref());
            let ok = if config.sources.contains_key(r.node) {
                r.output.is_empty()
            } else {
                config.operators.contains_key(r.node)
            };
            if !ok {
                let what = if config.sources.contains_key(r.node) {
                    format!("source `{}` has no side outputs", r.node)
                } else {
                    format!(
                        "unknown input `{}`; expected one of {}",
                        input.get_ref(),
                        known()
                    )
                };
                return Err(pipeline.error_at(input.span().start, format!("{owner}: {what}")));
            }
        }
        Ok(())
    };
    for (name, op) in &config.operators {
        if config.sources.contains_key(name) {
            return Err(pipeline.error_at(
                op.span().start,
                format!("`{name}` names both a source and an operator"),
            ));
        }
        check(
            &format!("operator `{name}`"),
            &op.get_ref().inputs,
            op.span(),
        )?;
    }
    for (name, sink) in &config.sinks {
        check(
            &format!("sink `{name}`"),
            &sink.get_ref().inputs,
            sink.span(),
        )?;
    }
    Ok(())
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        return "(none)".into();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Operators ordered so that each comes after every operator it reads from.
fn topological_order(pipeline: &LoadedPipeline) -> Result<Vec<String>, ConfigError> {
    let ops = &pipeline.config.operators;
    let mut order: Vec<String> = Vec::new();
    let mut remaining: Vec<&String> = ops.keys().collect();
    while !remaining.is_empty() {
        let ready = remaining.iter().position(|name| {
            ops[*name].get_ref().inputs.iter().all(|i| {
                let node = parse_input(i.get_ref()).node;
                !ops.contains_key(node) || order.iter().any(|o| o == node)
            })
        });
        match ready {
            Some(i) => order.push(remaining.remove(i).clone()),
            None => {
                let name = remaining[0];
                let cycle: Vec<&str> = remaining.iter().map(|s| s.as_str()).collect();
                return Err(pipeline.error_at(
                    ops[name].span().start,
                    format!(
                        "operators {} feed each other in a cycle; a pipeline must be a DAG",
                        list(&cycle)
                    ),
                ));
            }
        }
    }
    Ok(order)
}

/// Loads an operator's plugin and starts it.
fn operator(
    pipeline: &LoadedPipeline,
    loader: &Loader,
    swapped: Option<&SwappedPlugins>,
    name: &str,
    op: &Spanned<OperatorConfig>,
    batch_size: usize,
) -> Result<(OperatorNode, Vec<String>), ConfigError> {
    let config = op.get_ref();
    let defaults = &pipeline.config.plugins;
    let path = pipeline.resolve(config.plugin.get_ref());
    let at_plugin = |message: String| pipeline.error_at(config.plugin.span().start, message);
    let bytes = std::fs::read(&path)
        .map_err(|e| at_plugin(format!("operator `{name}`: {}: {e}", path.display())))?;
    let kept = swapped.and_then(|s| {
        let (plugin, version) = s.take_over(name, &bytes)?;
        match loader.load_for(name, &plugin) {
            Ok(module) => {
                tracing::info!(
                    operator = name,
                    version,
                    "running the plugin version swapped in before, not the file's"
                );
                Some(module)
            }
            Err(e) => {
                tracing::warn!(
                    operator = name,
                    "the version swapped in before no longer loads ({e}); running the file's"
                );
                s.forget(name);
                None
            }
        }
    });
    let module = match kept {
        Some(module) => module,
        None => loader
            .load_for(name, &bytes)
            .map_err(|e| at_plugin(format!("operator `{name}`: {}: {e}", path.display())))?,
    };
    // Without a grants table, the plugin is granted what its manifest declares.
    let (grants, at) = match &config.grants {
        Some(grants) => (grants.get_ref().clone(), grants.span().start),
        None => (
            module.manifest().capabilities.clone(),
            config.plugin.span().start,
        ),
    };
    crate::plugin::grants::check(&module, &grants)
        .map_err(|e| pipeline.error_at(at, format!("operator `{name}`: {e}")))?;
    let window = match (&config.window, module.kind()) {
        (Some(w), kind) if kind.windowed() => Some(
            Windowing::new(
                w.get_ref(),
                config.allowed_lateness_ms,
                kind == OperatorKind::Aggregate,
            )
            .map_err(|e| {
                pipeline.error_at(w.span().start, format!("operator `{name}`: window: {e}"))
            })?,
        ),
        (None, OperatorKind::Process) => None,
        (Some(w), _) => {
            return Err(pipeline.error_at(
                w.span().start,
                format!(
                    "operator `{name}`: plugin `{}` is a process plugin, which takes no window; expected a window plugin here",
                    module.manifest().name
                ),
            ));
        }
        (None, _) => {
            return Err(pipeline.error_at(
                op.span().start,
                format!(
                    "operator `{name}`: plugin `{}` is a window plugin; expected a `window` (e.g. window.tumbling = {{ size_ms = 10000 }})",
                    module.manifest().name
                ),
            ));
        }
    };
    // What it may emit to besides its main output: the side outputs granted
    // (declared, without a grants table), and `late` for window operators.
    let mut outputs = match &config.grants {
        Some(grants) => grants.get_ref().side_outputs.clone(),
        None => module.manifest().capabilities.side_outputs.clone(),
    };
    if window.is_some() {
        outputs.push(eddy_abi::LATE_OUTPUT.to_owned());
    }
    let limits = super::limits::plugin_limits(defaults, config);
    let params = serde_json::to_value(&config.params).map_err(|e| {
        pipeline.error_at(op.span().start, format!("operator `{name}`: params: {e}"))
    })?;
    let runner = PluginRunner::start(
        loader.engine(),
        Arc::new(module),
        name,
        &params,
        limits,
        OperatorState::with_ttl(config.state_ttl_ms),
    )
    .map_err(|e| at_plugin(format!("operator `{name}`: plugin {e}")))?;
    let node = OperatorNode::new(
        name,
        Box::new(runner),
        config.inputs.len(),
        config.key_by.as_deref(),
        window,
        batch_size,
    );
    Ok((node, outputs))
}

/// Every `op.NAME` input names a side output `op` may emit to: a typo would
/// silently take nothing.
fn check_side_outputs(
    pipeline: &LoadedPipeline,
    outputs: &BTreeMap<&str, Vec<String>>,
) -> Result<(), ConfigError> {
    let config = &pipeline.config;
    let inputs = config
        .operators
        .iter()
        .map(|(name, op)| (format!("operator `{name}`"), &op.get_ref().inputs))
        .chain(
            config
                .sinks
                .iter()
                .map(|(name, sink)| (format!("sink `{name}`"), &sink.get_ref().inputs)),
        );
    for (owner, inputs) in inputs {
        for input in inputs {
            let r = parse_input(input.get_ref());
            let Some(known) = outputs.get(r.node) else {
                continue;
            };
            if r.output.is_empty() || known.iter().any(|o| *o == r.output) {
                continue;
            }
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            return Err(pipeline.error_at(
                input.span().start,
                format!(
                    "{owner}: operator `{}` has no side output `{}`; it has {}",
                    r.node,
                    r.output,
                    list(&known)
                ),
            ));
        }
    }
    Ok(())
}
