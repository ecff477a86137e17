//! `eddy check`: validate a pipeline without running it.

use std::path::Path;

use super::Failure;
use crate::config;
use crate::dataflow::Graph;

/// Loads the file, resolves every name, loads and starts every plugin with its params.
pub(crate) fn check(path: &Path) -> Result<(), Failure> {
    let pipeline = config::load(path)?;
    Graph::build(&pipeline)?;
    let c = &pipeline.config;
    println!(
        "{}: pipeline `{}` is valid: {} source(s), {} operator(s), {} sink(s)",
        path.display(),
        pipeline.name(),
        c.sources.len(),
        c.operators.len(),
        c.sinks.len()
    );
    Ok(())
}
