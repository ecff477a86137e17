//! `eddy run`: run a pipeline on its own thread until it ends or is stopped.

use std::path::Path;
use std::time::{Duration, Instant};

use super::Failure;
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::api::{Api, KeptSwaps, Served, Token};
use crate::checkpoint::StateStore;
use crate::config;
use crate::dataflow::{Graph, RunControl, RunError};
use crate::plugin::SwappedPlugins;

/// Runs the pipeline; SIGINT and SIGTERM stop it cleanly.
pub(crate) fn run(
    path: &Path,
    duration: Option<Duration>,
    api_listen: Option<&str>,
    state_dir: &Path,
) -> Result<(), Failure> {
    let pipeline = config::load(path)?;
    let swapped = SwappedPlugins::new(state_dir, &pipeline.name());
    let mut graph = Graph::build_with_swapped(&pipeline, Some(&swapped))?;
    if pipeline.config.checkpoint.enabled {
        let store = StateStore::open(state_dir).map_err(Failure::runtime)?;
        graph.attach_store(&store).map_err(Failure::runtime)?;
    }
    let api = &pipeline.config.api;
    if api.enabled
        && let Some(loader) = graph.loader().cloned()
    {
        let token_file = api
            .token_file
            .as_ref()
            .map(|f| pipeline.resolve(f.get_ref()));
        let token = Token::resolve(token_file.as_deref(), state_dir).map_err(Failure::runtime)?;
        let (requests, accepted) = std::sync::mpsc::channel();
        let listen = api_listen.unwrap_or(&api.listen);
        // The pipeline runs without its API rather than not at all.
        let kept = KeptSwaps {
            store: swapped,
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
        };
        // Counters and histograms, for `GET /metrics`.
        let metrics = PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| tracing::warn!("no metrics: {e}"))
            .ok();
        let served = Served {
            pipeline: graph.name().to_owned(),
            requests,
            loader,
            kept,
            metrics,
        };
        match Api::start(listen, token, state_dir, served) {
            Ok(api) => {
                tracing::info!(address = %api.address, "local API listening");
                graph.accept_requests(accepted);
            }
            Err(e) => tracing::error!("the local API is off: {e}"),
        }
    }
    let control = RunControl {
        deadline: duration.map(|d| Instant::now() + d),
        ..RunControl::default()
    };
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, control.stop.clone()).map_err(Failure::runtime)?;
    }
    let name = graph.name().to_owned();
    tracing::info!(pipeline = %name, "pipeline started");
    let worker = std::thread::Builder::new()
        .name(format!("pipeline-{name}"))
        .spawn(move || graph.run(&control))
        .map_err(Failure::runtime)?;
    let summary = worker
        .join()
        .map_err(|_| Failure::runtime("the pipeline thread panicked"))?
        .map_err(|e| match e {
            // The pipeline must say what to do: a usage error.
            e @ RunError::StateVersion { .. } => Failure::usage(e),
            e => Failure::runtime(e),
        })?;
    tracing::info!(
        pipeline = %name,
        records_in = summary.records_in,
        dead_lettered = summary.dead_lettered,
        completed = summary.completed,
        "pipeline stopped"
    );
    Ok(())
}
