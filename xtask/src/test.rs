//! `cargo xtask test`: everything CI checks, with its prerequisites installed.

use anyhow::bail;
use xshell::{Shell, cmd};

use crate::build::{self, Target};
use crate::{guests, prerequisites};

/// Installs prerequisites, then runs formatting, lints, the aarch64 smoke test and all tests.
pub(crate) fn run(sh: &Shell, cross: bool) -> anyhow::Result<()> {
    let cargo = crate::cargo();
    step("prerequisites");
    prerequisites::rustup_target(sh, "wasm32-unknown-unknown")?;
    if cross {
        prerequisites::cross_aarch64(sh)?;
    }
    step("formatting");
    cmd!(sh, "{cargo} fmt --all --check").run()?;
    step("guest plugins");
    guests::run(sh)?;
    step("lints");
    cmd!(
        sh,
        "{cargo} clippy --quiet --workspace --all-targets -- -D warnings"
    )
    .run()?;
    if cross {
        step("aarch64 build, run under qemu-user");
        aarch64_smoke(sh)?;
    }
    step("doc tests");
    cmd!(sh, "{cargo} test --quiet --workspace --doc").run()?;
    step("tests");
    if cmd!(sh, "{cargo} nextest --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
    {
        cmd!(sh, "{cargo} nextest run --workspace --no-fail-fast").run()?;
    } else {
        cmd!(sh, "{cargo} test --workspace --no-fail-fast").run()?;
    }
    Ok(())
}

fn step(name: &str) {
    eprintln!("\n== {name}");
}

/// Cross-builds the host for aarch64 and runs it under qemu-user: `--version`,
/// then the demo pipeline for a few seconds, which must print window results.
fn aarch64_smoke(sh: &Shell) -> anyhow::Result<()> {
    let binary = build::run(sh, Target::Aarch64)?;
    let sysroot = "/usr/aarch64-linux-gnu";
    let version = cmd!(sh, "qemu-aarch64-static -L {sysroot} {binary} --version").read()?;
    eprintln!("{version}");
    if !version.starts_with("eddy ") {
        bail!("unexpected --version output from the aarch64 build: {version:?}");
    }
    let state = "target/aarch64-demo-state";
    sh.remove_path(state)?;
    let output = cmd!(
        sh,
        "qemu-aarch64-static -L {sysroot} {binary} --state-dir {state} run examples/ups-monitor.toml --duration 8s"
    )
    .env("EDDY_LOG", "warn")
    .read()?;
    let windows = output
        .lines()
        .filter(|l| l.contains(r#""output":"stats""#))
        .count();
    if windows == 0 {
        bail!("the aarch64 build ran the demo but printed no window results:\n{output}");
    }
    eprintln!("aarch64 build under qemu-user: demo printed {windows} window results");
    Ok(())
}
