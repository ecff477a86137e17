//! One record codec for files and streams: eddy reads back what its sinks
//! write (bytes fields included), and CSV with quoted cells across lines, a
//! chosen delimiter and RFC 3339 times; what it cannot read goes to the
//! dead-letter log with its place.

use crate::support::{json_lines, run, stderr};

fn run_pipeline(dir: &std::path::Path, text: &str) {
    std::fs::write(dir.join("p.toml"), text).unwrap();
    let out = run(&["run", "p.toml"], dir);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Key, time and fields of each line.
fn records(lines: &[serde_json::Value]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| serde_json::json!([l["key"], l["time"], l["fields"]]))
        .collect()
}

#[test]
fn eddys_own_output_reads_back_as_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = concat!(
        r#"{"key":"cam-1","time":1767225600000,"fields":{"frame":{"hex":"00ff10"},"ok":true,"n":-3,"t":21.5,"note":"a \"b\""}}"#,
        "\n",
        r#"{"key":"cam-2","time":1767225600001,"fields":{"frame":{"hex":""},"t":1e-3}}"#,
        "\n",
    );
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let copy = |from: &str, to: &str| {
        format!(
            "[sources.s.file]\npath = \"{from}\"\n[sinks.k]\ninputs = [\"s\"]\n[sinks.k.file]\npath = \"{to}\"\n"
        )
    };
    run_pipeline(dir.path(), &copy("in.jsonl", "a.jsonl"));
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    run_pipeline(dir.path(), &copy("a.jsonl", "b.jsonl"));
    let original = records(&json_lines(&dir.path().join("in.jsonl")));
    let once = json_lines(&dir.path().join("a.jsonl"));
    let twice = json_lines(&dir.path().join("b.jsonl"));
    assert_eq!(records(&once), original);
    assert_eq!(records(&twice), original);
    // The first copy's ids and outputs were not read as fields.
    assert!(once[0]["id"].is_string());
    assert!(twice[0]["fields"].get("id").is_none());
    assert!(twice[0]["fields"].get("output").is_none());
}

#[test]
fn csv_with_quotes_across_lines_a_delimiter_and_rfc3339_times() {
    let dir = tempfile::tempdir().unwrap();
    let input = "# exported by the BMS\nts;device;temp;note\n\
        2026-01-01T00:00:00Z;ups-1;24.5;\"ok\"\n\
        2026-01-01T01:00:01.5+01:00;ups-2;25;\"two\nlines; and \"\"quotes\"\"\"\n\
        yesterday;ups-3;26;\n\
        2026-01-01T00:00:03Z;ups-4;true;x\n";
    std::fs::write(dir.path().join("in.csv"), input).unwrap();
    run_pipeline(
        dir.path(),
        r##"[pipeline]
dead_letter_path = "dead.jsonl"
[sources.s.file]
path = "in.csv"
key_field = "device"
time_field = "ts"
time_format = "rfc3339"
csv = { delimiter = ";", comment = "#" }
[sinks.k]
inputs = ["s"]
[sinks.k.file]
path = "out.jsonl"
"##,
    );
    // 2026-01-01T00:00:00Z is 1767225600 s after the epoch.
    let expected = serde_json::json!([
        ["ups-1", 1_767_225_600_000i64, {"temp": 24.5, "note": "ok"}],
        ["ups-2", 1_767_225_601_500i64, {"temp": 25, "note": "two\nlines; and \"quotes\""}],
        ["ups-4", 1_767_225_603_000i64, {"temp": true, "note": "x"}],
    ]);
    assert_eq!(
        serde_json::Value::Array(records(&json_lines(&dir.path().join("out.jsonl")))),
        expected
    );
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1);
    let rejected = &dead[0]["rejected"][0];
    assert!(
        rejected["origin"].as_str().unwrap().ends_with("in.csv:6"),
        "{rejected}"
    );
    assert!(
        rejected["reason"].as_str().unwrap().contains("column `ts`"),
        "{rejected}"
    );
    assert_eq!(rejected["input"], "yesterday;ups-3;26;");
}

#[test]
fn a_file_sink_that_cannot_write_leaves_no_partial_line() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let text = r#"[pipeline]
shutdown_timeout_ms = 200
[checkpoint]
enabled = false
[sources.s.sim]
speed = 0
duration_ms = 600_000
rooms = [{ name = "r" }]
[sinks.k]
inputs = ["s"]
retry_initial_backoff_ms = 10
retry_max_backoff_ms = 20
[sinks.k.file]
path = "out.jsonl"
"#;
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    // Files may not grow past 10 000 bytes: the write that would is refused (EFBIG).
    const LIMIT: u64 = 10_000;
    let mut command = crate::support::eddy();
    command
        .args(["run", "p.toml"])
        .current_dir(dir.path())
        .env("EDDY_STATE_DIR", dir.path().join("state"))
        .env("EDDY_LOG", "info");
    // SAFETY: setrlimit is async-signal-safe and touches nothing but the child.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = command.output().unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("sink `k`"),
        "the sink reported the failure: {log}"
    );
    let text = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    assert!(text.len() as u64 <= LIMIT);
    assert!(text.ends_with('\n'), "a partial line at the end");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 10, "{} lines", lines.len());
    for (n, line) in lines.iter().enumerate() {
        let record: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}: {line}", n + 1));
        assert_eq!(
            record["id"],
            format!("p/s/r/r{n}/0"),
            "in order, none twice"
        );
    }
}
