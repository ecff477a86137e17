//! `cargo xtask demo`: the demo pipeline, for a bounded time.

use xshell::{Shell, cmd};

use crate::guests;

/// Builds the guests and runs `examples/ups-monitor.toml`.
pub(crate) fn run(sh: &Shell, duration: &str) -> anyhow::Result<()> {
    guests::run(sh)?;
    crate::prerequisites::host_build(sh)?;
    let cargo = crate::cargo();
    eprintln!(
        "running examples/ups-monitor.toml for {duration}: window stats and alerts as JSON lines"
    );
    // A fresh state store each time: the demo shows a first run.
    let state = "target/demo-state";
    sh.remove_path(state)?;
    cmd!(
        sh,
        "{cargo} run --quiet -p eddy-host -- --state-dir {state} run examples/ups-monitor.toml --duration {duration}"
    )
    .run()?;
    Ok(())
}
