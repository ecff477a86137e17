//! The local API under a storm of requests: how fast a real `eddy run`
//! (release build) takes records in, measured from `GET /status`, in quiet
//! one-second spans and in one-second spans during which 100 clients, each
//! on a connection it keeps and every third without the token, ask for
//! `/status` as fast as they are answered. The clients run on one thread at
//! the lowest priority: they stand in for other machines. Spans alternate,
//! five of each, so that drift affects both alike; the medians are printed
//! and written to `target/bench/api.json`.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[path = "../../tests/e2e/storm.rs"]
mod storm;
use storm::storm;

/// An unpaced simulation into window statistics.
const PIPELINE: &str = r#"[pipeline]
name = "site"
[checkpoint]
enabled = false
[sources.ups.sim]
speed = 0
interval_ms = 1000
ups = [{ name = "ups-1", strings = 10, cells_per_string = 100 }]
[operators.stats]
inputs = ["ups"]
plugin = "PLUGIN"
window.tumbling = { size_ms = 60_000 }
[sinks.none]
inputs = ["stats"]
[sinks.none.null]
"#;

/// The running eddy, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /status` with the token; the records the source has taken in.
fn records(url: &str, token: &str) -> u64 {
    let body = ureq::get(format!("{url}/status"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .expect("status")
        .into_body()
        .read_to_string()
        .expect("status body");
    let body: serde_json::Value = serde_json::from_str(&body).expect("status json");
    body["sources"][0]["records"].as_u64().expect("records")
}

/// Records per second over `span`.
fn rate(url: &str, token: &str, span: Duration) -> f64 {
    let (t0, r0) = (Instant::now(), records(url, token));
    std::thread::sleep(span);
    let (t1, r1) = (Instant::now(), records(url, token));
    (r1 - r0) as f64 / (t1 - t0).as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).expect("workspace root");
    let plugin = root.join("target/plugins/window_stats.wasm");
    assert!(
        plugin.exists(),
        "run `cargo xtask guests` first (cargo xtask bench does)"
    );
    let dir = tempfile::tempdir().expect("temporary folder");
    let text = PIPELINE.replace("PLUGIN", &plugin.display().to_string());
    std::fs::write(dir.path().join("p.toml"), text).expect("pipeline file");
    let child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["run", "p.toml"])
        .current_dir(dir.path())
        .env("EDDY_STATE_DIR", dir.path().join("state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("eddy starts");
    let _running = Running(child);
    let endpoint = dir.path().join("state/api.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !endpoint.exists() {
        assert!(Instant::now() < deadline, "the API never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let endpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&endpoint).expect("api.json")).expect("json");
    let url = endpoint["url"].as_str().expect("url").to_owned();
    let address = url.trim_start_matches("http://").to_owned();
    let token = std::fs::read_to_string(dir.path().join("state/api.token")).expect("token");
    let token = token.trim();
    rate(&url, token, Duration::from_millis(500));
    let (mut quiet, mut stormy, mut answers) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        quiet.push(rate(&url, token, Duration::from_secs(1)));
        stormy.push(std::thread::scope(|scope| {
            let load = scope.spawn(|| storm(&address, token, Duration::from_millis(1400), true));
            std::thread::sleep(Duration::from_millis(200));
            let measured = rate(&url, token, Duration::from_secs(1));
            let (with, without) = load.join().expect("storm");
            answers.push((with, without));
            measured
        }));
    }
    let (quiet, stormy) = (median(quiet), median(stormy));
    let total: u64 = answers.iter().map(|(w, o)| w.total() + o.total()).sum();
    let served: u64 = answers.iter().map(|(w, o)| w.ok + o.refused).sum();
    let busy: u64 = answers.iter().map(|(w, o)| w.busy + o.busy).sum();
    let wrong: u64 = answers
        .iter()
        .map(|(w, o)| w.refused + w.other + o.ok + o.other)
        .sum();
    assert_eq!(wrong, 0, "answers that do not fit the token: {answers:?}");
    println!(
        "local API storm: 100 clients, every third without the token, {total} answers: {served} served (200 or 401), {busy} told to come back (429 or 503)"
    );
    println!("| pipeline | records/s |");
    println!("| --- | --- |");
    println!("| quiet | {quiet:.0} |");
    println!("| under the storm | {stormy:.0} ({:.2}×) |", stormy / quiet);
    let json = serde_json::json!({
        "clients": 100,
        "answers": total,
        "served": served,
        "busy": busy,
        "quiet_records_per_s": quiet,
        "storm_records_per_s": stormy,
        "ratio": stormy / quiet,
    });
    std::fs::create_dir_all("target/bench").expect("target/bench");
    std::fs::write(
        "target/bench/api.json",
        serde_json::to_string_pretty(&json).expect("json"),
    )
    .expect("write target/bench/api.json");
    println!("wrote target/bench/api.json");
}
