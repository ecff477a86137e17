//! `cargo xtask bench`: the pipeline benchmarks, in release mode.

use xshell::{Shell, cmd};

use crate::guests;

/// Builds the guests and runs the benchmark binary, which prints a table and
/// writes the same figures to `target/bench/pipeline.json`.
pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    guests::run(sh)?;
    let cargo = crate::cargo();
    cmd!(sh, "{cargo} bench --quiet -p eddy-host --bench pipeline").run()?;
    Ok(())
}
