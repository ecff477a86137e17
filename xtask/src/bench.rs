//! `cargo xtask bench`: the pipeline, durability, plugin-lifecycle, memory, I/O, local-API, Modbus, MQTT and Kafka benchmarks, in release mode.

use xshell::{Shell, cmd};

use crate::{guests, prerequisites};

/// Builds the guests and runs the benchmark binaries, which print tables and
/// write the same figures to `target/bench/pipeline.json`,
/// `target/bench/durability.json`, `target/bench/plugins.json`,
/// `target/bench/memory.json`, `target/bench/io.json`, `target/bench/api.json`,
/// `target/bench/modbus.json`, `target/bench/mqtt.json` and
/// `target/bench/kafka.json`, then `BENCHMARKS.md` from every figure there.
pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    guests::run(sh)?;
    let cargo = crate::cargo();
    cmd!(sh, "{cargo} bench --quiet -p eddy-host --bench pipeline").run()?;
    cmd!(sh, "{cargo} bench --quiet -p eddy-host --bench durability").run()?;
    cmd!(sh, "{cargo} bench --quiet -p eddy-host --bench plugins").run()?;
    cmd!(sh, "{cargo} bench --quiet -p eddy-host --bench memory").run()?;
    cmd!(sh, "{cargo} bench --quiet -p eddy-host --bench io").run()?;
    cmd!(sh, "{cargo} bench --quiet -p eddy-host --bench api").run()?;
    prerequisites::test_peers(sh)?;
    prerequisites::host_build(sh)?;
    cmd!(sh, "{cargo} bench --quiet -p eddy-host --bench modbus").run()?;
    cmd!(sh, "{cargo} bench --quiet -p eddy-host --bench mqtt").run()?;
    cmd!(sh, "{cargo} bench --quiet -p eddy-host --bench kafka").run()?;
    crate::report::write(sh)
}
