//! Running `eddy run` from the benchmarks that drive brokers (MQTT, Kafka):
//! the command, its status, and plugin paths.

use std::path::Path;
use std::process::{Command, Stdio};

/// `eddy run p.toml` in `dir` with `pipeline` written there, its log in
/// `dir/eddy.log` (filter: `EDDY_BENCH_LOG`, else `info`).
pub(crate) fn eddy(dir: &Path, pipeline: &str) -> Command {
    eddy_of(Path::new(env!("CARGO_BIN_EXE_eddy")), dir, pipeline)
}

/// [`eddy`] with another build of it.
pub(crate) fn eddy_of(binary: &Path, dir: &Path, pipeline: &str) -> Command {
    std::fs::write(dir.join("p.toml"), pipeline).expect("pipeline");
    let mut cmd = Command::new(binary);
    cmd.args(["run", "p.toml"])
        .current_dir(dir)
        .env("EDDY_STATE_DIR", dir.join("state"))
        .env(
            "EDDY_LOG",
            std::env::var("EDDY_BENCH_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("eddy.log")).expect("log"));
    cmd
}

/// `eddy status --json` of the run whose state is in `dir/state`.
pub(crate) fn status(dir: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["status", "--json"])
        .env("EDDY_STATE_DIR", dir.join("state"))
        .output()
        .expect("eddy status");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// A guest plugin's path, quoted for a pipeline file.
pub(crate) fn plugin(root: &Path, name: &str) -> String {
    format!(
        "{:?}",
        root.join(format!("target/plugins/{name}.wasm"))
            .display()
            .to_string()
    )
}

/// The seeds' job after a source named `sensors`: 1 s window stats and
/// threshold alerts into `[sinks.uplink]` (alerts first), whose kind table
/// the caller adds.
pub(crate) fn seeds_job(root: &Path) -> String {
    format!(
        r#"[operators.stats]
inputs = ["sensors"]
plugin = {stats}
params = {{ fields = ["temperature"] }}
window.tumbling = {{ size_ms = 1000 }}
[operators.alerts]
inputs = ["stats"]
plugin = {alert}
params = {{ field = "temperature_max", threshold = 29.0, within_ms = 2000, clear_below = 25.0 }}
[sinks.uplink]
inputs = ["stats", "alerts"]
outbox = {{ priorities = ["alerts"] }}
"#,
        stats = plugin(root, "window_stats"),
        alert = plugin(root, "threshold_alert"),
    )
}

/// Ten simulated UPS of 2 strings of 8 cells (160 readings every 100 ms of
/// event time), as fast as the pipeline takes them, for `duration_ms`.
pub(crate) fn ten_ups(duration_ms: u64) -> String {
    format!(
        r#"[sources.ups]
[sources.ups.sim]
seed = 3
interval_ms = 100
speed = 0
start_time_ms = 1_767_225_600_000
duration_ms = {duration_ms}
ups = [{{ name = "u", strings = 2, cells_per_string = 8 }}, {{ name = "v", strings = 2, cells_per_string = 8 }}, {{ name = "w", strings = 2, cells_per_string = 8 }}, {{ name = "x", strings = 2, cells_per_string = 8 }}, {{ name = "y", strings = 2, cells_per_string = 8 }}, {{ name = "z", strings = 2, cells_per_string = 8 }}, {{ name = "a", strings = 2, cells_per_string = 8 }}, {{ name = "b", strings = 2, cells_per_string = 8 }}, {{ name = "c", strings = 2, cells_per_string = 8 }}, {{ name = "d", strings = 2, cells_per_string = 8 }}]
"#
    )
}

/// A source that gives nothing (an empty file written into `dir`), for a
/// run that only delivers what its outbox holds.
pub(crate) fn no_input(dir: &Path) -> String {
    std::fs::write(dir.join("empty.jsonl"), "").expect("empty input");
    "[sources.ups]\n[sources.ups.file]\npath = \"empty.jsonl\"\n".into()
}
