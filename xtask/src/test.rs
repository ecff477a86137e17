//! `cargo xtask test`: everything CI checks, with its prerequisites installed.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::build::{self, Target};
use crate::{guests, precompile, prerequisites};

/// Free space a clean run needs on the filesystem of `target/`: its debug,
/// guest and cross builds take about 5 GiB, and a linker that runs out of
/// room crashes instead of saying so.
const NEEDED_DISK_GIB: f64 = 10.0;

/// Installs prerequisites, then runs formatting, lints, all tests, the doc
/// tests and the aarch64 smoke test, in that order.
///
/// A failure names the free disk space left, since a full disk shows up as
/// crashing linkers and compilers rather than as an error about space.
pub(crate) fn run(sh: &Shell, cross: bool) -> anyhow::Result<()> {
    let target = sh.current_dir().join("target");
    if let Some(free) = free_disk_gib(&target)
        && free < NEEDED_DISK_GIB
    {
        eprintln!(
            "warning: {free:.1} GiB free on the filesystem of {}; a clean run needs about {NEEDED_DISK_GIB} GiB",
            target.display()
        );
    }
    steps(sh, cross).with_context(|| match free_disk_gib(&target) {
        Some(free) => format!(
            "tests failed with {free:.1} GiB free on the filesystem of {}",
            target.display()
        ),
        None => "tests failed".to_string(),
    })
}

/// Free space, in GiB, on the filesystem that holds `path` (or its nearest
/// existing ancestor); `None` when it cannot be read.
fn free_disk_gib(path: &Path) -> Option<f64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let c_path = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: `stat` is plain data that statvfs fills; the path is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as f64 * stat.f_frsize as f64 / (1u64 << 30) as f64)
}

/// The steps of [`run`], in order.
fn steps(sh: &Shell, cross: bool) -> anyhow::Result<()> {
    let cargo = crate::cargo();
    let started = Instant::now();
    let step = |name: &str| {
        eprintln!("\n== {name} (at {:.0} s)", started.elapsed().as_secs_f64());
    };
    step("prerequisites");
    prerequisites::rustup_target(sh, "wasm32-unknown-unknown")?;
    prerequisites::test_peers(sh)?;
    prerequisites::host_build(sh)?;
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
    // The device build without the compiler has code paths of its own.
    cmd!(
        sh,
        "{cargo} clippy --quiet -p eddy-host --no-default-features --features components -- -D warnings"
    )
    .run()?;
    step("tests");
    // `all-arch`: the tests precompile plugins for other targets too.
    if cmd!(sh, "{cargo} nextest --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
    {
        cmd!(
            sh,
            "{cargo} nextest run --workspace --no-fail-fast --features eddy-host/all-arch"
        )
        .run()?;
    } else {
        cmd!(
            sh,
            "{cargo} test --workspace --no-fail-fast --features eddy-host/all-arch"
        )
        .run()?;
    }
    // The same features as the tests, so the libraries they built are reused.
    step("doc tests");
    cmd!(
        sh,
        "{cargo} test --quiet --workspace --doc --features eddy-host/all-arch"
    )
    .run()?;
    if cross {
        step("aarch64 build without the compiler, precompiled plugins, run under qemu-user");
        aarch64_smoke(sh)?;
    }
    step("done");
    Ok(())
}

/// Cross-builds the host for aarch64 without the compiler and runs it under
/// qemu-user: `--version`; the demo pipeline with plugins precompiled for
/// aarch64 on this machine for a few seconds, which must print window
/// results; and the demo with bare `.wasm` plugins, which must be refused.
fn aarch64_smoke(sh: &Shell) -> anyhow::Result<()> {
    let binary = build::run(sh, Target::Aarch64, false)?;
    // The tests' `eddy` has every code generator (`all-arch`): building it
    // again with only its own package's features would rebuild Cranelift,
    // wasmtime and tokio.
    precompile::with(sh, Path::new(precompile::COMPILER), Target::Aarch64, None)?;
    let sysroot = "/usr/aarch64-linux-gnu";
    let version = cmd!(sh, "qemu-aarch64-static -L {sysroot} {binary} --version").read()?;
    eprintln!("{version}");
    if !version.starts_with("eddy ") {
        bail!("unexpected --version output from the aarch64 build: {version:?}");
    }
    let refused = cmd!(
        sh,
        "qemu-aarch64-static -L {sysroot} {binary} check examples/ups-monitor.toml"
    )
    .ignore_status()
    .read_stderr()?;
    if !refused.contains("built without a compiler") {
        bail!(
            "the aarch64 build without a compiler did not refuse a bare .wasm clearly:\n{refused}"
        );
    }
    // The demo, with its plugins swapped for the aarch64 bundles.
    let demo = sh
        .read_file("examples/ups-monitor.toml")?
        .replace(
            "../target/plugins/",
            &format!("../target/plugins/{}/", Target::Aarch64.triple()),
        )
        .replace(".wasm\"", ".bundle\"");
    let pipeline = "target/aarch64-demo.toml";
    sh.write_file(pipeline, demo)?;
    let state = "target/aarch64-demo-state";
    sh.remove_path(state)?;
    let output = cmd!(
        sh,
        "qemu-aarch64-static -L {sysroot} {binary} --state-dir {state} run {pipeline} --duration 8s"
    )
    .env("EDDY_LOG", "warn")
    .env("EDDY_API_LISTEN", "127.0.0.1:0")
    .read()?;
    let windows = output
        .lines()
        .filter(|l| l.contains(r#""output":"stats""#))
        .count();
    if windows == 0 {
        bail!("the aarch64 build ran the demo but printed no window results:\n{output}");
    }
    eprintln!(
        "aarch64 build without the compiler, under qemu-user: the demo with precompiled plugins printed {windows} window results"
    );
    Ok(())
}
