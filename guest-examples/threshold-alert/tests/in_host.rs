//! `threshold-alert` compiled to wasm and run in the real host, with its
//! keyed state kept by the host per key. (The plugin comes from `cargo xtask guests`.)

use eddy_host::dataflow::{Graph, Harness, RunControl};
use eddy_host::plugin::{PluginEngine, PluginLimits, PluginModule};
use eddy_host::sinks::MemorySink;
use eddy_sdk::{Record, Value};

fn run(records: Vec<Record>, batch_size: usize) -> Vec<(String, String, String, i64)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/plugins/threshold_alert.wasm");
    assert!(
        path.exists(),
        "run `cargo xtask guests` first: {} is missing",
        path.display()
    );
    let engine = PluginEngine::new().unwrap();
    let module = PluginModule::load(&engine, &path).unwrap();
    let sink = MemorySink::default();
    let harness = Harness {
        params: serde_json::json!({ "field": "t_max", "threshold": 45.0, "clear_below": 40.0 }),
        window: None,
        allowed_lateness_ms: 0,
        key_by: None,
        bounded_out_of_orderness_ms: 0,
        batch_size,
        limits: PluginLimits::default(),
        dead_letter_path: std::env::temp_dir().join("threshold-alert-test-dead-letter.jsonl"),
    };
    let mut graph =
        Graph::single_plugin(&engine, module, records, Box::new(sink.clone()), &harness).unwrap();
    graph.run(&RunControl::default()).unwrap();
    let out = sink.records();
    out.iter()
        .map(|(o, r)| {
            let Some(Value::Str(state)) = r.get("state") else {
                panic!("{r:?}")
            };
            (o.clone(), r.key.to_string(), state.to_string(), r.time)
        })
        .collect()
}

#[test]
fn each_key_has_its_own_count_of_consecutive_breaches() {
    // Two cells interleaved: cell-a breaches every window, cell-b alternates,
    // so only cell-a ever has two breaches in a row.
    let mut records = Vec::new();
    for i in 0..6i64 {
        records.push(Record::new("cell-a", i * 1000).with("t_max", 50.0));
        let b = if i % 2 == 0 { 50.0 } else { 41.0 };
        records.push(Record::new("cell-b", i * 1000).with("t_max", b));
    }
    let expected = vec![(
        "threshold-alert".to_owned(),
        "cell-a".to_owned(),
        "raised".to_owned(),
        1000,
    )];
    assert_eq!(run(records.clone(), 1024), expected);
    // State lives in the host across calls: one record per call gives the same.
    assert_eq!(run(records, 1), expected);
}
