//! Resident memory of the reference pipeline, with a release `eddy run`:
//! the demo's UPS simulation scaled to 1000 cells reporting every second
//! of event time at 100× (100 000 records a second), 30 s window stats of
//! temperature and voltage per cell, threshold alerts on them, checkpoints
//! every second, results to the `null` sink.
//!
//! Samples the process's resident memory every 100 ms (`/proc/PID/status`:
//! `RssAnon`, the process's own memory, and `RssFile`, mostly the pages of
//! the binary's code it ran, shared with every process of the same binary
//! and given back by the kernel under pressure) and reports the peak of
//! each, the peak of the whole (`VmHWM`), the records per second and the
//! CPU time a record. Prints a table; writes `target/bench/memory.json`.

use std::path::Path;
use std::time::{Duration, Instant};

#[path = "support/process.rs"]
mod process;

use process::{Killed, cpu, status_kib};

#[path = "support/run.rs"]
#[allow(dead_code, reason = "the broker benchmarks use the rest")]
mod run;

use run::{eddy, plugin};

/// How long the pipeline runs.
const SECONDS: u64 = 30;

/// The reference pipeline: 1000 cells and 2 rooms at 100 readings a
/// second each.
fn reference(root: &Path) -> String {
    format!(
        r#"[pipeline]
name = "reference"
dead_letter_path = "dead-letter.jsonl"
[checkpoint]
interval_ms = 1000
[sources.ups]
bounded_out_of_orderness_ms = 2000
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
        stats = plugin(root, "window_stats"),
        alert = plugin(root, "threshold_alert"),
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

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut cmd = eddy(dir.path(), &reference(&root));
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
    let mib = |kib: u64| kib as f64 / 1024.0;
    let per_s = records as f64 / wall;
    let cpu_us = used.as_secs_f64() * 1e6 / records as f64;
    println!("| reference pipeline, {SECONDS} s | figure |");
    println!("| --- | --- |");
    println!("| records | {records} ({per_s:.0}/s) |");
    println!(
        "| peak resident: whole, own (anonymous), code and files | {:.1} MiB, {:.1} MiB, {:.1} MiB |",
        mib(hwm),
        mib(anon),
        mib(file)
    );
    println!("| CPU a record | {cpu_us:.2} µs |");
    let figures = serde_json::json!({
        "seconds": SECONDS,
        "records": records,
        "records_per_s": per_s,
        "peak_resident_mib": mib(hwm),
        "peak_anonymous_mib": mib(anon),
        "peak_file_mib": mib(file),
        "cpu_us_per_record": cpu_us,
    });
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    std::fs::write(
        out.join("memory.json"),
        serde_json::to_string_pretty(&figures).expect("json"),
    )
    .expect("memory.json");
}
