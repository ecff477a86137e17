//! `eddy plugin test`: the plugin author's harness, with hand-derived expectations.

use crate::support::{plugin, run, stderr, stdout};

fn plugin_test(name: &str, input: &str, args: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let wasm = plugin(name);
    let mut all = vec![
        "plugin",
        "test",
        wasm.to_str().unwrap(),
        "--input",
        "in.jsonl",
    ];
    all.extend_from_slice(args);
    let out = run(&all, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().map(str::to_owned).collect()
}

#[test]
fn window_stats_fires_on_the_watermark_and_sends_late_records_aside() {
    // Tumbling 1 s windows, bound 0: the watermark is the largest time − 1.
    // 1100 moves it to 1099, which fires [0, 1000) for a (1 and 3) and b (10);
    // 950 then belongs to a fired window: late. End of input fires [1000, 2000).
    let input = r#"{"key":"a","time":100,"fields":{"v":1.0}}
{"key":"b","time":200,"fields":{"v":10.0}}
{"key":"a","time":900,"fields":{"v":3.0}}
{"key":"a","time":1100,"fields":{"v":5.0}}
{"key":"a","time":950,"fields":{"v":100.0}}
"#;
    let out = plugin_test(
        "window_stats",
        input,
        &["--window-ms", "1000", "--params", r#"{"fields":["v"]}"#],
    );
    assert_eq!(
        out,
        [
            r#"{"id":"test-window-stats/window-stats/a/w0-1000/f0/0","output":"window-stats","key":"a","time":999,"fields":{"window_start":0,"window_end":1000,"count":2,"update":false,"v_sum":4.0,"v_min":1.0,"v_max":3.0,"v_avg":2.0}}"#,
            r#"{"id":"test-window-stats/window-stats/b/w0-1000/f0/0","output":"window-stats","key":"b","time":999,"fields":{"window_start":0,"window_end":1000,"count":1,"update":false,"v_sum":10.0,"v_min":10.0,"v_max":10.0,"v_avg":10.0}}"#,
            r#"{"id":"test-window-stats/window-stats.late/a/r4/0","output":"window-stats.late","key":"a","time":950,"fields":{"v":100.0}}"#,
            r#"{"id":"test-window-stats/window-stats/a/w1000-2000/f0/0","output":"window-stats","key":"a","time":1999,"fields":{"window_start":1000,"window_end":2000,"count":1,"update":false,"v_sum":5.0,"v_min":5.0,"v_max":5.0,"v_avg":5.0}}"#,
        ]
    );
}

#[test]
fn any_window_kind_can_be_given_like_in_a_pipeline_file() {
    // Sessions with gap 100: 0 and 50 share one, 400 starts another.
    let input = r#"{"key":"a","time":0,"fields":{"v":1.0}}
{"key":"a","time":50,"fields":{"v":2.0}}
{"key":"a","time":400,"fields":{"v":4.0}}
"#;
    let out = plugin_test(
        "window_stats",
        input,
        &[
            "--window",
            "session = { gap_ms = 100 }",
            "--params",
            r#"{"fields":["v"]}"#,
        ],
    );
    let windows: Vec<(i64, i64, i64)> = out
        .iter()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            let f = &r["fields"];
            (
                f["window_start"].as_i64().unwrap(),
                f["window_end"].as_i64().unwrap(),
                f["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(windows, [(0, 150, 2), (400, 500, 1)]);
}

#[test]
fn a_bad_window_spec_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "").unwrap();
    let wasm = plugin("window_stats");
    let out = run(
        &[
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "--input",
            "in.jsonl",
            "--window",
            "hopping = { size_ms = 1 }",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--window: unknown variant `hopping`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn threshold_alert_needs_consecutive_breaches_and_clears_below_the_band() {
    // Threshold 45, two in a row within 2 s, clear below 40: 46 starts a
    // match, 47 completes it (raise), 48 completes another but the alert is
    // active already, 42 is inside the band, 39 clears.
    let input = [46.0, 47.0, 48.0, 42.0, 39.0]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                r#"{{"key":"cell-3","time":{},"fields":{{"t_max":{t:?}}}}}"#,
                i * 1000
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let params = r#"{"field":"t_max","threshold":45.0,"within_ms":2000,"clear_below":40.0}"#;
    let out = plugin_test("threshold_alert", &input, &["--params", params]);
    assert_eq!(
        out,
        [
            r#"{"id":"test-threshold-alert/threshold-alert/cell-3/r1/0","output":"threshold-alert","key":"cell-3","time":1000,"fields":{"state":"raised","field":"t_max","value":47.0,"threshold":45.0,"first_time":0}}"#,
            r#"{"id":"test-threshold-alert/threshold-alert.cleared/cell-3/r4/0","output":"threshold-alert.cleared","key":"cell-3","time":4000,"fields":{"state":"cleared","field":"t_max","value":39.0,"threshold":45.0}}"#,
        ]
    );
}

#[test]
fn a_bad_input_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("in.jsonl"),
        "{\"key\":\"a\",\"time\":1}\n{\"key\":\"a\"}\n",
    )
    .unwrap();
    let wasm = plugin("threshold_alert");
    let out = run(
        &[
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "--input",
            "in.jsonl",
            "--params",
            r#"{"field":"x","threshold":1}"#,
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("in.jsonl:2: no `time` member"),
        "{}",
        stderr(&out)
    );
}
