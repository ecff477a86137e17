//! The incremental aggregate gives exactly `window-stats`' output in the real
//! host, for tumbling, sliding and session windows with late records.
//! (The plugins come from `cargo xtask guests`.)

use eddy_host::config::WindowConfig;
use eddy_host::dataflow::{Graph, Harness, RunControl};
use eddy_host::plugin::{PluginEngine, PluginLimits, PluginModule};
use eddy_host::sinks::MemorySink;
use eddy_sdk::Record;

/// Three keys, a reading every 100 ms for 20 s, with every seventh one 2.5 s
/// late; integer values (`v` a float, `w` an integer), so sums are exact
/// whatever the order of addition.
fn input() -> Vec<Record> {
    let mut records = Vec::new();
    for i in 0..200i64 {
        for (k, key) in ["a", "b", "c"].iter().enumerate() {
            let late = if i % 7 == 0 { 2500 } else { 0 };
            let time = (i * 100 - late).max(0) + k as i64 * 1500 * (i % 11 / 10);
            records.push(
                Record::new(*key, time)
                    .with("v", ((i * 7 + k as i64) % 23) as f64)
                    .with("w", (i % 5) - 2),
            );
        }
    }
    records
}

fn run(plugin: &str, window: &str, params: &serde_json::Value) -> Vec<(String, Record)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../target/plugins/{plugin}.wasm"));
    assert!(
        path.exists(),
        "run `cargo xtask guests` first: {} is missing",
        path.display()
    );
    let engine = PluginEngine::new().unwrap();
    let module = PluginModule::load(&engine, &path).unwrap();
    let window: WindowConfig = toml::from_str::<toml::Table>(&format!("window.{window}"))
        .unwrap()
        .remove("window")
        .unwrap()
        .try_into()
        .unwrap();
    let sink = MemorySink::default();
    let harness = Harness {
        params: params.clone(),
        window: Some(window),
        allowed_lateness_ms: 3000,
        key_by: None,
        bounded_out_of_orderness_ms: 500,
        batch_size: 64,
        limits: PluginLimits::default(),
        dead_letter_path: std::env::temp_dir().join(format!("{plugin}-test-dead-letter.jsonl")),
    };
    let mut graph =
        Graph::single_plugin(&engine, module, input(), Box::new(sink.clone()), &harness).unwrap();
    assert_eq!(graph.run(&RunControl::default()).unwrap().dead_lettered, 0);
    sink.records()
        .into_iter()
        .map(|(output, r)| {
            (
                output.replace("window-stats-incremental", "window-stats"),
                r,
            )
        })
        .collect()
}

fn same_as_full_window(window: &str) {
    same_as_full_window_with(window, &serde_json::json!({ "fields": ["v"] }));
}

fn same_as_full_window_with(window: &str, params: &serde_json::Value) {
    let full = run("window_stats", window, params);
    let incremental = run("window_stats_incremental", window, params);
    assert!(
        full.iter()
            .any(|(_, r)| r.get("update") == Some(&eddy_sdk::Value::Bool(true))),
        "some updates"
    );
    assert!(
        full.iter().any(|(o, _)| o.ends_with(".late")),
        "some late records"
    );
    assert_eq!(incremental, full);
}

#[test]
fn tumbling() {
    same_as_full_window("tumbling = { size_ms = 1000 }");
}

#[test]
fn sliding() {
    same_as_full_window("sliding = { size_ms = 2000, slide_ms = 500 }");
}

#[test]
fn sessions_merged_by_late_records() {
    same_as_full_window("session = { gap_ms = 150 }");
}

#[test]
fn sessions_of_every_numeric_field() {
    // No fields in the params: both find `v` and `w` in the records, and
    // the accumulators keep the names.
    let params = serde_json::json!({});
    same_as_full_window_with("session = { gap_ms = 150 }", &params);
    let out = run(
        "window_stats_incremental",
        "session = { gap_ms = 150 }",
        &params,
    );
    assert!(
        out.iter()
            .any(|(_, r)| r.get("w_sum").is_some() && r.get("v_max").is_some()),
        "both fields aggregated"
    );
}
