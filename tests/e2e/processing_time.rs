//! Processing-time windows: records are assigned by the wall clock when they
//! arrive, whatever their own times, and the end of input fires what is open.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{json_lines, plugin, run, stderr, toml_path};

#[test]
fn records_are_windowed_by_arrival_on_the_wall_clock() {
    let dir = tempfile::tempdir().unwrap();
    // Times from 1970: event time would put them in windows long past.
    let input: String = (0..100)
        .map(|i| format!("{{\"key\":\"k{}\",\"time\":{i},\"v\":1}}\n", i % 2))
        .collect();
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let pipeline = format!(
        r#"[pipeline]
dead_letter_path = "dead-letter.jsonl"
[sources.input.file]
path = "in.jsonl"
[operators.w]
inputs = ["input"]
plugin = {stats}
params = {{ fields = ["v"] }}
window.tumbling = {{ size_ms = 60_000, time = "processing" }}
[sinks.out]
inputs = ["w", "w.late"]
[sinks.out.file]
path = "out.jsonl"
"#,
        stats = toml_path(&plugin("window_stats")),
    );
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let out = run(&["run", "p.toml"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;

    let results = json_lines(&dir.path().join("out.jsonl"));
    assert!(
        results.iter().all(|r| r["output"] == "w"),
        "nothing is late on the wall clock"
    );
    let counted: i64 = results
        .iter()
        .map(|r| r["fields"]["count"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, 100);
    for r in &results {
        let start = r["fields"]["window_start"].as_i64().unwrap();
        assert_eq!(start % 60_000, 0);
        assert!(
            start <= after && start + 60_000 > before,
            "window {start} is not around now"
        );
    }
}
