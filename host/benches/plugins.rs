//! The plugin lifecycle on the release build:
//!
//! - resident memory per idle plugin instance, with memory pooled and mapped
//!   on demand: N instances of `window-stats`, and of a minimal plugin whose
//!   one page of linear memory is never touched (so what it adds is the
//!   host's own cost per instance); each case in a fresh process of its own,
//!   so that memory freed by one case does not hide what the next one takes;
//! - cold start to the first result: `eddy run` started until its first
//!   output line, with the plugin precompiled (a bundle) and as `.wasm`;
//! - the pause per hot swap: 20 swaps of `running-count` into a pipeline fed
//!   100k records/s, through `eddy plugin swap`.
//!
//! Prints a table; writes `target/bench/plugins.json`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/stats.rs"]
mod stats;

use stats::percentile;

use eddy_host::dataflow::control::resident_bytes;
use eddy_host::plugin::{
    Allocation, PluginEngine, PluginLimits, PluginModule, PluginRunner, address_space_bits,
};
use eddy_host::state::OperatorState;

/// Instances per memory case.
const INSTANCES: u32 = 200;
/// Cold starts per case; the median is reported. A start takes about 10 ms
/// and varies by half of that on a busy 2-core machine: five were too few
/// for a stable median.
const STARTS: usize = 21;
/// Swaps measured.
const SWAPS: usize = 20;

/// A plugin that does nothing, with one page of memory it never touches.
const MINIMAL: &str = r#"
(module
  (@custom "eddy.manifest" "{\"name\":\"minimal\",\"version\":\"0.1.0\",\"abi_version\":1,\"kind\":\"process\"}")
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (result i32) i32.const 0)
  (func (export "process") (param i32 i32) (result i32) i32.const 0))
"#;

/// Resident memory added per idle instance, and the linear memory each has.
fn per_instance(engine: &PluginEngine, wasm: &[u8], params: serde_json::Value) -> (f64, f64) {
    let module = Arc::new(
        PluginModule::from_bytes(engine, wasm, &Default::default()).expect("plugin loads"),
    );
    let start = |name: &str| {
        PluginRunner::start(
            engine,
            module.clone(),
            name,
            &params,
            PluginLimits::default(),
            OperatorState::in_memory(),
        )
        .expect("plugin starts")
    };
    // One first, so that what is paid once (code, the engine's first store) is not counted.
    let first = start("first");
    let before = resident_bytes();
    let runners: Vec<PluginRunner> = (0..INSTANCES).map(|i| start(&format!("op{i}"))).collect();
    let after = resident_bytes();
    let linear =
        runners.iter().map(|r| r.memory_bytes()).sum::<usize>() as f64 / f64::from(INSTANCES);
    drop((first, runners));
    (
        after.saturating_sub(before) as f64 / f64::from(INSTANCES),
        linear,
    )
}

fn eddy() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eddy"));
    cmd.env("EDDY_LOG", "warn")
        .env("EDDY_API_LISTEN", "127.0.0.1:0");
    cmd
}

/// A pipeline of unpaced simulated readings → `plugin` (running-count, every record) → stdout.
fn cold_start_pipeline(dir: &Path, plugin: &Path) -> PathBuf {
    let path = dir.join("cold.toml");
    std::fs::write(
        &path,
        format!(
            r#"[sources.ups.sim]
speed = 0
duration_ms = 60_000
ups = [{{ name = "ups-1", cells_per_string = 4 }}]

[operators.counts]
inputs = ["ups"]
plugin = {plugin:?}
params = {{ every = 1 }}

[sinks.out]
inputs = ["counts"]
[sinks.out.stdout]
"#
        ),
    )
    .expect("pipeline");
    path
}

/// Median time from spawning `eddy run` to its first line of output.
fn cold_start(dir: &Path, pipeline: &Path) -> Duration {
    let mut times: Vec<Duration> = (0..STARTS)
        .map(|n| {
            let state = dir.join(format!(
                "state-{}-{n}",
                pipeline.display().to_string().len()
            ));
            let started = Instant::now();
            let mut child = eddy()
                .args(["run", pipeline.to_str().expect("utf-8 path")])
                .env("EDDY_STATE_DIR", &state)
                .stdout(Stdio::piped())
                .spawn()
                .expect("eddy starts");
            let mut line = String::new();
            BufReader::new(child.stdout.take().expect("stdout"))
                .read_line(&mut line)
                .expect("first line");
            let took = started.elapsed();
            assert!(line.contains("\"count\""), "unexpected first line: {line}");
            let _ = child.kill();
            let _ = child.wait();
            took
        })
        .collect();
    times.sort();
    times[STARTS / 2]
}

/// Pauses of `SWAPS` swaps into a running pipeline at 100k records/s, in ms.
fn swap_pauses(dir: &Path) -> Vec<f64> {
    let counts = Path::new("target/plugins/running_count.wasm")
        .canonicalize()
        .expect("plugin");
    let pipeline = dir.join("swap.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"[pipeline]
name = "site"

[sources.ups.sim]
interval_ms = 1000
speed = 100
duration_ms = 3_600_000
ups = [{{ name = "ups-1", strings = 10, cells_per_string = 100 }}]

[operators.counts]
inputs = ["ups"]
plugin = {counts:?}
params = {{ every = 50 }}

[sinks.out]
inputs = ["counts"]
[sinks.out.null]
"#
        ),
    )
    .expect("pipeline");
    let state = dir.join("swap-state");
    let mut child = eddy()
        .args(["run", pipeline.to_str().expect("utf-8 path")])
        .env("EDDY_STATE_DIR", &state)
        .spawn()
        .expect("eddy starts");
    while !state.join("api.json").exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the source reach its pace first.
    std::thread::sleep(Duration::from_secs(1));
    let pauses = (0..SWAPS)
        .map(|_| {
            let out = eddy()
                .args([
                    "plugin",
                    "swap",
                    "site",
                    "counts",
                    counts.to_str().expect("utf-8"),
                ])
                .env("EDDY_STATE_DIR", &state)
                .output()
                .expect("eddy plugin swap");
            let text = String::from_utf8_lossy(&out.stdout);
            text.split("paused ")
                .nth(1)
                .and_then(|t| t.split(" ms").next())
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no pause in {text}"))
        })
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    pauses
}

/// Set in the process that measures one idle-instance case: `PLUGIN,pooled|on-demand`.
const CASE_VAR: &str = "EDDY_BENCH_IDLE_CASE";

/// Measures one idle-instance case in this process; prints
/// `resident linear allocation` on standard output.
fn idle_case(case: &str) {
    let (name, how) = case.split_once(',').expect("PLUGIN,HOW");
    let wasm = match name {
        "window-stats" => std::fs::read("target/plugins/window_stats.wasm")
            .expect("run `cargo xtask guests` first (cargo xtask bench does)"),
        _ => wat::parse_str(MINIMAL).expect("minimal plugin"),
    };
    let engine = if how == "pooled" {
        PluginEngine::for_instances(INSTANCES + 2, 64 << 20, 10_000, Default::default())
            .expect("engine")
    } else {
        PluginEngine::new().expect("engine")
    };
    let (resident, linear) = per_instance(&engine, &wasm, serde_json::json!({}));
    let allocation = match engine.allocation() {
        Allocation::Pooling { .. } => "pooled",
        Allocation::OnDemand => "on-demand",
    };
    println!("{resident} {linear} {allocation}");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).expect("workspace root");
    if let Ok(case) = std::env::var(CASE_VAR) {
        return idle_case(&case);
    }
    let dir = tempfile::tempdir().expect("scratch folder");
    let mut json = serde_json::Map::new();

    println!(
        "resident memory per idle plugin instance ({INSTANCES} instances, address space {} bits)",
        address_space_bits()
    );
    println!("| plugin | memory | resident per instance | linear memory per instance |");
    println!("| --- | --- | --- | --- |");
    for name in ["window-stats", "minimal"] {
        for how in ["pooled", "on-demand"] {
            let out = Command::new(std::env::current_exe().expect("this benchmark"))
                .env(CASE_VAR, format!("{name},{how}"))
                .output()
                .expect("the benchmark runs a case");
            let text = String::from_utf8_lossy(&out.stdout);
            let fields: Vec<&str> = text.split_whitespace().collect();
            let [resident, linear, allocation] = fields[..] else {
                panic!(
                    "case {name},{how}: {text} {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            let (resident, linear): (f64, f64) = (
                resident.parse().expect("resident"),
                linear.parse().expect("linear"),
            );
            println!(
                "| {name} | {allocation} | {:.1} KiB | {:.1} KiB |",
                resident / 1024.0,
                linear / 1024.0
            );
            json.insert(
                format!("idle_instance_{name}_{allocation}"),
                serde_json::json!({ "resident_bytes": resident, "linear_memory_bytes": linear }),
            );
        }
    }

    let counts = Path::new("target/plugins/running_count.wasm")
        .canonicalize()
        .expect("plugin");
    let bundle = dir.path().join("running_count.bundle");
    let out = eddy()
        .args([
            "plugin",
            "precompile",
            counts.to_str().expect("utf-8"),
            "--target",
            PluginEngine::host_target(),
            "--output",
            bundle.to_str().expect("utf-8"),
        ])
        .output()
        .expect("eddy plugin precompile");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let precompiled = cold_start(dir.path(), &cold_start_pipeline(dir.path(), &bundle));
    let compiled = cold_start(dir.path(), &cold_start_pipeline(dir.path(), &counts));
    println!(
        "\ncold start to the first result (median of {STARTS}, `eddy run` spawned → first output line)"
    );
    println!("| plugin | time |");
    println!("| --- | --- |");
    println!(
        "| precompiled bundle | {:.1} ms |",
        precompiled.as_secs_f64() * 1e3
    );
    println!(
        "| .wasm, compiled at start | {:.1} ms |",
        compiled.as_secs_f64() * 1e3
    );
    json.insert(
        "cold_start_precompiled_ms".into(),
        (precompiled.as_secs_f64() * 1e3).into(),
    );
    json.insert(
        "cold_start_wasm_ms".into(),
        (compiled.as_secs_f64() * 1e3).into(),
    );

    let mut pauses = swap_pauses(dir.path());
    pauses.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&pauses, 0.5), percentile(&pauses, 0.99));
    println!(
        "\nhot swap of running-count at 100k records/s ({SWAPS} swaps): pause p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    json.insert("swap_pause_p50_ms".into(), p50.into());
    json.insert("swap_pause_p99_ms".into(), p99.into());

    std::fs::create_dir_all("target/bench").expect("target/bench");
    std::fs::write(
        "target/bench/plugins.json",
        serde_json::to_vec_pretty(&json).expect("json"),
    )
    .expect("target/bench/plugins.json");
}
