//! Hostile plugins next to a healthy one, one at a time: the host survives
//! each, the healthy operator's output is exactly what it is without the
//! hostile one, and the hostile operator's input is in the dead-letter log
//! with the reason. (All of them at once: `hostile_suite`.)

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{
    json_lines, plugin, run, run_in_folder, start, stderr, toml_path, write_wasm,
};

/// Cells × readings: 4 cells for 120 s at one reading a second.
const RECORDS: usize = 4 * 120;

fn pipeline(hostile_mode: Option<&str>) -> String {
    let hostile = plugin("hostile");
    let params = hostile_mode.map(|mode| format!("{{ mode = \"{mode}\" }}"));
    pipeline_with(params.as_deref().map(|p| (hostile.as_path(), p)))
}

/// `text` with `from` changed to `to`, which must be there.
fn edited(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "no `{from}` in the pipeline:\n{text}");
    text.replace(from, to)
}

/// The source and the healthy window operator with its sink (`healthy.jsonl`):
/// simulated cells at `speed` for `duration_ms` of event time, with `extra`
/// settings for the simulation, into the window plugin at `stats`.
pub(crate) fn healthy_graph(stats: &Path, speed: u32, duration_ms: u64, extra: &str) -> String {
    format!(
        r#"
[sources.ups]
bounded_out_of_orderness_ms = 1000
[sources.ups.sim]
seed = 3
start_time_ms = 1_767_225_600_000
speed = {speed}
duration_ms = {duration_ms}
{extra}
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
        stats = toml_path(stats),
    )
}

/// The healthy window operator, and beside it, if given, the plugin at a
/// path with params (an inline TOML table) as operator `bad`.
fn pipeline_with(hostile: Option<(&Path, &str)>) -> String {
    let mut text = String::from(
        r#"[pipeline]
batch_size = 128
dead_letter_path = "dead-letter.jsonl"

[plugins]
deadline_ms = 200
memory_limit_bytes = 16_777_216
output_limit_bytes = 8_388_608
restart_backoff_ms = 1
"#,
    );
    text.push_str(&healthy_graph(
        &plugin("window_stats"),
        0,
        120_000,
        "disorder = { probability = 0.1, max_delay_ms = 800 }",
    ));
    if let Some((path, params)) = hostile {
        text.push_str(&format!(
            r#"
[operators.bad]
inputs = ["ups"]
plugin = {hostile}
params = {params}

[sinks.bad_out]
inputs = ["bad"]
[sinks.bad_out.file]
path = "bad.jsonl"
"#,
            hostile = toml_path(path),
        ));
    }
    text
}

/// Runs a pipeline in a fresh folder; returns (the healthy output's bytes,
/// dead letters).
fn run_pipeline(text: &str) -> (Vec<u8>, Vec<serde_json::Value>) {
    let dir = run_in_folder(text);
    let healthy = std::fs::read(dir.path().join("healthy.jsonl")).unwrap_or_default();
    (healthy, json_lines(&dir.path().join("dead-letter.jsonl")))
}

/// Runs a pipeline in a fresh folder with an info log; returns (the
/// healthy output's bytes, dead letters, the log).
fn run_logged(text: &str) -> (Vec<u8>, Vec<serde_json::Value>, String) {
    let dir = tempfile::tempdir().unwrap();
    let (healthy, dead, log) = run_logged_in(dir.path(), text);
    (healthy, dead, log)
}

/// [`run_logged`] in `dir`, whose state stays there.
fn run_logged_in(dir: &Path, text: &str) -> (Vec<u8>, Vec<serde_json::Value>, String) {
    std::fs::write(dir.join("p.toml"), text).unwrap();
    let out = crate::support::eddy()
        .args(["run", "p.toml"])
        .current_dir(dir)
        .env("EDDY_STATE_DIR", dir.join("state"))
        .env("EDDY_LOG", "info")
        .output()
        .unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let healthy = std::fs::read(dir.join("healthy.jsonl")).unwrap_or_default();
    (healthy, json_lines(&dir.join("dead-letter.jsonl")), log)
}

/// The peak resident memory, in MiB, `eddy run` logged when its pipeline stopped.
pub(crate) fn logged_peak(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("pipeline stopped"))
        .find_map(|l| l.split("peak_resident_mib=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no peak in the log: {log}"))
}

/// The healthy operator's output alone, checked for its size.
fn baseline() -> Vec<u8> {
    let (baseline, none) = run_pipeline(&pipeline(None));
    assert!(none.is_empty(), "the baseline dead-letters nothing");
    assert_eq!(
        baseline
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        4 * 12,
        "4 cells × 12 windows of 10 s (the last one partial)"
    );
    baseline
}

/// Records (or timers) of `node` in dead letters.
fn dead_items(dead: &[serde_json::Value], node: &str, what: &str) -> usize {
    dead.iter()
        .filter(|d| d["node"] == node)
        .map(|d| d[what].as_array().map_or(0, Vec::len))
        .sum()
}

fn check_hostile(mode: &str, reason: &str) {
    check_dead_lettered(&pipeline(Some(mode)), mode, reason);
}

/// Runs `text` (the healthy operator beside `bad`): the healthy output
/// must be as without `bad`, and everything `bad` was given dead-lettered
/// with `reason`.
fn check_dead_lettered(text: &str, mode: &str, reason: &str) {
    let baseline = baseline();
    let (healthy, dead) = run_pipeline(text);
    assert!(
        healthy == baseline,
        "the healthy operator's output is unaffected by `{mode}`"
    );

    let from_bad: Vec<&serde_json::Value> = dead.iter().filter(|d| d["node"] == "bad").collect();
    assert!(!from_bad.is_empty(), "no dead letters from `{mode}`");
    let first = from_bad[0]["reason"].as_str().unwrap();
    assert!(first.contains("plugin `"), "{first}");
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
    let text = edited(&text, "batch_size = 128", "batch_size = 1");
    let text = edited(
        &text,
        "restart_backoff_ms = 1\n",
        "quarantine_failures = 0\n",
    );
    let text = edited(&text, "duration_ms = 120000", "duration_ms = 30000");
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

/// `state_flood` writes 256 KiB under a new key per record. The state cap
/// counts each value as its key, its bytes and 96 bytes: a value of a
/// 256 KiB `Vec<u8>` (postcard: a 3-byte length, then the bytes) under a key
/// like `ups-1/string-1/cell-01-1767225600000` takes 262 280 bytes, so the
/// default 64 MiB holds 255 of them: at most 255 records' calls commit, the
/// rest are dead-lettered naming the cap, and nothing is lost.
#[test]
fn a_state_flood_stops_at_the_state_cap() {
    let key_len = "ups-1/string-1/cell-01-1767225600000".len();
    let entry = 96 + key_len + 3 + (256 << 10);
    let fits = (64usize << 20) / entry;
    assert_eq!(fits, 255);

    let baseline = baseline();
    // A deadline that writing 32 MiB of state in one call does not reach.
    let text = edited(
        &pipeline(Some("state_flood")),
        "deadline_ms = 200",
        "deadline_ms = 5000",
    );
    let dir = tempfile::tempdir().unwrap();
    let (healthy, dead, log) = run_logged_in(dir.path(), &text);
    assert!(
        healthy == baseline,
        "the healthy operator's output is unaffected"
    );
    // The host holds the flood's 64 MiB and writes it to every checkpoint.
    let (_, _, alone) = run_logged(&pipeline(None));
    let (peak, peak_alone) = (logged_peak(&log), logged_peak(&alone));
    println!("peak resident memory {peak_alone} MiB alone, {peak} MiB with the state flood");
    assert!(peak <= peak_alone + 256, "{peak} MiB");
    let dead_records = dead_items(&dead, "bad", "records");
    let committed = RECORDS - dead_records;
    assert!(
        (128..=fits).contains(&committed),
        "{committed} records' state was kept; the first call fits, and the cap holds {fits}"
    );
    // What was not dead-lettered is in the last checkpoint, a key each.
    let kept = run(&["state", "get", "p", "bad"], dir.path());
    assert!(kept.status.success(), "{}", stderr(&kept));
    assert_eq!(crate::support::stdout(&kept).lines().count(), committed);
    let reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("hit its keyed-state cap of 67108864 bytes (`state_limit_bytes`)")),
        "{reasons:?}"
    );
}

/// `timer_flood` sets 1000 timers per record, far in the future, and
/// re-arms every timer that fires as already due. With 64 records a call,
/// at most 100 records' timers fit under the default cap of 100 000; at
/// the end of input they all come due and fire in bounded calls, the
/// re-arming stops after a bounded number of rounds, and the run ends with
/// the healthy output as it was, and no dead-letter line over 1000 items.
#[test]
fn a_timer_flood_stops_at_the_timer_cap_and_fires_in_bounded_calls() {
    let baseline = baseline();
    // A deadline that setting 64 000 timers in one call does not reach,
    // however busy the machine: the cap is what is tested.
    let text = edited(
        &pipeline(Some("timer_flood")),
        "batch_size = 128",
        "batch_size = 64",
    );
    let text = edited(&text, "deadline_ms = 200", "deadline_ms = 5000");
    let (healthy, dead, log) = run_logged(&text);
    assert!(
        healthy == baseline,
        "the healthy operator's output is unaffected"
    );
    let committed = RECORDS - dead_items(&dead, "bad", "records");
    assert!(
        (1..=100).contains(&committed),
        "{committed} records' timers were kept; the cap holds 100"
    );
    assert!(
        dead.iter().any(|d| d["reason"]
            .as_str()
            .unwrap()
            .contains("hit its timer cap of 100000 timers (`timer_limit`)")),
        "{dead:?}"
    );
    assert_eq!(
        dead_items(&dead, "bad", "timers"),
        0,
        "on_timer never fails"
    );
    assert!(
        dead.iter()
            .all(|line| line["records"].as_array().map_or(0, Vec::len) <= 1000),
        "a dead-letter line holds at most 1000 records"
    );
    assert!(
        log.contains("keeps setting timers that are already due"),
        "the bounded rounds are reported: {log}"
    );
}

#[test]
fn an_emit_flood_hits_the_records_per_call_cap() {
    let text = edited(
        &pipeline(Some("emit_flood")),
        "[plugins]\n",
        "[plugins]\nemit_limit_records = 5_000\n",
    );
    let text = edited(&text, "deadline_ms = 200", "deadline_ms = 5000");
    check_dead_lettered(
        &text,
        "emit_flood",
        "emitted more than its output cap of 5000 records in one call (`emit_limit_records`)",
    );
}

/// Grows its table without end.
pub(crate) const TABLE_GROW: &str = r#"
(module
  (@custom "eddy.manifest" "{\"name\":\"table-grower\",\"version\":\"0.1.0\",\"abi_version\":1,\"kind\":\"process\"}")
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (result i32) i32.const 0)
  (func (export "process") (param i32 i32) (result i32)
    (loop $more
      (drop (table.grow $t (ref.null func) (i32.const 1000)))
      (br $more))
    i32.const 0))
"#;

#[test]
fn a_table_growing_without_end_hits_the_table_cap() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = write_wasm(dir.path(), "grower.wasm", TABLE_GROW);
    let text = edited(
        &pipeline_with(Some((&wasm, "{}"))),
        "batch_size = 128",
        "batch_size = 64",
    );
    check_dead_lettered(
        &text,
        "table_grow",
        "hit its table cap of 10000 elements (`table_limit_elements`)",
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
        took < Duration::from_secs(10),
        "eddy took {took:?} to stop: {log}"
    );
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("did not stop within 4 s of the signal"),
        "{log}"
    );
}
