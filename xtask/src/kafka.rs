//! `cargo xtask test-kafka`: the Kafka tests against a real Kafka-protocol
//! broker, tansu, which takes minutes to build, so it is not part of
//! `cargo xtask test` (whose Kafka tests use librdkafka's mock cluster).

use xshell::{Shell, cmd};

use crate::{guests, prerequisites};

/// The tansu release the tests run against.
const TANSU: &str = "0.6.0";

/// Installs tansu into `target/tools` unless it is there, then runs the
/// tests marked for a real broker.
pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    prerequisites::host_build(sh)?;
    guests::run(sh)?;
    let cargo = crate::cargo();
    let tools = crate::project_root().join("target/tools");
    let tansu = tools.join("bin/tansu");
    let installed = cmd!(sh, "{tansu} --version")
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|v| v.contains(TANSU));
    if !installed {
        eprintln!("building tansu {TANSU} (about ten minutes on two cores)");
        cmd!(
            sh,
            "{cargo} install --quiet --root {tools} tansu --version {TANSU} --features dynostore"
        )
        .run()?;
    }
    let _tansu = sh.push_env("EDDY_TEST_TANSU", &tansu);
    cmd!(
        sh,
        "{cargo} test -p eddy-host --features eddy-host/all-arch --test e2e -- --ignored against_a_real_broker"
    )
    .run()?;
    Ok(())
}
