//! `eddy run`: run a pipeline on its own thread until it ends or is stopped.

use std::path::Path;
use std::time::{Duration, Instant};

use super::Failure;
use crate::checkpoint::StateStore;
use crate::config;
use crate::dataflow::{Graph, RunControl, RunError};

/// Runs the pipeline; SIGINT and SIGTERM stop it cleanly.
pub(crate) fn run(
    path: &Path,
    duration: Option<Duration>,
    state_dir: &Path,
) -> Result<(), Failure> {
    let pipeline = config::load(path)?;
    let mut graph = Graph::build(&pipeline)?;
    if pipeline.config.checkpoint.enabled {
        let store = StateStore::open(state_dir).map_err(Failure::runtime)?;
        graph.attach_store(&store).map_err(Failure::runtime)?;
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
