//! `eddy run`: run a pipeline until it ends or is stopped.

use std::path::Path;
use std::time::Duration;

use super::Failure;
use crate::dataflow::RunError;
use crate::runtime::{RunOptions, Runtime, StartError};

/// Runs the pipeline; SIGINT and SIGTERM stop it cleanly.
pub(crate) fn run(
    path: &Path,
    duration: Option<Duration>,
    api_listen: Option<&str>,
    state_dir: &Path,
) -> Result<(), Failure> {
    let options = RunOptions {
        pipeline: path.to_owned(),
        duration,
        api_listen: api_listen.map(str::to_owned),
        state_dir: state_dir.to_owned(),
    };
    crate::allocator::purge_in_background();
    let runtime = Runtime::start(&options).map_err(|e| match e {
        StartError::Config(e) => Failure::usage(e),
        StartError::Build(e) => Failure::from(e),
        StartError::Run(e) => run_failure(e),
        e @ StartError::Process(_) => Failure::runtime(e),
    })?;
    runtime.wait().map(drop).map_err(run_failure)
}

/// The pipeline must say what to do: a usage error; else a runtime one.
fn run_failure(e: RunError) -> Failure {
    match e {
        e @ (RunError::StateVersion { .. } | RunError::Open(_)) => Failure::usage(e),
        e => Failure::runtime(e),
    }
}
