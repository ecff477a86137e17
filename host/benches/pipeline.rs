//! Pipeline throughput: source → window operator → null sink, on one pipeline thread.
//!
//! A third column runs `window-stats-incremental`, the same statistics as an
//! incremental aggregate (one accumulator per window instead of its records).
//!
//! Each case runs the same engine path (sim driver, watermarks, window
//! buffering, batch encoding, null sink) with the operator's logic either as
//! the compiled `window-stats` plugin under wasmtime or as the very same
//! Rust function (`window_stats::window_stats`) compiled natively, decoding
//! the same input bytes. Both are measured in one run, so their ratio holds
//! on a noisy machine. Cases: tumbling windows (10 and 100 records per key
//! and window), sliding windows of 10 s every 1 s, and session windows (a
//! bursty source, as sessions of a steady sim never close). A source-only
//! case shows what producing records costs. Prints a table; writes `target/bench/pipeline.json`.

use std::path::Path;
use std::time::Instant;

use eddy_abi::{OperatorKind, Value};
use eddy_driver::{Driver, DriverError, Poll, Record};
use eddy_driver_sim::{SimConfig, SimDriver};
use eddy_host::config::WindowConfig;
use eddy_host::dataflow::{Graph, Harness, RunControl};
use eddy_host::plugin::{
    Entry, OperatorLogic, OutputRun, Outputs, PluginEngine, PluginFault, PluginLimits,
    PluginModule, PluginRunner,
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

/// Bursts for session windows: every key reads ten times, 100 ms apart, then
/// is silent for 4 s, so each session (gap 1 s) holds ten readings.
struct Bursts {
    keys: Vec<std::sync::Arc<str>>,
    names: [std::sync::Arc<str>; 3],
    next: u64,
}

impl Bursts {
    fn driver() -> Box<dyn Driver> {
        Box::new(Bursts {
            keys: (0..KEYS).map(|k| format!("cell-{k:04}").into()).collect(),
            names: ["voltage".into(), "temperature".into(), "resistance".into()],
            next: 0,
        })
    }
}

impl Driver for Bursts {
    fn poll(&mut self, out: &mut Vec<Record>, max: usize) -> Result<Poll, DriverError> {
        for _ in 0..max {
            if self.next == RECORDS {
                return Ok(Poll::Ended);
            }
            let (reading, key) = (self.next / KEYS, self.next % KEYS);
            let time = 1_767_225_600_000 + (reading / 10 * 5000 + reading % 10 * 100) as i64;
            let v = (self.next % 97) as f64 / 10.0;
            out.push(Record {
                key: self.keys[key as usize].clone(),
                time,
                fields: vec![
                    (self.names[0].clone(), Value::F64(13.0 + v / 100.0)),
                    (self.names[1].clone(), Value::F64(25.0 + v)),
                    (self.names[2].clone(), Value::F64(4.0 + v / 10.0)),
                ],
            });
            self.next += 1;
        }
        Ok(Poll::Ready)
    }
}

/// One measured configuration.
struct Case {
    name: &'static str,
    source: fn() -> Box<dyn Driver>,
    window: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "tumbling 10 s, 10 records per key and window",
            source: || sim(1000),
            window: "tumbling = { size_ms = 10_000 }",
        },
        Case {
            name: "tumbling 10 s, 100 records per key and window",
            source: || sim(100),
            window: "tumbling = { size_ms = 10_000 }",
        },
        Case {
            name: "sliding 10 s every 1 s (each record in 10 windows)",
            source: || sim(1000),
            window: "sliding = { size_ms = 10_000, slide_ms = 1000 }",
        },
        Case {
            name: "session, gap 1 s, 10 records per session",
            source: Bursts::driver,
            window: "session = { gap_ms = 1000 }",
        },
    ]
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
        let mut runs = Vec::with_capacity(batch.windows.len());
        for (i, window) in batch.windows.iter().enumerate() {
            window_stats::window_stats(window, &mut ctx)
                .map_err(|e| PluginFault::Failed(e.to_string()))?;
            ctx.flush();
            // Each record carries the window it derives from, as the SDK says.
            runs.push(OutputRun {
                output: String::new(),
                records: eddy_sdk::native::take_emitted()
                    .into_iter()
                    .map(|(_, r)| (Some(i as u32), r))
                    .collect(),
            });
        }
        Ok(runs)
    }

    fn state_mut(&mut self) -> &mut OperatorState {
        &mut self.state
    }
}

/// Runs one graph to the end; returns records per second.
fn measure(logic: Option<Box<dyn OperatorLogic>>, case: &Case) -> f64 {
    let window: WindowConfig = toml::from_str::<toml::Table>(&format!("window.{}", case.window))
        .expect("bench window")
        .remove("window")
        .expect("window table")
        .try_into()
        .expect("bench window config");
    let harness = Harness {
        params: serde_json::json!({}),
        window: Some(window),
        allowed_lateness_ms: 0,
        key_by: None,
        bounded_out_of_orderness_ms: 0,
        batch_size: 1024,
        limits: PluginLimits::default(),
        dead_letter_path: "target/bench/dead-letter.jsonl".into(),
    };
    let start = Instant::now();
    let records = match logic {
        Some(logic) => {
            let sink = Box::new(NullSink::default());
            let mut graph = Graph::single_operator(logic, &[], (case.source)(), sink, &harness)
                .expect("bench graph");
            let summary = graph.run(&RunControl::default()).expect("bench run");
            assert_eq!(
                summary.dead_lettered, 0,
                "the benchmark dead-lettered records"
            );
            summary.records_in
        }
        None => drain((case.source)()),
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
    let load = |wasm: &Path| -> Box<dyn OperatorLogic> {
        let module = PluginModule::load(&engine, wasm).expect("plugin loads");
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
    let incremental_wasm = Path::new("target/plugins/window_stats_incremental.wasm");
    let plugin = || load(wasm);
    let incremental = || load(incremental_wasm);
    let native = || -> Box<dyn OperatorLogic> {
        Box::new(NativeWindowStats {
            state: OperatorState::in_memory(),
        })
    };

    let cases = cases();
    let source = median((0..RUNS).map(|_| measure(None, &cases[0])).collect());
    println!(
        "pipeline: {KEYS} keys -> window-stats -> null sink, one pipeline thread; {RECORDS} records per run, median of {RUNS}"
    );
    println!(
        "{:<52} {:>12} {:>13} {:>6} {:>17}",
        "case", "wasm rec/s", "native rec/s", "ratio", "incremental rec/s"
    );
    println!("{:<52} {:>12.0}", "source only (sim, no operator)", source);
    let mut results = Vec::new();
    for case in &cases {
        let mut wasm_runs = Vec::new();
        let mut native_runs = Vec::new();
        let mut incremental_runs = Vec::new();
        for _ in 0..RUNS {
            wasm_runs.push(measure(Some(plugin()), case));
            native_runs.push(measure(Some(native()), case));
            incremental_runs.push(measure(Some(incremental()), case));
        }
        let (wasm_rate, native_rate) = (median(wasm_runs), median(native_runs));
        let incremental_rate = median(incremental_runs);
        println!(
            "{:<52} {wasm_rate:>12.0} {native_rate:>13.0} {:>6.2} {incremental_rate:>17.0}",
            case.name,
            wasm_rate / native_rate
        );
        results.push(serde_json::json!({
            "case": case.name,
            "window": case.window,
            "wasm_records_per_s": wasm_rate,
            "native_records_per_s": native_rate,
            "wasm_over_native": wasm_rate / native_rate,
            "wasm_incremental_aggregate_records_per_s": incremental_rate,
        }));
    }
    let json = serde_json::json!({
        "records_per_run": RECORDS,
        "keys": KEYS,
        "runs": RUNS,
        "source_only_records_per_s": source,
        "cases": results,
    });
    std::fs::create_dir_all("target/bench").expect("target/bench");
    std::fs::write(
        "target/bench/pipeline.json",
        serde_json::to_string_pretty(&json).expect("json"),
    )
    .expect("write target/bench/pipeline.json");
    println!("wrote target/bench/pipeline.json");
}
