//! The demo pipeline, run to a bounded end as fast as the host goes: window
//! stats for every device, and the overheating cell (and only it) alerting
//! when two consecutive windows breach the threshold.

use crate::support::{lines, root, run, stderr, stdout};

#[test]
fn the_demo_raises_an_alert_for_the_overheating_cell_only() {
    let example = std::fs::read_to_string(root().join("examples/ups-monitor.toml")).unwrap();
    let plugins = root().join("target/plugins");
    let text = example
        .replace("speed = 60", "speed = 0\nduration_ms = 600_000")
        .replace("../target/plugins", plugins.to_str().unwrap())
        .replace("../target/demo/dead-letter.jsonl", "dead-letter.jsonl");
    assert_ne!(text, example);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("demo.toml"), text).unwrap();
    let out = run(&["run", "demo.toml"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let results = lines(&stdout(&out));

    let stats: Vec<_> = results.iter().filter(|r| r["output"] == "stats").collect();
    assert_eq!(stats.len(), 10 * 20, "10 devices × 20 windows of 30 s");

    let raised: Vec<_> = results
        .iter()
        .filter(|r| r["output"] == "alerts" && r["fields"]["state"] == "raised")
        .collect();
    assert_eq!(raised.len(), 1, "one alert raised: {raised:?}");
    assert_eq!(raised[0]["key"], "ups-1/string-1/cell-03");

    // The alert comes with the second of two consecutive windows above 35 °C.
    let cell: Vec<_> = stats
        .iter()
        .filter(|s| s["key"] == "ups-1/string-1/cell-03")
        .collect();
    let hot = |i: usize| cell[i]["fields"]["temperature_max"].as_f64().unwrap() > 35.0;
    let second = (1..cell.len())
        .find(|&i| hot(i) && hot(i - 1))
        .expect("two hot windows");
    assert_eq!(raised[0]["time"], cell[second]["time"]);
    assert!(!hot(0), "the cell starts healthy");
}
