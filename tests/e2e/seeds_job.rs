//! The seeds' job (`examples/ups-seeds-job.toml`) on simulated data with late
//! and very late readings. The test keeps the raw readings in arrival order
//! and derives from them, with Flink's rules, what the job must output: which
//! readings are too late, which windows fire again as updates, and what each
//! window finally counts.

use std::collections::BTreeMap;

use crate::support::{json_lines, lines, root, run, stderr, stdout};

const BOUND: i64 = 2000;
const LATENESS: i64 = 5000;

#[test]
fn the_seeds_job_gives_flinks_answers() {
    let example = std::fs::read_to_string(root().join("examples/ups-seeds-job.toml")).unwrap();
    let plugins = root().join("target/plugins");
    let text = example
        .replace("speed = 1", "speed = 0\nduration_ms = 120_000")
        .replace("../target/plugins", plugins.to_str().unwrap())
        .replace("../target/seeds-job/", "")
        + "\n[sinks.raw]\ninputs = [\"ups\"]\n[sinks.raw.file]\npath = \"raw.jsonl\"\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.toml"), text).unwrap();
    let out = run(&["run", "job.toml"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));

    let raw = json_lines(&dir.path().join("raw.jsonl"));
    let stats = json_lines(&dir.path().join("stats.jsonl"));
    let console = lines(&stdout(&out));
    assert_eq!(raw.len(), 4 * 10 * 120, "every reading arrives");

    // Replay the watermark over the readings in arrival order. A reading is
    // too late when its window [s, s + 1000) was cleaned up before it came:
    // watermark ≥ s + 999 + lateness. It re-fires its window when that fired
    // already: watermark ≥ s + 999.
    let mut max_seen = i64::MIN;
    let mut too_late = Vec::new();
    let mut refired: BTreeMap<(String, i64), u32> = BTreeMap::new();
    let mut counted: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for r in &raw {
        let (key, time) = (
            r["key"].as_str().unwrap().to_owned(),
            r["time"].as_i64().unwrap(),
        );
        let watermark = max_seen.saturating_sub(BOUND + 1);
        let start = time.div_euclid(1000) * 1000;
        if start + 999 + LATENESS <= watermark {
            too_late.push((key, time));
        } else {
            if start + 999 <= watermark {
                *refired.entry((key.clone(), start)).or_default() += 1;
            }
            *counted.entry((key, start)).or_default() += 1;
        }
        max_seen = max_seen.max(time);
    }
    assert!(!too_late.is_empty(), "the data has very late readings");
    assert!(
        !refired.is_empty(),
        "the data has late readings within the lateness"
    );

    // The late side output holds exactly the too-late readings, in order.
    let late: Vec<(String, i64)> = console
        .iter()
        .filter(|r| r["output"] == "stats.late")
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                r["time"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(late, too_late);

    // Each window fires once, then once more per reading within the lateness;
    // its last firing counts every reading that was not too late.
    let mut firings: BTreeMap<(String, i64), Vec<(bool, i64)>> = BTreeMap::new();
    for s in &stats {
        let key = s["key"].as_str().unwrap().to_owned();
        let start = s["fields"]["window_start"].as_i64().unwrap();
        let update = s["fields"]["update"].as_bool().unwrap();
        firings
            .entry((key, start))
            .or_default()
            .push((update, s["fields"]["count"].as_i64().unwrap()));
    }
    assert_eq!(firings.len(), counted.len());
    for (window, fired) in &firings {
        assert!(!fired[0].0, "{window:?}: the first firing is not an update");
        assert!(fired[1..].iter().all(|(update, _)| *update), "{window:?}");
        assert_eq!(
            fired.len() as u32 - 1,
            refired.get(window).copied().unwrap_or(0),
            "{window:?}"
        );
        assert_eq!(fired.last().unwrap().1, counted[window], "{window:?}");
    }

    // Alerts: only the overheating cell, each at the second of two consecutive
    // window results (1 s apart, under the 2 s limit) that both breach 35 °C.
    let raised: Vec<&serde_json::Value> = console
        .iter()
        .filter(|r| r["output"] == "alerts" && r["fields"]["state"] == "raised")
        .collect();
    assert!(!raised.is_empty());
    let max_at = |key: &str, time: i64| {
        stats
            .iter()
            .filter(|s| s["key"] == key && s["time"] == time)
            .map(|s| s["fields"]["temperature_max"].as_f64().unwrap())
            .next_back()
    };
    for alert in raised {
        let key = alert["key"].as_str().unwrap();
        assert_eq!(key, "ups-1/string-1/cell-03");
        let (first, second) = (
            alert["fields"]["first_time"].as_i64().unwrap(),
            alert["time"].as_i64().unwrap(),
        );
        assert_eq!(second - first, 1000);
        assert!(max_at(key, first).unwrap() > 35.0 && max_at(key, second).unwrap() > 35.0);
    }
}
