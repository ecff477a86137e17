//! Hot swap under load: a running pipeline fed 100k records/s by the sim gets
//! new plugin versions 20 times, and its output equals a run without swaps;
//! a version that traps on its first batch is rolled back, and the swap
//! reports failure. Also: refusals, and quarantine until a swap or reset.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{
    finish, json_lines, log_tail, metrics, operator, plugin, run, start, status, stderr, stdout,
    toml_path, write_wasm,
};

/// 1000 cells at one reading per second for `events_ms` of event time,
/// `speed` times real time (0: as fast as the pipeline goes).
fn pipeline(events_ms: u64, speed: u32) -> String {
    format!(
        r#"[pipeline]
name = "site"
dead_letter_path = "dead-letter.jsonl"

[checkpoint]
enabled = false

[sources.ups]
[sources.ups.sim]
seed = 11
start_time_ms = 1_767_225_600_000
interval_ms = 1000
speed = {speed}
duration_ms = {events_ms}
ups = [{{ name = "ups-1", strings = 10, cells_per_string = 100 }}]

[operators.counts]
inputs = ["ups"]
plugin = {counts}
params = {{ every = 50 }}

[operators.stats]
inputs = ["ups"]
plugin = {stats}
params = {{ fields = ["temperature"] }}
window.tumbling = {{ size_ms = 60_000 }}

[sinks.counts_out]
inputs = ["counts"]
[sinks.counts_out.file]
path = "counts.jsonl"

[sinks.stats_out]
inputs = ["stats"]
[sinks.stats_out.file]
path = "stats.jsonl"
"#,
        counts = toml_path(&plugin("running_count")),
        stats = toml_path(&plugin("window_stats")),
    )
}

/// `running-count` with another version number and otherwise the same code.
fn running_count_version(dir: &Path, version: &str) -> PathBuf {
    let bytes = std::fs::read(plugin("running_count")).unwrap();
    let (from, to) = (
        br#""version":"0.1.0""#.as_slice(),
        format!(r#""version":"{version}""#),
    );
    assert_eq!(from.len(), to.len(), "same length, so nothing moves");
    let mut patched = bytes.clone();
    let mut n = 0;
    for i in 0..bytes.len() - from.len() {
        if &bytes[i..i + from.len()] == from {
            patched[i..i + from.len()].copy_from_slice(to.as_bytes());
            n += 1;
        }
    }
    assert!(n > 0, "the manifest names version 0.1.0");
    let path = dir.join(format!("running_count-{version}.wasm"));
    std::fs::write(&path, patched).unwrap();
    path
}

/// A "new version" of `running-count` that traps on every batch.
const TRAPS_ON_FIRST_BATCH: &str = r#"
(module
  (@custom "eddy.manifest" "{\"name\":\"running-count\",\"version\":\"0.2.0-broken\",\"abi_version\":1,\"kind\":\"process\",\"state_version\":1}")
  (memory (export "memory") 2)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (result i32) i32.const 0)
  (func (export "snapshot") (result i32) i32.const 0)
  (func (export "restore") (param i32 i32) (result i32) i32.const 0)
  (func (export "process") (param i32 i32) (result i32) unreachable))
"#;

/// A process plugin that takes everything and emits nothing.
const CALM: &str = r#"
(module
  (@custom "eddy.manifest" "{\"name\":\"calm\",\"version\":\"1.0.0\",\"abi_version\":1,\"kind\":\"process\"}")
  (memory (export "memory") 2)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (result i32) i32.const 0)
  (func (export "process") (param i32 i32) (result i32) i32.const 0))
"#;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn twenty_swaps_under_load_lose_nothing_and_a_broken_version_is_rolled_back() {
    let events_ms = 3_000_000;
    let baseline = tempfile::tempdir().unwrap();
    std::fs::write(baseline.path().join("p.toml"), pipeline(events_ms, 0)).unwrap();
    finish(start(baseline.path()), baseline.path());
    let expected_counts = json_lines(&baseline.path().join("counts.jsonl"));
    let expected_stats = json_lines(&baseline.path().join("stats.jsonl"));
    let records = 1000 * events_ms / 1000;
    assert_eq!(expected_counts.len() as u64, records / 50);

    let dir = tempfile::tempdir().unwrap();
    // 100k records/s for 30 s, for 21 swaps that take up to a second each
    // on a busy machine: all of them while records flow.
    std::fs::write(dir.path().join("p.toml"), pipeline(events_ms, 100)).unwrap();
    let versions = [
        running_count_version(dir.path(), "0.1.1"),
        running_count_version(dir.path(), "0.1.0"),
    ];
    let broken = write_wasm(dir.path(), "broken.wasm", TRAPS_ON_FIRST_BATCH);
    let child = start(dir.path());
    let mut pauses = Vec::new();
    let swapping = Instant::now();
    for n in 0..20 {
        let file = versions[n % 2].to_str().unwrap();
        let out = run(&["plugin", "swap", "site", "counts", file], dir.path());
        assert!(
            out.status.success(),
            "swap {n}: {}\nthe server's log:\n{}",
            stderr(&out),
            log_tail(dir.path())
        );
        let text = stdout(&out);
        assert!(text.contains("passed probation"), "{text}");
        let pause: f64 = text
            .split("paused ")
            .nth(1)
            .and_then(|t| t.split(" ms").next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no pause in {text}"));
        pauses.push(pause);
    }
    let out = run(
        &["plugin", "swap", "site", "counts", broken.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "a rollback is a failed swap");
    let error = stderr(&out);
    assert!(error.contains("rolled back"), "{error}");
    assert!(error.contains("wasm trap"), "{error}");
    let during = status(dir.path());
    eprintln!(
        "21 swaps in {:.1} s; the source runs for {} s",
        swapping.elapsed().as_secs_f64(),
        events_ms / 100_000
    );
    let counts = operator(&during, "counts");
    assert_eq!(counts["swaps"], 20);
    assert_eq!(counts["rollbacks"], 1);
    assert_eq!(counts["version"], "0.1.0", "the old version is back");
    let source = &during["sources"][0];
    assert!(
        !source["ended"].as_bool().unwrap(),
        "all swaps happened while the source was still running"
    );
    finish(child, dir.path());

    assert_eq!(
        json_lines(&dir.path().join("counts.jsonl")),
        expected_counts,
        "the swapped operator's output equals the run without swaps"
    );
    assert_eq!(
        json_lines(&dir.path().join("stats.jsonl")),
        expected_stats,
        "the other operator's output is untouched"
    );
    assert!(
        json_lines(&dir.path().join("dead-letter.jsonl")).is_empty(),
        "the broken version's batch was made again by the old one, not dead-lettered"
    );
    pauses.sort_by(f64::total_cmp);
    println!(
        "pause per swap over {} swaps: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pauses.len(),
        percentile(&pauses, 0.5),
        percentile(&pauses, 0.99),
        pauses[pauses.len() - 1]
    );
}

#[test]
fn swaps_the_host_cannot_honour_are_refused_and_the_pipeline_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    // 10 s of records, for seven requests that must all find it running.
    std::fs::write(dir.path().join("p.toml"), pipeline(1_000_000, 100)).unwrap();
    let calm = write_wasm(dir.path(), "calm.wasm", CALM);
    let child = start(dir.path());
    let swap = |operator: &str, file: &Path, extra: &[&str]| {
        let mut args = vec!["plugin", "swap", "site", operator, file.to_str().unwrap()];
        args.extend_from_slice(extra);
        run(&args, dir.path())
    };
    // Another kind of plugin for a window operator.
    let out = swap("stats", &calm, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("process plugin"), "{}", stderr(&out));
    // state_version 0 where the state has version 1; then the memory snapshot.
    let out = swap("counts", &calm, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("state_version 0"), "{}", stderr(&out));
    // An operator that does not exist; a file that is not a plugin.
    let out = swap("nope", &calm, &[]);
    assert!(
        stderr(&out).contains("no operator `nope`"),
        "{}",
        stderr(&out)
    );
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let out = swap("counts", &junk, &[]);
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    // Without the token, the API refuses.
    let out = run(&["--api-token", "guess", "status"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("HTTP 401: missing or wrong bearer token"),
        "{}",
        stderr(&out)
    );
    // With a state reset, a plugin of another state version goes in.
    let out = swap("counts", &calm, &["--reset-state"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let now = status(dir.path());
    assert_eq!(operator(&now, "counts")["plugin"], "calm");
    finish(child, dir.path());
}

#[test]
fn a_plugin_that_keeps_failing_is_quarantined_until_swapped_or_reset() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"[pipeline]
name = "site"
batch_size = 16
dead_letter_path = "dead-letter.jsonl"

[plugins]
restart_backoff_ms = 1
max_restart_backoff_ms = 1
quarantine_failures = 5
quarantine_window_ms = 60_000

[checkpoint]
enabled = false

[sources.ups]
[sources.ups.sim]
seed = 5
start_time_ms = 1_767_225_600_000
speed = 40
duration_ms = 400_000
ups = [{{ name = "ups-1", cells_per_string = 4 }}]

[operators.bad]
inputs = ["ups"]
plugin = {hostile}
params = {{ mode = "trap" }}

[operators.good]
inputs = ["ups"]
plugin = {hostile}
params = {{ mode = "echo" }}

[sinks.out]
inputs = ["good"]
[sinks.out.file]
path = "good.jsonl"
"#,
        hostile = toml_path(&plugin("hostile")),
    );
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let child = start(dir.path());
    let wait_for = |what: &str, check: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = status(dir.path());
            if check(operator(&now, "bad")) {
                return now;
            }
            assert!(Instant::now() < deadline, "never {what}: {now}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let quarantined = wait_for("quarantined", &|o| o["state"] == "quarantined");
    let bad = operator(&quarantined, "bad");
    assert!(
        bad["quarantined"]
            .as_str()
            .unwrap()
            .contains("5 failures within 60 s"),
        "{bad}"
    );
    assert_eq!(operator(&quarantined, "good")["state"], "running");
    let out = run(&["status"], dir.path());
    assert!(
        stdout(&out).contains("plugin memory pooled (6 slots) (address space 4"),
        "two operators: a pool of 2 × 2 + 2 slots fits: {}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("quarantined: plugin"),
        "{}",
        stdout(&out)
    );

    // The counters, as Prometheus scrapes them.
    let metrics = metrics(dir.path());
    assert!(
        metrics.contains(r#"eddy_plugin_quarantines_total{operator="bad"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"eddy_plugin_failures_total{operator="bad"} 5"#),
        "{metrics}"
    );
    // Reset: it runs again, fails again, and is quarantined again.
    let out = run(&["plugin", "reset", "site", "bad"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("quarantined again", &|o| {
        o["state"] == "quarantined" && o["faults"].as_u64().unwrap() >= 10
    });
    // A swap to a version that works lifts it for good.
    let calm = write_wasm(dir.path(), "calm.wasm", CALM);
    let out = run(
        &["plugin", "swap", "site", "bad", calm.to_str().unwrap()],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let swapped = wait_for("running", &|o| o["state"] == "running");
    let dead_before = operator(&swapped, "bad")["dead_lettered"].as_u64().unwrap();
    finish(child, dir.path());

    let dead = json_lines(&dir.path().join("dead-letter.jsonl"));
    let reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert!(reasons.iter().any(|r| r.contains("trapped")));
    assert!(reasons.iter().any(|r| r.contains("is quarantined after")));
    let dead_records: u64 = dead
        .iter()
        .map(|d| d["records"].as_array().unwrap().len() as u64)
        .sum();
    assert_eq!(
        dead_records, dead_before,
        "after the swap, nothing more of `bad` was dead-lettered"
    );
    let good = json_lines(&dir.path().join("good.jsonl"));
    assert_eq!(
        good.len(),
        4 * 400,
        "the healthy operator passed every record"
    );
}

#[test]
fn a_kept_swap_survives_a_restart_until_the_pipeline_file_deploys_another_version() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("p.toml"), pipeline(300_000, 100)).unwrap();
    let newer = running_count_version(d, "0.1.1");
    let child = start(d);
    let out = run(
        &["plugin", "swap", "site", "counts", newer.to_str().unwrap()],
        d,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    finish(child, d);

    // A restart runs the swapped-in version, not the file's.
    let out = crate::support::run_logged(&["run", "p.toml"], d);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("running the plugin version swapped in before") && log.contains("0.1.1"),
        "{log}"
    );

    // Once the file names another plugin, the file wins.
    let deployed = running_count_version(d, "0.1.2");
    let text =
        pipeline(300_000, 100).replace(&toml_path(&plugin("running_count")), &toml_path(&deployed));
    std::fs::write(d.join("p.toml"), text).unwrap();
    let out = crate::support::run_logged(&["run", "p.toml"], d);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("the pipeline file's plugin changed since a swap; running the file's"),
        "{log}"
    );
    assert!(
        !log.contains("running the plugin version swapped in before"),
        "{log}"
    );
}

#[test]
fn a_version_that_passes_probation_after_the_answer_gave_up_is_kept_all_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = pipeline(300_000, 100).replace(
        "[checkpoint]",
        "[api]\nswap_wait_ms = 1\n[plugins]\nprobation_calls = 50\n\n[checkpoint]",
    );
    std::fs::write(d.join("p.toml"), text).unwrap();
    let newer = running_count_version(d, "0.1.1");
    let child = start(d);
    let out = run(
        &["plugin", "swap", "site", "counts", newer.to_str().unwrap()],
        d,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("on probation"), "{}", stdout(&out));
    finish(child, d);
    let log = std::fs::read_to_string(d.join("eddy.log")).unwrap();
    assert!(log.contains("passed its probation"), "{log}");

    // The restart runs it.
    let out = crate::support::run_logged(&["run", "p.toml"], d);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("running the plugin version swapped in before") && log.contains("0.1.1"),
        "{log}"
    );
}
