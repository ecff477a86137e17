//! Hostile plugins next to a healthy one: the host survives each, the healthy
//! operator's output is exactly what it is without the hostile one, and the
//! hostile operator's whole input is in the dead-letter log with the reason.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::abi::{MISSING_EXPORT, UNKNOWN_IMPORT, WRONG_ABI};
use crate::support::{
    finish, json_lines, operator, plugin, run, run_in_folder, sign, start, status, stderr,
    toml_path, write_wasm,
};

/// Cells × readings: 4 cells for 120 s at one reading a second.
const RECORDS: usize = 4 * 120;

fn pipeline(hostile_mode: Option<&str>) -> String {
    let mut text = format!(
        r#"[pipeline]
batch_size = 128
dead_letter_path = "dead-letter.jsonl"

[plugins]
deadline_ms = 200
memory_limit_bytes = 16_777_216
output_limit_bytes = 8_388_608
restart_backoff_ms = 1

[sources.ups]
bounded_out_of_orderness_ms = 1000
[sources.ups.sim]
seed = 3
start_time_ms = 1_767_225_600_000
speed = 0
duration_ms = 120_000
disorder = {{ probability = 0.1, max_delay_ms = 800 }}
ups = [{{ name = "ups-1", cells_per_string = 4 }}]

[operators.stats]
inputs = ["ups"]
plugin = {stats}
window.tumbling = {{ size_ms = 10_000 }}

[sinks.healthy]
inputs = ["stats"]
[sinks.healthy.file]
path = "healthy.jsonl"
"#,
        stats = toml_path(&plugin("window_stats")),
    );
    if let Some(mode) = hostile_mode {
        text.push_str(&format!(
            r#"
[operators.bad]
inputs = ["ups"]
plugin = {hostile}
params = {{ mode = "{mode}" }}

[sinks.bad_out]
inputs = ["bad"]
[sinks.bad_out.file]
path = "bad.jsonl"
"#,
            hostile = toml_path(&plugin("hostile")),
        ));
    }
    text
}

/// Runs a pipeline in a fresh folder; returns (healthy output, dead letters).
fn run_pipeline(text: &str) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let dir = run_in_folder(text);
    let read = |name: &str| json_lines(&dir.path().join(name));
    (read("healthy.jsonl"), read("dead-letter.jsonl"))
}

fn check_hostile(mode: &str, reason: &str) {
    let (baseline, none) = run_pipeline(&pipeline(None));
    assert!(none.is_empty(), "the baseline dead-letters nothing");
    assert_eq!(
        baseline.len(),
        4 * 12,
        "4 cells × 12 windows of 10 s (the last one partial)"
    );

    let (healthy, dead) = run_pipeline(&pipeline(Some(mode)));
    assert_eq!(
        healthy, baseline,
        "the healthy operator's output is unaffected by `{mode}`"
    );

    let from_bad: Vec<&serde_json::Value> = dead.iter().filter(|d| d["node"] == "bad").collect();
    assert!(!from_bad.is_empty(), "no dead letters from `{mode}`");
    let first = from_bad[0]["reason"].as_str().unwrap();
    assert!(first.contains("plugin `hostile`"), "{first}");
    assert!(
        first.contains(reason),
        "`{mode}`: expected {reason:?} in {first:?}"
    );
    let records: usize = from_bad
        .iter()
        .map(|d| d["records"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(
        records, RECORDS,
        "every record the hostile operator was given is in the dead-letter log"
    );
    assert!(
        dead.iter().all(|d| d["node"] == "bad"),
        "only the hostile operator dead-letters"
    );
}

#[test]
fn a_plugin_that_traps_on_one_key_is_restarted_and_loses_nothing() {
    let text = pipeline(None)
        + &format!(
            r#"
[operators.bad]
inputs = ["ups"]
plugin = {hostile}
params = {{ mode = "trap", only_key = "ups-1/string-1/cell-02" }}

[sinks.bad_out]
inputs = ["bad"]
[sinks.bad_out.file]
path = "bad.jsonl"
"#,
            hostile = toml_path(&plugin("hostile")),
        );
    // One record per call, so that exactly the trapping key's records fail;
    // the default restart backoff (100 ms, doubling while faults come in a
    // row): what arrives while the plugin waits is held for the fresh
    // instance, not dead-lettered. 30 s of readings keep the test short.
    let text = text
        .replace("batch_size = 128", "batch_size = 1")
        .replace("restart_backoff_ms = 1\n", "quarantine_failures = 0\n")
        .replace("duration_ms = 120_000", "duration_ms = 30_000");
    const RECORDS: usize = 4 * 30;
    let dir = run_in_folder(&text);
    let passed = json_lines(&dir.path().join("bad.jsonl"));
    let dead = json_lines(&dir.path().join("dead-letter.jsonl"));

    let dead_records: Vec<&serde_json::Value> = dead
        .iter()
        .flat_map(|d| d["records"].as_array().unwrap().iter())
        .collect();
    assert_eq!(
        passed.len(),
        RECORDS / 4 * 3,
        "every record of the three other cells passes"
    );
    assert!(passed.iter().all(|r| r["key"] != "ups-1/string-1/cell-02"));
    assert_eq!(
        dead_records.len(),
        RECORDS / 4,
        "every record of the trapping cell is dead-lettered"
    );
    assert!(
        dead_records
            .iter()
            .all(|r| r["key"] == "ups-1/string-1/cell-02")
    );
    assert!(
        dead.iter()
            .all(|d| d["reason"].as_str().unwrap().contains("trapped: wasm trap")),
        "only the calls that trapped are dead-lettered: {dead:?}"
    );
}

#[test]
fn an_infinite_loop_is_stopped_by_the_deadline() {
    check_hostile("loop", "ran past its deadline of 200 ms");
}

#[test]
fn a_memory_grow_bomb_hits_the_memory_cap() {
    check_hostile("grow", "hit its memory cap of 16777216 bytes");
}

#[test]
fn an_unreachable_trap_is_caught() {
    check_hostile(
        "trap",
        "trapped: wasm trap: wasm `unreachable` instruction executed",
    );
}

#[test]
fn a_gigabyte_emit_hits_the_output_cap() {
    check_hostile(
        "emit_gigabyte",
        "emitted more than its output cap of 8388608 bytes",
    );
}

#[test]
fn deep_recursion_overflows_the_stack_and_is_caught() {
    check_hostile("recurse", "trapped: wasm trap: call stack exhausted");
}

#[test]
fn an_out_of_bounds_pointer_to_a_host_call_is_refused() {
    check_hostile(
        "bad_pointer",
        "handed `emit` an out-of-bounds range (ptr 4293918720, len 4096)",
    );
}

#[test]
fn an_error_return_is_dead_lettered_with_the_plugin_reason() {
    check_hostile("fail", "returned an error: hostile plugin fails on purpose");
}

/// Imports keyed state without declaring (or being granted) any.
const UNGRANTED_IMPORT: &str = r#"
(module
  (@custom "eddy.manifest" "{\"name\":\"sneaky\",\"version\":\"0.1.0\",\"abi_version\":1,\"kind\":\"process\"}")
  (import "eddy" "state_get" (func (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (result i32) i32.const 0)
  (func (export "process") (param i32 i32) (result i32) i32.const 0))
"#;

/// Every runtime mode of the hostile plugin at once.
const MODES: [&str; 7] = [
    "loop",
    "grow",
    "trap",
    "emit_gigabyte",
    "recurse",
    "bad_pointer",
    "fail",
];

/// The pipeline of the whole suite: a healthy `window-stats` next to one
/// hostile operator per mode, every plugin a bundle signed by `site.key`.
fn suite_pipeline(dir: &Path, speed: u32, with_hostile: bool) -> String {
    let bundle = |wasm: &Path, name: &str| sign(dir, wasm, "site.key", name);
    let mut text = format!(
        r#"[pipeline]
name = "site"
batch_size = 64
dead_letter_path = "dead-letter.jsonl"

[trust]
keys = ["site.pub"]

[plugins]
deadline_ms = 200
memory_limit_bytes = 16_777_216
output_limit_bytes = 8_388_608
restart_backoff_ms = 1
max_restart_backoff_ms = 1

[checkpoint]
enabled = false

[sources.ups]
bounded_out_of_orderness_ms = 1000
[sources.ups.sim]
seed = 3
start_time_ms = 1_767_225_600_000
speed = {speed}
duration_ms = 300_000
ups = [{{ name = "ups-1", cells_per_string = 4 }}]

[operators.stats]
inputs = ["ups"]
plugin = {stats}
window.tumbling = {{ size_ms = 10_000 }}

[sinks.healthy]
inputs = ["stats"]
[sinks.healthy.file]
path = "healthy.jsonl"
"#,
        stats = toml_path(&bundle(&plugin("window_stats"), "stats")),
    );
    if with_hostile {
        let hostile = bundle(&plugin("hostile"), "hostile");
        for mode in MODES {
            text.push_str(&format!(
                "\n[operators.{mode}]\ninputs = [\"ups\"]\nplugin = {}\nparams = {{ mode = \"{mode}\" }}\n",
                toml_path(&hostile)
            ));
        }
    }
    text
}

#[test]
fn the_whole_suite_next_to_a_healthy_plugin_leaves_it_and_the_memory_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(run(&["keys", "gen", "site"], d).status.success());

    // The healthy operator alone, unpaced: its expected output.
    std::fs::write(d.join("p.toml"), suite_pipeline(d, 0, false)).unwrap();
    assert!(run(&["run", "p.toml"], d).status.success());
    let expected = json_lines(&d.join("healthy.jsonl"));
    assert_eq!(expected.len(), 4 * 30);
    std::fs::remove_file(d.join("healthy.jsonl")).unwrap();
    std::fs::remove_dir_all(d.join("state")).unwrap();

    // With every hostile mode, paced so that the run lasts 15 s.
    std::fs::write(d.join("p.toml"), suite_pipeline(d, 20, true)).unwrap();
    let child = start(d);
    let at_start = status(d)["resident_bytes"].as_u64().unwrap();

    // The plugins that must not load, offered as swaps to a running operator.
    let signed = |name: &str, wat: &str| {
        let wasm = write_wasm(d, &format!("{name}.wasm"), wat);
        sign(d, &wasm, "site.key", name)
    };
    let mut tampered = std::fs::read(d.join("hostile.bundle")).unwrap();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x40;
    std::fs::write(d.join("tampered.bundle"), tampered).unwrap();
    let refusals = [
        (
            signed("old", WRONG_ABI),
            "built for eddy ABI version 99, but this host speaks ABI version 1",
        ),
        (signed("half", MISSING_EXPORT), "lacks the export `process`"),
        (
            signed("nosy", UNKNOWN_IMPORT),
            "imports what this host does not provide",
        ),
        (
            signed("sneaky", UNGRANTED_IMPORT),
            "imports `state_get`, which needs keyed state",
        ),
        (
            d.join("tampered.bundle"),
            "does not verify: the bundle was altered after it was signed",
        ),
    ];
    for (bundle, reason) in &refusals {
        let out = run(
            &["plugin", "swap", "site", "trap", bundle.to_str().unwrap()],
            d,
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(reason),
            "expected {reason:?} in {}",
            stderr(&out)
        );
    }

    // Every operator that traps keeps failing until it is quarantined (a
    // clean error return is not a trap: `fail` keeps being called).
    let deadline = Instant::now() + Duration::from_secs(60);
    let during = loop {
        let now = status(d);
        if MODES
            .iter()
            .filter(|m| **m != "fail")
            .all(|m| operator(&now, m)["state"] == "quarantined")
        {
            break now;
        }
        assert!(Instant::now() < deadline, "not all quarantined: {now}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(operator(&during, "stats")["state"], "running");
    assert_eq!(operator(&during, "stats")["faults"], 0);
    let at_end = during["resident_bytes"].as_u64().unwrap();
    finish(child, d);

    assert_eq!(
        json_lines(&d.join("healthy.jsonl")),
        expected,
        "the healthy operator's output is unaffected by the suite"
    );
    let dead = json_lines(&d.join("dead-letter.jsonl"));
    for (mode, reason) in [
        ("loop", "ran past its deadline"),
        ("grow", "hit its memory cap"),
        ("trap", "wasm `unreachable` instruction executed"),
        ("emit_gigabyte", "emitted more than its output cap"),
        ("recurse", "call stack exhausted"),
        ("bad_pointer", "handed `emit` an out-of-bounds range"),
        ("fail", "returned an error"),
    ] {
        assert!(
            dead.iter()
                .any(|e| e["node"] == mode && e["reason"].as_str().unwrap().contains(reason)),
            "no dead letter of `{mode}` with {reason:?}"
        );
    }
    let growth = at_end as f64 / at_start as f64 - 1.0;
    println!(
        "resident memory: {:.1} MiB at start, {:.1} MiB after the suite ({:+.1} %)",
        at_start as f64 / (1 << 20) as f64,
        at_end as f64 / (1 << 20) as f64,
        growth * 100.0
    );
    assert!(
        growth <= 0.10,
        "resident memory grew by {:.1} % over the suite",
        growth * 100.0
    );
}

#[test]
fn a_stop_signal_ends_the_run_in_seconds_even_inside_a_long_plugin_call() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"[pipeline]
shutdown_timeout_ms = 1000
[sources.ups.sim]
speed = 0
ups = [{{ name = "ups-1", cells_per_string = 4 }}]
[operators.bad]
inputs = ["ups"]
plugin = {hostile}
params = {{ mode = "loop" }}
deadline_ms = 600_000
[sinks.out]
inputs = ["bad"]
[sinks.out.null]
"#,
        hostile = toml_path(&plugin("hostile")),
    );
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let mut child = start(dir.path());
    // The plugin loops in its first call, for up to ten minutes.
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    // SAFETY: kill(2) with a pid this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = signalled + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("eddy was still running 30 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = signalled.elapsed();
    let log = std::fs::read_to_string(dir.path().join("eddy.log")).unwrap();
    assert!(
        took < Duration::from_secs(6),
        "eddy took {took:?} to stop: {log}"
    );
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("did not stop within 4 s of the signal"),
        "{log}"
    );
}
