//! Records that arrive after their window fired are never silently dropped:
//! they go where the pipeline routes `OPERATOR.late`, or to the dead-letter log.

use crate::support::{json_lines, plugin, run_in_folder, run_logged, stderr, toml_path};

/// 4 cells × 120 s, a fifth of the readings held back up to 5 s while the
/// watermark allows 1 s: some readings miss their window.
fn pipeline(late_sink: bool) -> String {
    let mut text = format!(
        r#"[pipeline]
dead_letter_path = "dead-letter.jsonl"

[sources.ups]
bounded_out_of_orderness_ms = 1000
[sources.ups.sim]
seed = 9
start_time_ms = 1_767_225_600_000
speed = 0
duration_ms = 120_000
disorder = {{ probability = 0.2, max_delay_ms = 5000 }}
ups = [{{ name = "ups-1", cells_per_string = 4 }}]

[operators.stats]
inputs = ["ups"]
plugin = {stats}
window.tumbling = {{ size_ms = 10_000 }}

[sinks.out]
inputs = ["stats"]
[sinks.out.file]
path = "stats.jsonl"
"#,
        stats = toml_path(&plugin("window_stats")),
    );
    if late_sink {
        text.push_str(
            "\n[sinks.late_records]\ninputs = [\"stats.late\"]\n[sinks.late_records.dead_letter]\n",
        );
    }
    text
}

/// Runs; returns (records counted in windows, dead-letter entries).
fn run_pipeline(late_sink: bool) -> (u64, Vec<serde_json::Value>) {
    let dir = run_in_folder(&pipeline(late_sink));
    let counted = json_lines(&dir.path().join("stats.jsonl"))
        .iter()
        .map(|s| s["fields"]["count"].as_u64().unwrap())
        .sum();
    (counted, json_lines(&dir.path().join("dead-letter.jsonl")))
}

fn late_records(dead: &[serde_json::Value]) -> usize {
    dead.iter()
        .map(|d| d["records"].as_array().unwrap().len())
        .sum()
}

#[test]
fn late_records_routed_to_the_dead_letter_sink_are_all_there() {
    let (counted, dead) = run_pipeline(true);
    let late = late_records(&dead);
    assert!(late > 0, "the disorder makes some records late");
    assert_eq!(
        counted as usize + late,
        4 * 120,
        "every record is in a window or in the late output"
    );
    for entry in &dead {
        assert_eq!(entry["node"], "late_records");
        assert_eq!(
            entry["reason"],
            "routed to the dead-letter sink from `stats.late`"
        );
    }
}

#[test]
fn unrouted_late_records_go_to_the_dead_letter_log_with_the_reason() {
    let (counted, dead) = run_pipeline(false);
    let late = late_records(&dead);
    assert!(late > 0);
    assert_eq!(counted as usize + late, 4 * 120);
    for entry in &dead {
        assert_eq!(entry["node"], "stats");
        assert!(
            entry["reason"]
                .as_str()
                .unwrap()
                .starts_with("late: its window had already fired")
        );
    }
}

/// The number after `name=` in the run's last log line.
fn logged_count(log: &str, name: &str) -> u64 {
    let at = log.rfind(&format!("{name}=")).expect("the count is logged") + name.len() + 1;
    log[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_flood_of_late_records_fills_the_dead_letter_log_to_its_limit_and_no_further() {
    // 100 cells × 2000 s with half the readings held back up to 5 s: tens of
    // thousands of late records, several MiB of dead letters, against 1 MiB.
    let text = pipeline(false)
        .replace(
            "dead_letter_path = \"dead-letter.jsonl\"",
            "dead_letter_path = \"dead-letter.jsonl\"\ndead_letter_max_mib = 1",
        )
        .replace("duration_ms = 120_000", "duration_ms = 2_000_000")
        .replace("probability = 0.2", "probability = 0.5")
        .replace("cells_per_string = 4", "cells_per_string = 100");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), &text).unwrap();
    let out = run_logged(&["run", "p.toml"], dir.path());
    assert!(out.status.success(), "eddy failed: {}", stderr(&out));
    let log = stderr(&out);
    let path = dir.path().join("dead-letter.jsonl");
    let bytes = std::fs::metadata(&path).unwrap().len();
    assert!(bytes <= 1 << 20, "{bytes} bytes in a log limited to 1 MiB");
    assert!(bytes > 1 << 19, "the log stopped early: {bytes} bytes");
    let logged = late_records(&json_lines(&path)) as u64;
    let unwritten = logged_count(&log, "dead_letters_unwritten");
    assert!(
        unwritten > 0,
        "the flood is larger than the log: {logged} records written"
    );
    assert_eq!(logged_count(&log, "dead_lettered"), logged + unwritten);
    // The windows are computed as without a limit: every record is in a
    // window or was dead-lettered, written or not.
    let counted: u64 = json_lines(&dir.path().join("stats.jsonl"))
        .iter()
        .map(|s| s["fields"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted + logged + unwritten, 100 * 2000);
    assert!(log.contains("the dead-letter log is full"));
}
