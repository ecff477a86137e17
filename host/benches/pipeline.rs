//! Pipeline throughput: sim → operator → null sink, on one pipeline thread.
//!
//! Each case runs the same engine path (sim driver, watermarks, window
//! buffering, batch encoding, null sink) with the operator's logic either as
//! the compiled `window-stats` plugin under wasmtime or as the very same
//! Rust function (`window_stats::window_stats`) compiled natively, decoding
//! the same input bytes. Both are measured in one run, so their ratio holds
//! on a noisy machine. A source-only case shows what the engine costs
//! without any operator. Prints a table; writes `target/bench/pipeline.json`.

use std::path::Path;
use std::time::Instant;

use eddy_abi::OperatorKind;
use eddy_driver::{Driver, DriverError, Poll, Record};
use eddy_driver_sim::{SimConfig, SimDriver};
use eddy_host::dataflow::{Graph, Harness, RunControl};
use eddy_host::plugin::{
    Entry, OperatorLogic, Outputs, PluginEngine, PluginFault, PluginLimits, PluginModule,
    PluginRunner,
};
use eddy_host::sinks::NullSink;
use eddy_host::state::OperatorState;

/// Records per measured run.
const RECORDS: u64 = 5_000_000;
/// Distinct keys: 10 battery strings of 100 cells.
const KEYS: u64 = 1000;
/// Runs per case; the median is reported.
const RUNS: usize = 3;

/// The sim with a reading per key every `interval` ms of event time.
fn sim(interval: u64) -> Box<dyn Driver> {
    let config: SimConfig = toml::from_str(&format!(
        r#"
        seed = 1
        start_time_ms = 1_767_225_600_000
        speed = 0
        interval_ms = {interval}
        duration_ms = {duration}
        ups = [{{ name = "ups-1", strings = 10, cells_per_string = 100 }}]
        "#,
        duration = RECORDS / KEYS * interval,
    ))
    .expect("bench sim config");
    Box::new(SimDriver::new(&config).expect("bench sim"))
}

/// `window_stats::window_stats` compiled for this machine, behind the same
/// encoded-input interface as the plugin.
struct NativeWindowStats {
    state: OperatorState,
}

impl OperatorLogic for NativeWindowStats {
    fn kind(&self) -> OperatorKind {
        OperatorKind::Window
    }

    fn name(&self) -> &str {
        "window-stats-native"
    }

    fn call(&mut self, _entry: Entry, input: &[u8]) -> Result<Outputs, PluginFault> {
        let batch = eddy_abi::decode::window_input(input)
            .map_err(|e| PluginFault::Failed(e.to_string()))?;
        let mut ctx = eddy_sdk::Context::new(window_stats::Params::default(), batch.watermark);
        for window in &batch.windows {
            window_stats::window_stats(window, &mut ctx)
                .map_err(|e| PluginFault::Failed(e.to_string()))?;
        }
        ctx.flush();
        let records = eddy_sdk::native::take_emitted()
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        Ok(vec![(String::new(), records)])
    }

    fn state_mut(&mut self) -> &mut OperatorState {
        &mut self.state
    }
}

/// Runs one graph to the end; returns records per second.
fn measure(logic: Option<Box<dyn OperatorLogic>>, interval: u64, window_ms: u64) -> f64 {
    let harness = Harness {
        params: serde_json::json!({}),
        window_ms: Some(window_ms),
        key_by: None,
        bounded_out_of_orderness_ms: 0,
        batch_size: 1024,
        limits: PluginLimits::default(),
        dead_letter_path: "target/bench/dead-letter.jsonl".into(),
    };
    let start = Instant::now();
    let records = match logic {
        Some(logic) => {
            let mut graph = Graph::single_operator(
                logic,
                &[],
                sim(interval),
                Box::new(NullSink::default()),
                &harness,
            )
            .expect("bench graph");
            let summary = graph.run(&RunControl::default()).expect("bench run");
            assert_eq!(
                summary.dead_lettered, 0,
                "the benchmark dead-lettered records"
            );
            summary.records_in
        }
        None => drain(sim(interval)),
    };
    assert_eq!(records, RECORDS);
    records as f64 / start.elapsed().as_secs_f64()
}

/// The source alone: what producing records costs.
fn drain(mut driver: Box<dyn Driver>) -> u64 {
    let mut batch: Vec<Record> = Vec::with_capacity(1024);
    let mut total = 0;
    loop {
        let poll: Result<Poll, DriverError> = driver.poll(&mut batch, 1024);
        total += batch.len() as u64;
        batch.clear();
        if poll.expect("sim poll") == Poll::Ended {
            return total;
        }
    }
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).expect("workspace root");
    let wasm = Path::new("target/plugins/window_stats.wasm");
    assert!(
        wasm.exists(),
        "run `cargo xtask guests` first (cargo xtask bench does)"
    );
    let engine = PluginEngine::new().expect("engine");
    let plugin = || -> Box<dyn OperatorLogic> {
        let module = PluginModule::load(&engine, wasm).expect("window_stats.wasm loads");
        let runner = PluginRunner::start(
            &engine,
            std::sync::Arc::new(module),
            "window-stats",
            &serde_json::json!({}),
            PluginLimits::default(),
            OperatorState::in_memory(),
        )
        .expect("plugin starts");
        Box::new(runner)
    };
    let native = || -> Box<dyn OperatorLogic> {
        Box::new(NativeWindowStats {
            state: OperatorState::in_memory(),
        })
    };

    let window_ms = 10_000;
    let source = median((0..RUNS).map(|_| measure(None, 1000, window_ms)).collect());
    println!(
        "pipeline: sim ({KEYS} keys) -> window-stats, tumbling 10 s -> null sink; {RECORDS} records per run, median of {RUNS}"
    );
    println!(
        "{:<44} {:>14} {:>14} {:>8}",
        "case", "wasm rec/s", "native rec/s", "ratio"
    );
    println!("{:<44} {:>14.0}", "source only (sim, no operator)", source);
    let mut cases = Vec::new();
    // One reading per key per second, then ten: 10 and 100 records per key and window.
    for interval in [1000, 100] {
        let mut wasm_runs = Vec::new();
        let mut native_runs = Vec::new();
        for _ in 0..RUNS {
            wasm_runs.push(measure(Some(plugin()), interval, window_ms));
            native_runs.push(measure(Some(native()), interval, window_ms));
        }
        let (wasm_rate, native_rate) = (median(wasm_runs), median(native_runs));
        let per_window = window_ms / interval;
        let name = format!("tumbling 10 s, {per_window} records per key and window");
        println!(
            "{name:<44} {wasm_rate:>14.0} {native_rate:>14.0} {:>8.2}",
            wasm_rate / native_rate
        );
        cases.push(serde_json::json!({
            "case": name,
            "reading_interval_ms": interval,
            "window_ms": window_ms,
            "wasm_records_per_s": wasm_rate,
            "native_records_per_s": native_rate,
            "wasm_over_native": wasm_rate / native_rate,
        }));
    }
    let json = serde_json::json!({
        "records_per_run": RECORDS,
        "keys": KEYS,
        "runs": RUNS,
        "source_only_records_per_s": source,
        "cases": cases,
    });
    std::fs::create_dir_all("target/bench").expect("target/bench");
    std::fs::write(
        "target/bench/pipeline.json",
        serde_json::to_string_pretty(&json).expect("json"),
    )
    .expect("write target/bench/pipeline.json");
    println!("wrote target/bench/pipeline.json");
}
