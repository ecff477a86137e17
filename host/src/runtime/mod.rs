//! What `eddy run` starts and stops, in one place.
//!
//! [`Runtime::start`] loads and validates the pipeline, starts the async
//! runtime its I/O runs on (source and sink tasks, the local API; plugin
//! calls never run there), opens the pipeline's sources and sinks, attaches
//! the state store, serves the API, and starts the pipeline on a thread of
//! its own. [`Runtime::wait`] waits for the pipeline to end (its sources
//! ended, a signal, the duration) and then shuts everything down in order:
//! the pipeline finishes its step, gives its sinks the shutdown timeout to
//! deliver what they hold and takes a last checkpoint; then the API stops
//! and the async runtime with every task on it. The uplink, twin sync and
//! shared broker connections start and stop here too, as services handed
//! to the components that use them.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::api::{Api, Served, Token};
use crate::checkpoint::StateStore;
use crate::config::{self, ConfigError};
use crate::dataflow::{BuildError, Graph, RunControl, RunError, RunSummary};
use crate::metrics::Metrics;
use crate::plugin::{KeptSwaps, SwappedPlugins};

pub(crate) mod release;

/// What a stopped pipeline gets beyond its shutdown timeout to finish.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Threads of the async runtime: I/O waits, it does not compute.
const IO_THREADS: usize = 2;

/// The nice value of the async runtime's threads: on a busy gateway the
/// pipeline's thread (nice 0) comes first, and a storm of API requests or
/// network traffic cannot take its CPU away.
const IO_NICE: i32 = 5;

/// Lowers the calling thread's priority to `nice` (the process's other
/// threads keep theirs).
pub(crate) fn lower_thread_priority(nice: i32) {
    // SAFETY: setpriority on the calling thread's id; failing is harmless.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice);
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Overrides `[api] listen`.
    pub api_listen: Option<String>,
    /// The host's state directory.
    pub state_dir: PathBuf,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The pipeline file is wrong; the error names the place.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The pipeline cannot be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A component cannot be opened, or the state store cannot be used.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The process could not start a thread, a runtime or a signal handler.
    #[error("{0}")]
    Process(String),
}

/// Everything a running `eddy run` has started.
pub struct Runtime {
    name: String,
    control: RunControl,
    /// How long a stopped pipeline may take to finish.
    stop_grace: Duration,
    doorbell: eddy_driver::Doorbell,
    pipeline: Option<JoinHandle<Result<RunSummary, RunError>>>,
    api: Option<Api>,
    io: Option<tokio::runtime::Runtime>,
}

impl Runtime {
    /// Starts a pipeline and what serves it; SIGINT and SIGTERM stop it cleanly.
    pub fn start(options: &RunOptions) -> Result<Runtime, StartError> {
        let process = |e: std::io::Error| StartError::Process(e.to_string());
        let pipeline = config::load(&options.pipeline)?;
        let swapped = SwappedPlugins::new(&options.state_dir, &pipeline.name());
        // The pipeline's plugins are loaded while the state store (its
        // checkpoints and journal, the outboxes of sinks delivering to
        // brokers) opens: a cold start waits for the longer of the two
        // only. The metrics recorder is installed first, before any
        // component records; the clock of the one it hands over to
        // calibrates meanwhile, off the way to the first result.
        let metrics = pipeline.config.api.enabled.then(Metrics::install).flatten();
        let (mut graph, store) = std::thread::scope(|scope| {
            let store = std::thread::Builder::new()
                .name("eddy-store-open".into())
                .spawn_scoped(scope, || StateStore::open(&options.state_dir))
                .map_err(process)?;
            let graph = Graph::build_with_swapped(&pipeline, Some(&swapped));
            let store = store
                .join()
                .map_err(|_| StartError::Process("opening the state store failed".into()))?;
            Ok::<_, StartError>((graph?, store))
        })?;
        let store = store.map_err(|e| StartError::Process(e.to_string()))?;
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(IO_THREADS)
            .thread_name("eddy-io")
            .on_thread_start(|| lower_thread_priority(IO_NICE))
            .enable_all()
            .build()
            .map_err(process)?;
        // What device twins share with sources (writes) and sinks (values).
        #[cfg(feature = "mqtt")]
        let twin_services = pipeline.config.twin.as_ref().map(|_| {
            let services = crate::twin::service::TwinServices::default();
            graph.provide(services.writers.clone());
            graph.provide(services.reports.clone());
            services
        });
        #[cfg(not(feature = "mqtt"))]
        let twin_services: Option<()> = None;
        // The shared broker connections, which the twin sync uses too.
        #[cfg(feature = "mqtt")]
        let shared = graph
            .service::<eddy_driver_mqtt::SharedBrokers>()
            .unwrap_or_default();
        graph.open(Some(io.handle()), Some(&store))?;
        if pipeline.config.checkpoint.enabled {
            graph.attach_store(&store)?;
        }
        // Requests to the pipeline's thread: from the API and the twin sync.
        let (requests, accepted) = std::sync::mpsc::channel();
        graph.accept_requests(accepted);
        // Requests to the twin sync, from the API.
        let (twin_commands, twin_requests) = tokio::sync::mpsc::channel(16);
        let api = Self::start_api(
            &pipeline,
            options,
            &mut graph,
            swapped,
            metrics,
            (
                requests.clone(),
                pipeline.config.twin.is_some().then_some(twin_commands),
            ),
            io.handle(),
        )?;
        if let Some(release) = release::Release::from_env() {
            io.spawn(mark_good_when_healthy(
                release,
                requests.clone(),
                graph.doorbell(),
            ));
        }
        Self::start_twin(
            &pipeline,
            &store,
            &graph,
            (requests, twin_requests),
            twin_services,
            io.handle(),
            #[cfg(feature = "mqtt")]
            &shared,
        )?;
        let control = RunControl {
            deadline: options.duration.map(|d| Instant::now() + d),
            ..RunControl::default()
        };
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, control.stop.clone()).map_err(process)?;
        }
        let name = graph.name().to_owned();
        let doorbell = graph.doorbell();
        let stop_grace =
            Duration::from_millis(pipeline.config.pipeline.shutdown_timeout_ms) + STOP_GRACE;
        tracing::info!(pipeline = %name, "pipeline started");
        let run_control = control.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pipeline-{name}"))
            .spawn(move || graph.run(&run_control))
            .map_err(process)?;
        Ok(Runtime {
            name,
            control,
            stop_grace,
            doorbell,
            pipeline: Some(thread),
            api,
            io: Some(io),
        })
    }

    /// Serves the local API, unless `[api] enabled = false`. The pipeline
    /// runs without its API rather than not at all.
    fn start_api(
        pipeline: &config::LoadedPipeline,
        options: &RunOptions,
        graph: &mut Graph,
        swapped: SwappedPlugins,
        metrics: Option<Metrics>,
        (requests, twins): (
            std::sync::mpsc::Sender<crate::dataflow::control::Request>,
            Option<crate::twin::commands::TwinCommands>,
        ),
        runtime: &tokio::runtime::Handle,
    ) -> Result<Option<Api>, StartError> {
        let api = &pipeline.config.api;
        let Some(loader) = graph.loader().cloned().filter(|_| api.enabled) else {
            return Ok(None);
        };
        // Made once this process holds the store: another `eddy run` on the
        // same state directory fails before it writes a token.
        let token_file = api
            .token_file
            .as_ref()
            .map(|f| pipeline.resolve(f.get_ref()));
        let token = Token::resolve(token_file.as_deref(), &options.state_dir)
            .map_err(|e| StartError::Process(e.to_string()))?;
        graph.keep_swaps_in(kept_swaps(pipeline, swapped));
        let listen = options.api_listen.as_deref().unwrap_or(&api.listen);
        let served = Served {
            pipeline: graph.name().to_owned(),
            requests,
            loader,
            metrics,
            doorbell: graph.doorbell(),
            swap_wait: Duration::from_millis(api.swap_wait_ms),
            twins,
        };
        match Api::start(listen, token, &options.state_dir, served, runtime) {
            Ok(api) => {
                tracing::info!(address = %api.address, "local API listening");
                Ok(Some(api))
            }
            Err(e) => {
                tracing::error!("the local API is off: {e}");
                Ok(None)
            }
        }
    }

    /// Starts this host's twin sync when the pipeline has a `[twin]`.
    fn start_twin(
        pipeline: &config::LoadedPipeline,
        store: &StateStore,
        graph: &Graph,
        (requests, commands): (
            std::sync::mpsc::Sender<crate::dataflow::control::Request>,
            tokio::sync::mpsc::Receiver<crate::twin::commands::TwinCommand>,
        ),
        #[cfg(feature = "mqtt")] services: Option<crate::twin::service::TwinServices>,
        #[cfg(not(feature = "mqtt"))] services: Option<()>,
        runtime: &tokio::runtime::Handle,
        #[cfg(feature = "mqtt")] shared: &eddy_driver_mqtt::SharedBrokers,
    ) -> Result<(), StartError> {
        let (Some(twin), Some(services)) = (&pipeline.config.twin, services) else {
            return Ok(());
        };
        #[cfg(feature = "mqtt")]
        {
            let local = crate::twin::local::LocalTwins::open(store)
                .map_err(|e| StartError::Process(e.to_string()))?;
            let link = crate::twin::service::PipelineLink {
                requests,
                doorbell: graph.doorbell(),
            };
            let located = |e: eddy_driver::Invalid| {
                StartError::Config(
                    pipeline.error_at(twin.span().start, format!("[twin]: {}", e.message)),
                )
            };
            let broker =
                eddy_driver_mqtt::Link::open(&twin.get_ref().broker, &pipeline.base_dir(), shared)
                    .map_err(located)?;
            crate::twin::service::TwinSync::start(
                twin.get_ref(),
                broker,
                local,
                link,
                services,
                commands,
                runtime,
            )
            .map_err(located)?;
            tracing::info!(
                thing = twin.get_ref().thing.get_ref().as_str(),
                "twin sync started"
            );
        }
        #[cfg(not(feature = "mqtt"))]
        let _ = (twin, store, graph, requests, commands, services, runtime);
        Ok(())
    }

    /// Asks the pipeline to stop, as a signal does.
    pub fn stop(&self) {
        self.control.stop.store(true, Ordering::Relaxed);
        self.doorbell.ring();
    }

    /// Waits for the pipeline to end, then shuts everything down.
    ///
    /// After a stop (a signal), the pipeline gets its shutdown timeout and
    /// a few seconds more to finish its step, flush its sinks and take its
    /// last checkpoint; if it is still busy then (a plugin call with a long
    /// deadline, say), `eddy run` gives up on it: the error says so, and the
    /// next start restores the last checkpoint taken.
    pub fn wait(mut self) -> Result<RunSummary, RunError> {
        let Some(thread) = self.pipeline.take() else {
            return Err(RunError::Open("the pipeline was not started".into()));
        };
        let mut stopped_at = None;
        while !thread.is_finished() {
            if stopped_at.is_none() && self.control.stop.load(Ordering::Relaxed) {
                stopped_at = Some(Instant::now());
            }
            if let Some(at) = stopped_at
                && at.elapsed() > self.stop_grace
            {
                tracing::error!(
                    pipeline = %self.name,
                    "the pipeline did not stop within {} s of the signal; exiting without a last checkpoint (the next start restores the one before)",
                    self.stop_grace.as_secs()
                );
                self.shutdown();
                return Err(RunError::NotStopped {
                    pipeline: self.name.clone(),
                    seconds: self.stop_grace.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let result = match thread.join() {
            Ok(result) => result,
            Err(_) => Err(RunError::Open("the pipeline thread panicked".into())),
        };
        self.shutdown();
        if let Ok(summary) = &result {
            tracing::info!(
                pipeline = %self.name,
                records_in = summary.records_in,
                results_written = summary.written.iter().map(|(_, n)| n).sum::<u64>(),
                dead_lettered = summary.dead_lettered,
                dead_letters_unwritten = summary.dead_letters_unwritten,
                completed = summary.completed,
                checkpoints = summary.checkpoints.taken,
                longest_checkpoint_stall_ms = summary.checkpoints.longest_stall.as_secs_f64() * 1e3,
                peak_resident_mib = crate::dataflow::control::peak_resident_bytes() >> 20,
                "pipeline stopped"
            );
        }
        result
    }

    /// Stops the API, then the async runtime and every task on it.
    fn shutdown(&mut self) {
        self.api = None;
        if let Some(io) = self.io.take() {
            io.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.pipeline.is_some() {
            self.stop();
            if let Some(thread) = self.pipeline.take() {
                let _ = thread.join();
            }
        }
        self.shutdown();
    }
}

/// Where swaps that pass probation are kept: the store, and the plugin file
/// each operator names.
fn kept_swaps(pipeline: &config::LoadedPipeline, store: SwappedPlugins) -> KeptSwaps {
    KeptSwaps {
        store,
        files: pipeline
            .config
            .operators
            .iter()
            .map(|(name, op)| {
                (
                    name.clone(),
                    pipeline.resolve(op.get_ref().plugin.get_ref()),
                )
            })
            .collect(),
    }
}

/// Marks the release good in the device's boot counter once the pipeline
/// has run for a while with no operator quarantined; a release that never
/// gets there is rolled back by `eddy-start` after its attempts.
async fn mark_good_when_healthy(
    release: release::Release,
    requests: std::sync::mpsc::Sender<crate::dataflow::control::Request>,
    doorbell: eddy_driver::Doorbell,
) {
    tokio::time::sleep(release::Release::good_after()).await;
    let (reply, answer) = tokio::sync::oneshot::channel();
    if requests
        .send(crate::dataflow::control::Request::Status(reply))
        .is_err()
    {
        return;
    }
    doorbell.ring();
    let Ok(status) = answer.await else {
        return;
    };
    let quarantined: Vec<&str> = status
        .operators
        .iter()
        .filter(|o| o.quarantined.is_some())
        .map(|o| o.name.as_str())
        .collect();
    if !quarantined.is_empty() {
        tracing::warn!(
            release = release.id(),
            "not marking the release good: quarantined operators {}",
            quarantined.join(", ")
        );
        return;
    }
    match release.mark_good() {
        Ok(true) => tracing::info!(release = release.id(), "release marked good"),
        Ok(false) => {}
        Err(e) => tracing::error!(
            release = release.id(),
            "the boot counter cannot be written: {e}"
        ),
    }
}
