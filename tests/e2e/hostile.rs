//! Hostile plugins next to a healthy one: the host survives each, the healthy
//! operator's output is exactly what it is without the hostile one, and the
//! hostile operator's whole input is in the dead-letter log with the reason.

use crate::support::{json_lines, plugin, run_in_folder, toml_path};

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
type = "file"
path = "healthy.jsonl"
inputs = ["stats"]
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
type = "file"
path = "bad.jsonl"
inputs = ["bad"]
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
type = "file"
path = "bad.jsonl"
inputs = ["bad"]
"#,
            hostile = toml_path(&plugin("hostile")),
        );
    // One record per call and no backoff, so that exactly the trapping key's
    // records fail, each in a fresh instance started after the previous trap.
    let text = text.replace("batch_size = 128", "batch_size = 1").replace(
        "restart_backoff_ms = 1",
        "restart_backoff_ms = 0\nquarantine_failures = 0",
    );
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
            .all(|d| d["reason"].as_str().unwrap().contains("trapped: wasm trap"))
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
