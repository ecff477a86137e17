//! Resident memory of the reference pipeline, with a release `eddy run`:
//! the demo's UPS simulation scaled to 1000 cells reporting every second
//! of event time at 100× (100 000 records a second), 30 s window stats of
//! temperature and voltage per cell, threshold alerts on them, checkpoints
//! every second, results to the `null` sink. Its source keeps the ingest
//! journal (buffered), as a live device's does: a simulation with a start
//! time goes back to its checkpoint's place and needs none, but the devices
//! it stands for cannot.
//!
//! Samples the process's resident memory every 100 ms (`/proc/PID/status`:
//! `RssAnon`, the process's own memory, and `RssFile`, mostly the pages of
//! the binary's code it ran, shared with every process of the same binary
//! and given back by the kernel under pressure) and reports the peak of
//! each, the peak of the whole (`VmHWM`), the records per second and the
//! CPU time a record. Prints a table; writes `target/bench/memory.json`.
//!
//! Two builds run it: this one (every component, and Cranelift to compile
//! `.wasm` plugins), and the build a device would get for this pipeline
//! (`--no-default-features --features sim,file,mimalloc`, no compiler: built into
//! `target/device`), with the plugins precompiled into bundles. Its code is
//! a fraction of the other's, and so are the code pages it maps.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/process.rs"]
mod process;

use process::{Killed, cpu, status_kib};

#[path = "support/run.rs"]
#[allow(dead_code, reason = "the broker benchmarks use the rest")]
mod run;

use run::{eddy_of, plugin};

/// How long the pipeline runs.
const SECONDS: u64 = 30;

/// The reference pipeline: 1000 cells and 2 rooms at 100 readings a
/// second each, with these plugins (quoted paths).
fn reference(stats: &str, alert: &str) -> String {
    format!(
        r#"[pipeline]
name = "reference"
dead_letter_path = "dead-letter.jsonl"
[checkpoint]
interval_ms = 1000
[sources.ups]
bounded_out_of_orderness_ms = 2000
journal = "buffered"
[sources.ups.sim]
seed = 42
start_time_ms = 1_767_225_600_000
interval_ms = 1000
speed = 100
rooms = [{{ name = "room-a" }}, {{ name = "room-b", temperature_c = 24.0 }}]
ups = [{{ name = "ups-1", strings = 10, cells_per_string = 100 }}]
[operators.stats]
inputs = ["ups"]
plugin = {stats}
params = {{ fields = ["temperature", "voltage"] }}
window.tumbling = {{ size_ms = 30_000 }}
[operators.alerts]
inputs = ["stats"]
plugin = {alert}
params = {{ field = "temperature_max", threshold = 35.0, within_ms = 60_000, clear_below = 32.0 }}
[sinks.none]
inputs = ["stats", "alerts"]
[sinks.none.null]
"#,
    )
}

/// The records the run read, from the line its end logs.
fn records_in(log: &str) -> u64 {
    log.lines()
        .rev()
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|t| t.strip_prefix("records_in="))?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// What one run measured.
struct Run {
    records: u64,
    per_s: f64,
    hwm_kib: u64,
    anon_kib: u64,
    file_kib: u64,
    cpu_us: f64,
}

/// Runs the reference pipeline with `binary` for [`SECONDS`].
fn measure(binary: &Path, pipeline: &str) -> Run {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut cmd = eddy_of(binary, dir.path(), pipeline);
    cmd.args(["--duration", &format!("{SECONDS}s")]);
    let mut child = Killed(cmd.spawn().expect("eddy"));
    let pid = child.0.id();
    let started = Instant::now();
    let (mut anon, mut file, mut hwm, mut used) = (0, 0, 0, Duration::ZERO);
    loop {
        if let Ok(Some(_)) = child.0.try_wait() {
            break;
        }
        let [a, f, h] = status_kib(pid, ["RssAnon:", "RssFile:", "VmHWM:"]);
        anon = anon.max(a);
        file = file.max(f);
        hwm = hwm.max(h);
        used = used.max(cpu(pid));
        assert!(
            started.elapsed() < Duration::from_secs(SECONDS + 60),
            "eddy did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let wall = started.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(dir.path().join("eddy.log")).unwrap_or_default();
    let records = records_in(&log);
    assert!(records > 0, "the run read nothing:\n{log}");
    Run {
        records,
        per_s: records as f64 / wall,
        hwm_kib: hwm,
        anon_kib: anon,
        file_kib: file,
        cpu_us: used.as_secs_f64() * 1e6 / records as f64,
    }
}

/// Builds the device's `eddy` for the reference pipeline (its source, no
/// compiler) into `target/device`, and bundles of the two plugins
/// precompiled for this machine; gives the binary and the bundles' paths.
fn device_build(root: &Path, work: &Path) -> (PathBuf, String, String) {
    let status = Command::new(env!("CARGO"))
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "eddy-host",
            "--bin",
            "eddy",
        ])
        .args(["--no-default-features", "--features", "sim,file,mimalloc"])
        .args(["--target-dir", "target/device"])
        .status()
        .expect("cargo build");
    assert!(status.success(), "the device build failed");
    // This machine's target, which the device build is for.
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let bundle = |name: &str| {
        let out = work.join(format!("{name}.bundle"));
        let status = Command::new(env!("CARGO_BIN_EXE_eddy"))
            .args(["plugin", "precompile", "--target", &target, "-o"])
            .arg(&out)
            .arg(root.join(format!("target/plugins/{name}.wasm")))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("eddy plugin precompile");
        assert!(status.success(), "precompiling {name} failed");
        format!("{out:?}")
    };
    (
        root.join("target/device/release/eddy"),
        bundle("window_stats"),
        bundle("threshold_alert"),
    )
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let work = tempfile::tempdir().expect("a temporary folder");
    let full = measure(
        Path::new(env!("CARGO_BIN_EXE_eddy")),
        &reference(
            &plugin(&root, "window_stats"),
            &plugin(&root, "threshold_alert"),
        ),
    );
    let (binary, stats, alert) = device_build(&root, work.path());
    let device = measure(&binary, &reference(&stats, &alert));
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "| reference pipeline, {SECONDS} s | every component, compiler, `.wasm` plugins | device build (sim, file, mimalloc; no compiler), precompiled bundles |"
    );
    println!("| --- | --- | --- |");
    println!(
        "| records | {} ({:.0}/s) | {} ({:.0}/s) |",
        full.records, full.per_s, device.records, device.per_s
    );
    let resident = |r: &Run| {
        format!(
            "{:.1} MiB, {:.1} MiB, {:.1} MiB",
            mib(r.hwm_kib),
            mib(r.anon_kib),
            mib(r.file_kib)
        )
    };
    println!(
        "| peak resident: whole, own (anonymous), code and files | {} | {} |",
        resident(&full),
        resident(&device)
    );
    println!(
        "| CPU a record | {:.2} µs | {:.2} µs |",
        full.cpu_us, device.cpu_us
    );
    let figures = serde_json::json!({
        "seconds": SECONDS,
        "records": full.records,
        "records_per_s": full.per_s,
        "peak_resident_mib": mib(full.hwm_kib),
        "peak_anonymous_mib": mib(full.anon_kib),
        "peak_file_mib": mib(full.file_kib),
        "cpu_us_per_record": full.cpu_us,
        "device_build": {
            "features": "sim,file,mimalloc (no compiler), precompiled bundles",
            "records_per_s": device.per_s,
            "peak_resident_mib": mib(device.hwm_kib),
            "peak_anonymous_mib": mib(device.anon_kib),
            "peak_file_mib": mib(device.file_kib),
            "cpu_us_per_record": device.cpu_us,
        },
    });
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    std::fs::write(
        out.join("memory.json"),
        serde_json::to_string_pretty(&figures).expect("json"),
    )
    .expect("memory.json");
}
