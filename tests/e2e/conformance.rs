//! Event-time conformance: small inputs with the output Flink's documented
//! rules give, derived in a comment on each case. Each case runs the real
//! binary: a `file` source, `window-stats` summing field `v`, and a sink
//! taking the results and the late output.
//!
//! Rules used (Flink 2.x, `BoundedOutOfOrdernessWatermarks`, `EventTimeTrigger`):
//! - watermark after each record = max time seen − bound − 1;
//! - windows are `[start, end)`; a window fires when the watermark reaches `end − 1`;
//! - with allowed lateness L, a fired window is kept until the watermark
//!   reaches `end − 1 + L`; a record for it before then fires it again (an
//!   update); a record all of whose windows are past that is late;
//! - end of input is the watermark `i64::MAX`.
//!
//! The idle-input case is in `idleness.rs` and processing-time windows in
//! `processing_time.rs`, as they need the wall clock.
//!
//! Results read `KEY [START,END) first|update n=COUNT sum=SUM` and `late KEY@TIME`.
//! Each record's `v` is a distinct power of two, so a sum names its records.

use std::path::Path;

use crate::support::{eddy, plugin, run_in_folder, toml_path};

/// The window settings of a run.
struct Windowing<'a> {
    plugin: &'a Path,
    bound_ms: u64,
    window: &'a str,
    lateness_ms: u64,
    batch_size: usize,
}

/// Runs JSON-lines `input` through `window-stats` summing `v`; returns the
/// output lines (results and late records) as written.
fn run_window(input: &str, w: &Windowing<'_>) -> Vec<String> {
    let input_file = tempfile::tempdir().unwrap();
    std::fs::write(input_file.path().join("input.jsonl"), input).unwrap();
    let pipeline = format!(
        r#"[pipeline]
batch_size = {batch_size}
dead_letter_path = "dead-letter.jsonl"

[sources.input]
bounded_out_of_orderness_ms = {bound_ms}
[sources.input.file]
path = {input}

[operators.w]
inputs = ["input"]
plugin = {stats}
params = {{ fields = ["v"] }}
window.{window}
allowed_lateness_ms = {lateness_ms}

[sinks.out]
inputs = ["w", "w.late"]
[sinks.out.file]
path = "out.jsonl"
"#,
        batch_size = w.batch_size,
        bound_ms = w.bound_ms,
        window = w.window,
        lateness_ms = w.lateness_ms,
        input = toml_path(&input_file.path().join("input.jsonl")),
        stats = toml_path(w.plugin),
    );
    let dir = run_in_folder(&pipeline);
    let text = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap_or_default();
    text.lines().map(str::to_owned).collect()
}

/// Runs `records` (`(key, time)`, with `v` = 1, 2, 4, … in order) through a
/// window operator; returns the results in output order.
fn results(
    records: &[(&str, i64)],
    bound_ms: u64,
    window: &str,
    lateness_ms: u64,
    batch_size: usize,
) -> Vec<String> {
    let input: String = records
        .iter()
        .enumerate()
        .map(|(i, (key, time))| {
            format!(
                "{{\"key\":\"{key}\",\"time\":{time},\"v\":{}}}\n",
                1u64 << i
            )
        })
        .collect();
    let lines = run_window(
        &input,
        &Windowing {
            plugin: &plugin("window_stats"),
            bound_ms,
            window,
            lateness_ms,
            batch_size,
        },
    );
    lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|r| {
            let f = &r["fields"];
            if r["output"] == "w.late" {
                format!("late {}@{}", r["key"].as_str().unwrap(), r["time"])
            } else {
                format!(
                    "{} [{},{}) {} n={} sum={}",
                    r["key"].as_str().unwrap(),
                    f["window_start"],
                    f["window_end"],
                    if f["update"] == true {
                        "update"
                    } else {
                        "first"
                    },
                    f["count"],
                    f["v_sum"],
                )
            }
        })
        .collect()
}

fn check(
    records: &[(&str, i64)],
    bound_ms: u64,
    window: &str,
    lateness_ms: u64,
    expected: &[&str],
) {
    for batch_size in [1, 7, 4096] {
        assert_eq!(
            results(records, bound_ms, window, lateness_ms, batch_size),
            expected,
            "batch size {batch_size}"
        );
    }
}

const TUMBLING_1S: &str = "tumbling = { size_ms = 1000 }";

#[test]
fn out_of_order_within_the_bound_is_in_its_window() {
    // Bound 500. After 900 the watermark is 399, so 600 is not late; 1600
    // moves it to 1099 ≥ 999 and [0,1000) fires with 100, 900, 600 (1+2+4).
    // End of input fires [1000,2000) with 1600 (8).
    check(
        &[("a", 100), ("a", 900), ("a", 600), ("a", 1600)],
        500,
        TUMBLING_1S,
        0,
        &[
            "a [0,1000) first n=3 sum=7.0",
            "a [1000,2000) first n=1 sum=8.0",
        ],
    );
}

#[test]
fn a_record_at_the_window_end_opens_the_next_window() {
    // Bound 0. 999 is the last millisecond of [0,1000); 1000 belongs to
    // [1000,2000) and moves the watermark to 999, which fires [0,1000) with 999 alone.
    check(
        &[("a", 999), ("a", 1000)],
        0,
        TUMBLING_1S,
        0,
        &[
            "a [0,1000) first n=1 sum=1.0",
            "a [1000,2000) first n=1 sum=2.0",
        ],
    );
}

#[test]
fn a_watermark_crossing_several_windows_fires_them_in_order() {
    // Bound 0. Watermarks 99, 1099 (fires a's [0,1000)), 2099 (fires b's
    // [1000,2000)); c@5500 gives 5499, which fires a's [2000,3000). End of
    // input fires c's [5000,6000). Windows fire in order of end, then key.
    check(
        &[("a", 100), ("b", 1100), ("a", 2100), ("c", 5500)],
        0,
        TUMBLING_1S,
        0,
        &[
            "a [0,1000) first n=1 sum=1.0",
            "b [1000,2000) first n=1 sum=2.0",
            "a [2000,3000) first n=1 sum=4.0",
            "c [5000,6000) first n=1 sum=8.0",
        ],
    );
}

#[test]
fn late_within_lateness_refires_later_goes_to_the_late_output() {
    // Bound 0, lateness 500. 1200 → watermark 1199 fires [0,1000) with 100 (1).
    // 300 is late, but 999 + 500 > 1199: it is added and the window fires
    // again as an update with 100, 300 (1+4). 1600 → 1599 ≥ 1499 cleans
    // [0,1000) up, so 400 is later than the lateness: late output. End of
    // input fires [1000,2000) with 1200, 1600 (2+8).
    check(
        &[("a", 100), ("a", 1200), ("a", 300), ("a", 1600), ("a", 400)],
        0,
        TUMBLING_1S,
        500,
        &[
            "a [0,1000) first n=1 sum=1.0",
            "a [0,1000) update n=2 sum=5.0",
            "late a@400",
            "a [1000,2000) first n=2 sum=10.0",
        ],
    );
}

#[test]
fn without_lateness_a_record_for_a_fired_window_is_late() {
    // Bound 0, no lateness. 1100 → 1099 fires [0,1000) with 100; 500 belongs
    // to it: late output, never dropped.
    check(
        &[("a", 100), ("a", 1100), ("a", 500)],
        0,
        TUMBLING_1S,
        0,
        &[
            "a [0,1000) first n=1 sum=1.0",
            "late a@500",
            "a [1000,2000) first n=1 sum=2.0",
        ],
    );
}

#[test]
fn a_late_record_bridging_two_sessions_merges_them() {
    // Sessions with gap 100, bound 0, lateness 1000. a@0 → [0,100),
    // a@150 → [150,250); b@400 → watermark 399 fires both. a@80 → [80,180)
    // overlaps both, and 249 + 1000 > 399: one session [0,250) with all three
    // (1+2+8), fired again as an update. End of input fires b's [400,500).
    check(
        &[("a", 0), ("a", 150), ("b", 400), ("a", 80)],
        0,
        "session = { gap_ms = 100 }",
        1000,
        &[
            "a [0,100) first n=1 sum=1.0",
            "a [150,250) first n=1 sum=2.0",
            "a [0,250) update n=3 sum=11.0",
            "b [400,500) first n=1 sum=4.0",
        ],
    );
}

#[test]
fn sliding_windows_share_records_between_overlapping_panes() {
    // Size 2000, slide 1000, bound 0. 500 is in [-1000,1000) and [0,2000);
    // 1500 in [0,2000) and [1000,3000). 1500 → watermark 1499 fires
    // [-1000,1000); end of input fires the other two, in order of end.
    check(
        &[("a", 500), ("a", 1500)],
        0,
        "sliding = { size_ms = 2000, slide_ms = 1000 }",
        0,
        &[
            "a [-1000,1000) first n=1 sum=1.0",
            "a [0,2000) first n=2 sum=3.0",
            "a [1000,3000) first n=1 sum=2.0",
        ],
    );
}

#[test]
fn count_windows_fire_every_slide_records_over_the_last_size() {
    // countWindow(3, 2) per key: a fires after its 2nd record (1, 2: only two
    // so far) and its 4th (2, 3, 4: the last three); b never reaches a firing
    // point, and an unfinished count window does not fire at the end, as in
    // Flink. A count window reads [first time, last time + 1).
    check(
        &[
            ("a", 10),
            ("a", 20),
            ("b", 5),
            ("a", 30),
            ("a", 40),
            ("a", 50),
        ],
        0,
        "count = { size = 3, slide = 2 }",
        0,
        &[
            "a [10,21) first n=2 sum=3.0",
            "a [20,41) first n=3 sum=26.0",
        ],
    );
}

#[test]
fn end_of_input_fires_what_the_watermark_never_reached() {
    // Bound 5000: the watermark never passes 999 (max 1100 − 5001), so both
    // windows fire only at the end of input.
    check(
        &[("a", 100), ("a", 1100)],
        5000,
        TUMBLING_1S,
        0,
        &[
            "a [0,1000) first n=1 sum=1.0",
            "a [1000,2000) first n=1 sum=2.0",
        ],
    );
}

#[test]
fn output_is_byte_identical_whatever_the_batch_size() {
    // 3000 records over 5 keys, jittered out of order by up to 4 s
    // against a 300 ms bound and 2 s sliding windows: some records are later
    // than window, bound and lateness together, some are within the lateness.
    let keys = ["a", "b", "c", "d", "e"];
    let mut seed = 12345u64;
    let mut records = Vec::new();
    for i in 0..3000i64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = ((seed >> 33) % 4000) as i64;
        records.push((keys[(seed >> 20) as usize % 5], i * 50 - jitter));
    }
    // v = 2^i overflows past 63 records, so this case compares raw output lines.
    let input: String = records
        .iter()
        .enumerate()
        .map(|(i, (k, t))| format!("{{\"key\":\"{k}\",\"time\":{t},\"v\":{i}}}\n"))
        .collect();
    let outputs: Vec<Vec<String>> = [1, 7, 4096]
        .into_iter()
        .map(|batch_size| {
            run_window(
                &input,
                &Windowing {
                    plugin: &plugin("window_stats"),
                    bound_ms: 300,
                    window: "sliding = { size_ms = 2000, slide_ms = 500 }",
                    lateness_ms: 200,
                    batch_size,
                },
            )
        })
        .collect();
    assert!(
        outputs[0]
            .iter()
            .any(|l| l.contains("\"output\":\"w.late\"")),
        "the input makes late records"
    );
    assert!(
        outputs[0].iter().any(|l| l.contains("\"update\":true")),
        "the input makes updates"
    );
    assert_eq!(outputs[0], outputs[1], "batch size 1 vs 7");
    assert_eq!(outputs[0], outputs[2], "batch size 1 vs 4096");
}

/// Jittered JSON-lines input of three keys with whole-number values (exact
/// sums in any order), run through sliding windows with lateness so that
/// windows fire, update and drop late records.
fn jittered_sliding(plugin: &Path) -> Vec<String> {
    let keys = ["a", "b", "c"];
    let mut seed = 777u64;
    let mut input = String::new();
    for i in 0..2000i64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = ((seed >> 33) % 3000) as i64;
        let key = keys[(seed >> 20) as usize % 3];
        input.push_str(&format!(
            "{{\"key\":\"{key}\",\"time\":{},\"v\":{}}}\n",
            i * 40 - jitter,
            (seed >> 40) % 1000
        ));
    }
    run_window(
        &input,
        &Windowing {
            plugin,
            bound_ms: 300,
            window: "sliding = { size_ms = 2000, slide_ms = 500 }",
            lateness_ms: 400,
            batch_size: 64,
        },
    )
}

#[test]
fn an_aggregates_sliding_panes_give_the_results_of_whole_windows() {
    // `window-stats-incremental` keeps each record once, in a pane shared by
    // the windows, and merges the panes' accumulators when a window fires;
    // `window-stats` gets each window's records. Their results (first
    // firings, updates) and late records must be the same, line for line,
    // result ids included.
    let whole = jittered_sliding(&plugin("window_stats"));
    let panes = jittered_sliding(&plugin("window_stats_incremental"));
    assert!(whole.iter().any(|l| l.contains("\"update\":true")));
    assert!(whole.iter().any(|l| l.contains("\"output\":\"w.late\"")));
    assert!(whole.len() > 500, "{} lines", whole.len());
    assert_eq!(panes, whole);
}

#[test]
fn an_aggregate_without_fold_result_gives_the_same_results_in_two_calls() {
    // An aggregate built with an older SDK exports `aggregate` and `result`
    // but no `fold_result`, and the host folds a fired window in one call and
    // emits its result in another. Renaming the export of today's plugin (to
    // a name of the same length, so the module stays valid) makes one. Both
    // ways must give the same lines, result ids included.
    let today = std::fs::read(plugin("window_stats_incremental")).unwrap();
    let export = b"\x0bfold_result";
    let at: Vec<usize> = today
        .windows(export.len())
        .enumerate()
        .filter(|(_, w)| w == export)
        .map(|(i, _)| i)
        .collect();
    assert!(!at.is_empty(), "the plugin exports `fold_result`");
    let mut older = today.clone();
    for i in at {
        older[i..i + export.len()].copy_from_slice(b"\x0bfold_resulx");
    }
    let dir = tempfile::tempdir().unwrap();
    let older_path = dir.path().join("window_stats_incremental_older.wasm");
    std::fs::write(&older_path, older).unwrap();
    // The host sees `fold_result` in one and not in the other.
    let exports = |path: &Path| {
        let out = eddy()
            .args(["plugin", "inspect"])
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(exports(&plugin("window_stats_incremental")).contains("fold_result"));
    assert!(!exports(&older_path).contains("fold_result"));
    let one_call = jittered_sliding(&plugin("window_stats_incremental"));
    let two_calls = jittered_sliding(&older_path);
    assert!(one_call.len() > 500, "{} lines", one_call.len());
    assert_eq!(two_calls, one_call);
}
