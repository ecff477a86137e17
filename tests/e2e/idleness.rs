//! An idle input stops holding back the watermark, then counts again when it
//! resumes (Flink's `withIdleness`). Paced by the wall clock, so this test
//! takes a few seconds; its margins are hundreds of milliseconds.

use crate::support::{json_lines, plugin, run_in_folder, toml_path};

const START: i64 = 1_767_225_600_000;

/// Two cells read every second; a room sensor is silent from 10 s to 45 s
/// and then sends the readings it kept. Simulated time runs 10× the wall clock.
fn pipeline(idle_timeout: Option<u64>) -> String {
    let idle = idle_timeout.map_or(String::new(), |ms| format!("idle_timeout_ms = {ms}"));
    format!(
        r#"[pipeline]
dead_letter_path = "dead-letter.jsonl"

[sources.cells]
bounded_out_of_orderness_ms = 1000
[sources.cells.sim]
start_time_ms = {START}
speed = 10
duration_ms = 60_000
ups = [{{ name = "ups-1", cells_per_string = 2 }}]

[sources.room]
bounded_out_of_orderness_ms = 1000
{idle}
[sources.room.sim]
start_time_ms = {START}
speed = 10
duration_ms = 60_000
rooms = [{{ name = "room-a" }}]
faults = [{{ kind = "outage", device = "room-a", start_after_ms = 10_000, duration_ms = 35_000, buffered = true }}]

[operators.stats]
inputs = ["cells", "room"]
plugin = {stats}
window.tumbling = {{ size_ms = 10_000 }}

[sinks.out]
inputs = ["stats"]
[sinks.out.file]
path = "stats.jsonl"

[sinks.late]
inputs = ["stats.late"]
[sinks.late.file]
path = "late.jsonl"
"#,
        stats = toml_path(&plugin("window_stats")),
    )
}

fn run_pipeline(idle_timeout: Option<u64>) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let dir = run_in_folder(&pipeline(idle_timeout));
    (
        json_lines(&dir.path().join("stats.jsonl")),
        json_lines(&dir.path().join("late.jsonl")),
    )
}

#[test]
fn an_idle_source_stops_holding_the_watermark_and_its_backlog_is_late() {
    // With a 300 ms (3 s simulated) idle timeout, the cells move the watermark
    // while the room is silent: windows up to [30 s, 40 s) fire without it, so
    // when its backlog arrives at 45 s, the readings of 10 s..39 s are late.
    // Those of 40 s..44 s still make their window.
    let (stats, late) = run_pipeline(Some(300));
    let late_times: Vec<i64> = late
        .iter()
        .map(|r| r["time"].as_i64().unwrap() - START)
        .collect();
    assert!(late.iter().all(|r| r["key"] == "room-a"));
    assert_eq!(late_times, (10..40).map(|s| s * 1000).collect::<Vec<_>>());
    let room_window = |start_s: i64| {
        stats
            .iter()
            .find(|s| s["key"] == "room-a" && s["fields"]["window_start"] == START + start_s * 1000)
            .map(|s| s["fields"]["count"].as_i64().unwrap())
    };
    assert_eq!(
        room_window(10),
        None,
        "the room's part of [10 s, 20 s) came too late"
    );
    assert_eq!(room_window(40), Some(10), "the resumed room counts again");
}

#[test]
fn without_idleness_the_silent_source_holds_the_watermark_and_nothing_is_late() {
    let (stats, late) = run_pipeline(None);
    assert!(late.is_empty(), "{late:?}");
    let room_counts: i64 = stats
        .iter()
        .filter(|s| s["key"] == "room-a")
        .map(|s| s["fields"]["count"].as_i64().unwrap())
        .sum();
    assert_eq!(room_counts, 60);
}
