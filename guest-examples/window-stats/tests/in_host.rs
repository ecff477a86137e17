//! `window-stats` compiled to wasm and run in the real host: its results
//! match a direct computation, and do not depend on batch sizes.
//! (The plugin comes from `cargo xtask guests`.)

use eddy_host::config::{TumblingConfig, WindowConfig, WindowTime};
use eddy_host::dataflow::{Graph, Harness, RunControl};
use eddy_host::plugin::{PluginEngine, PluginLimits, PluginModule};
use eddy_host::sinks::MemorySink;
use eddy_sdk::{Record, Value};
use std::collections::BTreeMap;

fn plugin() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/plugins/window_stats.wasm");
    assert!(
        path.exists(),
        "run `cargo xtask guests` first: {} is missing",
        path.display()
    );
    path
}

/// Three keys, a reading every 100 ms for 10 s, every fifth one 300 ms late
/// (within the 500 ms bound, so nothing is dropped).
fn input() -> Vec<Record> {
    let mut records = Vec::new();
    for i in 0..100i64 {
        for (k, key) in ["a", "b", "c"].iter().enumerate() {
            let time = i * 100 - if i % 5 == 0 { 300 } else { 0 };
            let value = ((i * 7 + k as i64 * 13) % 29) as f64 / 4.0;
            records.push(Record::new(*key, time.max(0)).with("v", value));
        }
    }
    records
}

fn run(batch_size: usize) -> Vec<(String, Record)> {
    let engine = PluginEngine::new().unwrap();
    let module = PluginModule::load(&engine, &plugin()).unwrap();
    let sink = MemorySink::default();
    let harness = Harness {
        params: serde_json::json!({ "fields": ["v"] }),
        window: Some(WindowConfig::Tumbling(TumblingConfig {
            size_ms: 1000,
            offset_ms: 0,
            time: WindowTime::Event,
        })),
        allowed_lateness_ms: 0,
        key_by: None,
        bounded_out_of_orderness_ms: 500,
        batch_size,
        limits: PluginLimits::default(),
        dead_letter_path: std::env::temp_dir().join("window-stats-test-dead-letter.jsonl"),
    };
    let mut graph =
        Graph::single_plugin(&engine, module, input(), Box::new(sink.clone()), &harness).unwrap();
    let summary = graph.run(&RunControl::default()).unwrap();
    assert_eq!(summary.dead_lettered, 0);
    sink.records()
}

#[test]
fn results_match_a_direct_computation() {
    let out = run(4096);
    let mut expected: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    for r in input() {
        let v = r.get("v").and_then(Value::as_f64).unwrap();
        expected
            .entry((r.key.to_string(), r.time / 1000 * 1000))
            .or_default()
            .push(v);
    }
    assert_eq!(out.len(), expected.len());
    for (output, record) in &out {
        assert_eq!(output, "window-stats");
        let start = record.get("window_start").and_then(Value::as_f64).unwrap() as i64;
        let values = &expected[&(record.key.to_string(), start)];
        let get = |f: &str| record.get(f).and_then(Value::as_f64).unwrap();
        assert_eq!(record.time, start + 999);
        assert_eq!(get("count"), values.len() as f64);
        assert_eq!(
            get("v_min"),
            values.iter().copied().fold(f64::INFINITY, f64::min)
        );
        assert_eq!(
            get("v_max"),
            values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        );
        let sum: f64 = values.iter().sum();
        assert!((get("v_avg") - sum / values.len() as f64).abs() < 1e-9);
    }
}

#[test]
fn results_do_not_depend_on_batch_sizes() {
    let reference = run(4096);
    assert_eq!(run(1), reference);
    assert_eq!(run(7), reference);
}
