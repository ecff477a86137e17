//! What durability costs: pipeline throughput with checkpoints every 1 s and
//! every 100 ms, with the ingest journal off, buffered and synced, against no
//! checkpoints at all, all measured in one run; then the time to recover an
//! operator holding 1 M keys of state.
//!
//! Throughput cases run the pipeline benchmark's "tumbling 10 s, 100 records
//! per key and window" case (1000 keys → `window-stats` → null sink), whose
//! checkpoints hold every open window's records (about 5 MB). The recovery
//! case feeds 1 M distinct keys to `threshold-alert` (which keeps state per
//! key), stops, and times the restart's restore: opening the store, reading
//! and checking the checkpoint, and decoding the state. The stall cases
//! measure what checkpoints every second cost the pipeline thread with 1 M
//! keys of state and with 5 M records in open windows: the longest it went
//! without reading its source, with and without checkpoints (and, with
//! them, the 99.9th percentile of those gaps and how many were over 10 ms:
//! one longest gap also catches whatever else the machine did then), and
//! the longest it waited for a checkpoint's snapshot.
//! Prints a table; writes `target/bench/durability.json`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/stats.rs"]
mod stats;

use stats::percentile;

use eddy_abi::Value;
use eddy_driver::{Driver, DriverError, Poll, Record};
use eddy_driver_sim::{SimConfig, SimDriver};
use eddy_host::checkpoint::StateStore;
use eddy_host::config::{CheckpointConfig, JournalMode, WindowConfig};
use eddy_host::dataflow::control::{peak_resident_bytes, resident_bytes};
use eddy_host::dataflow::{Graph, Harness, RunControl};
use eddy_host::plugin::{PluginEngine, PluginLimits, PluginModule, PluginRunner};
use eddy_host::sinks::NullSink;
use eddy_host::state::OperatorState;

/// Records per throughput run.
const RECORDS: u64 = 5_000_000;
/// Keys of the throughput cases.
const KEYS: u64 = 1000;
/// Keys of the recovery case.
const RECOVERY_KEYS: u64 = 1_000_000;
/// Runs per case; the median is reported.
const RUNS: usize = 3;

fn sim() -> Box<dyn Driver> {
    let config: SimConfig = toml::from_str(&format!(
        r#"
        seed = 1
        start_time_ms = 1_767_225_600_000
        speed = 0
        interval_ms = 100
        duration_ms = {duration}
        ups = [{{ name = "ups-1", strings = 10, cells_per_string = 100 }}]
        "#,
        duration = RECORDS / KEYS * 100,
    ))
    .expect("bench sim config");
    Box::new(SimDriver::new(&config).expect("bench sim"))
}

fn harness(window: Option<&str>) -> Harness {
    Harness {
        params: serde_json::json!({}),
        window: window.map(|w| {
            toml::from_str::<toml::Table>(&format!("window.{w}"))
                .expect("bench window")
                .remove("window")
                .expect("window table")
                .try_into::<WindowConfig>()
                .expect("bench window config")
        }),
        allowed_lateness_ms: 0,
        key_by: None,
        bounded_out_of_orderness_ms: 0,
        batch_size: 1024,
        limits: PluginLimits::default(),
        dead_letter_path: "target/bench/dead-letter.jsonl".into(),
    }
}

fn runner(engine: &PluginEngine, wasm: &str, params: serde_json::Value) -> Box<PluginRunner> {
    let module = PluginModule::load(engine, Path::new(wasm)).expect("plugin loads");
    let mut limits = PluginLimits::default();
    // Room for the recovery case's keys (the default cap holds about 580k of them).
    limits.caps.state_keys = 2 * RECOVERY_KEYS as usize;
    limits.caps.state_bytes = 512 << 20;
    Box::new(
        PluginRunner::start(
            engine,
            Arc::new(module),
            "bench",
            &params,
            limits,
            OperatorState::in_memory(),
        )
        .expect("plugin starts"),
    )
}

/// One throughput configuration: `None` for no checkpoints.
struct Case {
    name: &'static str,
    interval_ms: Option<u64>,
    journal: JournalMode,
}

/// Runs the window pipeline once; returns records per second and checkpoints taken.
fn throughput(engine: &PluginEngine, case: &Case, dir: &Path) -> f64 {
    let mut graph = Graph::single_operator(
        runner(
            engine,
            "target/plugins/window_stats.wasm",
            serde_json::json!({}),
        ),
        &[],
        sim(),
        Box::new(NullSink::default()),
        &harness(Some("tumbling = { size_ms = 10_000 }")),
    )
    .expect("bench graph");
    let _ = std::fs::remove_dir_all(dir);
    let store = StateStore::open(dir).expect("state store");
    if let Some(interval_ms) = case.interval_ms {
        graph.configure_durability(
            CheckpointConfig {
                enabled: true,
                interval_ms,
                retain: 2,
            },
            case.journal,
        );
        graph.attach_store(&store).expect("attach");
    }
    let start = Instant::now();
    let summary = graph.run(&RunControl::default()).expect("bench run");
    assert_eq!(summary.records_in, RECORDS);
    RECORDS as f64 / start.elapsed().as_secs_f64()
}

/// `total` records over `keys` distinct keys (in turn), then it asks the
/// run to stop (a live source: the run's last checkpoint is not a finished
/// one).
struct ManyKeys {
    next: u64,
    total: u64,
    keys: u64,
    stop: Arc<AtomicBool>,
    field: Arc<str>,
}

impl ManyKeys {
    fn new(total: u64, keys: u64, stop: Arc<AtomicBool>) -> Self {
        ManyKeys {
            next: 0,
            total,
            keys,
            stop,
            field: "t".into(),
        }
    }
}

impl Driver for ManyKeys {
    fn poll(&mut self, out: &mut Vec<Record>, max: usize) -> Result<Poll, DriverError> {
        for _ in 0..max {
            if self.next == self.total {
                self.stop.store(true, Ordering::Relaxed);
                return Ok(Poll::WaitUntil(Instant::now() + Duration::from_secs(1)));
            }
            out.push(Record {
                key: format!("sensor-{:07}", self.next % self.keys).into(),
                time: 1_767_225_600_000 + self.next as i64,
                fields: vec![(self.field.clone(), Value::F64(20.0))],
            });
            self.next += 1;
        }
        Ok(Poll::Ready)
    }
}

/// Wraps a source to measure the longest the pipeline went without asking
/// it for records while it had them ready: a batch's processing, plus
/// whatever else the pipeline thread did (a checkpoint's stall, copying
/// state a checkpoint still shares).
struct GapProbe {
    inner: Box<dyn Driver>,
    last: Option<Instant>,
    /// Every gap, in ns.
    gaps: Arc<Mutex<Vec<u64>>>,
}

impl GapProbe {
    fn new(inner: Box<dyn Driver>) -> (Self, Arc<Mutex<Vec<u64>>>) {
        let gaps = Arc::new(Mutex::new(Vec::new()));
        let probe = GapProbe {
            inner,
            last: None,
            gaps: gaps.clone(),
        };
        (probe, gaps)
    }
}

/// The gaps of one run: the longest, the 99.9th percentile, and how many
/// were over 10 ms (a single longest gap also catches whatever else the
/// machine did in that moment).
#[derive(Debug, Clone, Copy)]
struct Gaps {
    longest: Duration,
    p999: Duration,
    over_10ms: usize,
}

impl Gaps {
    fn of(mut gaps: Vec<u64>) -> Gaps {
        if gaps.is_empty() {
            gaps.push(0);
        }
        gaps.sort_unstable();
        Gaps {
            longest: Duration::from_nanos(percentile(&gaps, 1.0)),
            p999: Duration::from_nanos(percentile(&gaps, 0.999)),
            over_10ms: gaps.iter().filter(|g| **g > 10_000_000).count(),
        }
    }
}

impl Driver for GapProbe {
    fn poll(&mut self, out: &mut Vec<Record>, max: usize) -> Result<Poll, DriverError> {
        if let Some(last) = self.last.take() {
            let gap = last.elapsed().as_nanos() as u64;
            self.gaps.lock().expect("gaps").push(gap);
        }
        let poll = self.inner.poll(out, max)?;
        if poll == Poll::Ready {
            self.last = Some(Instant::now());
        }
        Ok(poll)
    }
}

/// What a stall case measured.
struct StallFigures {
    /// The gaps between two polls of the source without checkpoints…
    gap_without: Gaps,
    /// … and with a checkpoint every second.
    gap_with: Gaps,
    /// The longest the pipeline waited for a checkpoint's snapshot.
    stall: Duration,
    /// Checkpoints taken during the run.
    taken: u64,
    /// The size of the last checkpoint's state.
    bytes: u64,
}

/// Runs `build`'s graph twice, without and with a checkpoint every second,
/// and measures how long the pipeline went without reading.
fn stalls(
    dir: &Path,
    build: impl Fn(Arc<AtomicBool>) -> (Graph, Arc<Mutex<Vec<u64>>>),
) -> StallFigures {
    let run = |checkpoints: bool| {
        let _ = std::fs::remove_dir_all(dir);
        let store = StateStore::open(dir).expect("state store");
        let control = RunControl::default();
        let (mut graph, gaps) = build(control.stop.clone());
        graph.configure_durability(
            CheckpointConfig {
                enabled: checkpoints,
                interval_ms: 1000,
                retain: 2,
            },
            JournalMode::Off,
        );
        graph.attach_store(&store).expect("attach");
        let summary = graph.run(&control).expect("stall run");
        let bytes = checkpoints
            .then(|| newest_checkpoint_bytes(&store))
            .flatten()
            .unwrap_or(0);
        (
            Gaps::of(std::mem::take(&mut *gaps.lock().expect("gaps"))),
            summary.checkpoints,
            bytes,
        )
    };
    // The first run of the process also pays for faulting its memory in
    // fresh (first touches of memory are slow on a virtual machine): with
    // much state, the baseline's long gaps are mostly page faults.
    let (gap_without, _, _) = run(false);
    let (gap_with, stats, bytes) = run(true);
    StallFigures {
        gap_without,
        gap_with,
        stall: stats.longest_stall,
        taken: stats.taken,
        bytes,
    }
}

/// The state the newest checkpoint of the store's pipeline holds, from its
/// manifest: loading the checkpoint would read all its state into memory.
fn newest_checkpoint_bytes(store: &StateStore) -> Option<u64> {
    let pipeline = store
        .pipeline(&store.pipelines().into_iter().next()?)
        .ok()?;
    let manifest = pipeline.manifest(*pipeline.ids().first()?).ok()?;
    Some(manifest.operators.iter().map(|o| o.len).sum())
}

/// What the recovery case measured.
struct RecoveryFigures {
    /// Opening the store, dropping an unfinished checkpoint's blobs, reading, checking and
    /// decoding the checkpoint.
    restore: Duration,
    /// One checkpoint of the 1 M keys (the restart takes one after restoring
    /// and one when it stops: half of what the restart took besides restoring).
    checkpoint: Duration,
    /// The store's size on disk.
    bytes: u64,
}

/// Fills an operator with 1 M keys, stops, and restarts it from the checkpoint.
fn recovery(engine: &PluginEngine, dir: &Path) -> RecoveryFigures {
    let params = serde_json::json!({ "field": "t", "threshold": 1e9 });
    let checkpoint = CheckpointConfig {
        enabled: true,
        interval_ms: 3_600_000,
        retain: 2,
    };
    let build = |stop: Arc<AtomicBool>| {
        let source = ManyKeys::new(RECOVERY_KEYS, RECOVERY_KEYS, stop);
        let mut graph = Graph::single_operator(
            runner(
                engine,
                "target/plugins/threshold_alert.wasm",
                params.clone(),
            ),
            &["cleared".to_owned()],
            Box::new(source),
            Box::new(NullSink::default()),
            &harness(None),
        )
        .expect("bench graph");
        graph.configure_durability(checkpoint, JournalMode::Off);
        graph
    };
    let _ = std::fs::remove_dir_all(dir);
    {
        let store = StateStore::open(dir).expect("state store");
        let control = RunControl::default();
        let mut graph = build(control.stop.clone());
        graph.attach_store(&store).expect("attach");
        let summary = graph.run(&control).expect("fill run");
        assert_eq!(summary.records_in, RECOVERY_KEYS);
    }
    let (size, keys) = {
        let store = StateStore::open(dir).expect("reopen");
        let name = store.pipelines().into_iter().next().expect("a pipeline");
        let (latest, _) = store
            .pipeline(&name)
            .and_then(|p| p.latest())
            .expect("the checkpoints");
        let latest = latest.expect("a checkpoint");
        let keys: u64 = latest.manifest.operators.iter().map(|o| o.keys).sum();
        (store.size_on_disk(), keys)
    };
    assert!(
        keys >= RECOVERY_KEYS,
        "the last checkpoint holds {keys} keys, not the {RECOVERY_KEYS} the case restores"
    );
    let control = RunControl::default();
    control.stop.store(true, Ordering::Relaxed);
    // The plugin is compiled before the clock starts: that is not recovery.
    let mut graph = build(control.stop.clone());
    let started = Instant::now();
    let store = StateStore::open(dir).expect("state store");
    let opened = started.elapsed();
    let attaching = Instant::now();
    graph.attach_store(&store).expect("attach");
    let attached = attaching.elapsed();
    let summary = graph.run(&control).expect("recovery run");
    let total = started.elapsed();
    let recovery = summary.recovery.expect("a recovery");
    assert!(recovery.checkpoint.is_some(), "restored a checkpoint");
    let restore = opened + attached + recovery.took;
    RecoveryFigures {
        restore,
        checkpoint: total.saturating_sub(restore) / 2,
        bytes: size,
    }
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

/// Runs the stall cases, prints their table, and returns their rows.
fn stall_cases(engine: &PluginEngine, dir: &Path) -> Vec<serde_json::Value> {
    let keyed = stalls(&dir.with_extension("stall-keys"), |stop| {
        let (source, gaps) = GapProbe::new(Box::new(ManyKeys::new(
            3 * RECOVERY_KEYS,
            RECOVERY_KEYS,
            stop,
        )));
        let graph = Graph::single_operator(
            runner(
                engine,
                "target/plugins/threshold_alert.wasm",
                serde_json::json!({ "field": "t", "threshold": 1e9 }),
            ),
            &["cleared".to_owned()],
            Box::new(source),
            Box::new(NullSink::default()),
            &harness(None),
        )
        .expect("bench graph");
        (graph, gaps)
    });
    let windows = open_windows(engine, dir, RECORDS);
    print_stalls(&[
        (format!("{RECOVERY_KEYS} keys (threshold-alert)"), keyed),
        (format!("{RECORDS} records in open windows"), windows),
    ])
}

/// The stall case of `records` records of 1000 keys in windows that never
/// close before the run stops: its last checkpoint holds them all.
fn open_windows(engine: &PluginEngine, dir: &Path, records: u64) -> StallFigures {
    stalls(&dir.with_extension("stall-windows"), |stop| {
        open_windows_graph(engine, records, stop)
    })
}

/// The open windows' pipeline, reading `records` records.
fn open_windows_graph(
    engine: &PluginEngine,
    records: u64,
    stop: Arc<AtomicBool>,
) -> (Graph, Arc<Mutex<Vec<u64>>>) {
    let (source, gaps) = GapProbe::new(Box::new(ManyKeys::new(records, KEYS, stop)));
    let graph = Graph::single_operator(
        runner(
            engine,
            "target/plugins/window_stats.wasm",
            serde_json::json!({}),
        ),
        &[],
        Box::new(source),
        Box::new(NullSink::default()),
        // One window from 2001-09-09 to 2033-05-18 holds every record
        // (a millisecond apart from 2026-01-01).
        &harness(Some("tumbling = { size_ms = 1_000_000_000_000 }")),
    )
    .expect("bench graph");
    (graph, gaps)
}

/// What restoring the open windows' last checkpoint took.
struct RestoreFigures {
    /// Reading, checking and decoding the checkpoint.
    took: Duration,
    /// The checkpoint's state.
    bytes: u64,
    /// The most resident memory the process gained while restoring.
    peak_gain: u64,
}

/// Restores the open windows' last checkpoint (left by
/// [`open_windows`]) into a new pipeline, which stops at once; measures
/// the process's peak resident memory from there (Linux resets the peak
/// on request: `/proc/self/clear_refs`).
fn restore_open_windows(engine: &PluginEngine, dir: &Path, records: u64) -> RestoreFigures {
    let dir = dir.with_extension("stall-windows");
    let store = StateStore::open(&dir).expect("state store");
    let bytes = newest_checkpoint_bytes(&store).expect("a checkpoint");
    let control = RunControl::default();
    control.stop.store(true, Ordering::Relaxed);
    let (mut graph, _) = open_windows_graph(engine, records, control.stop.clone());
    graph.configure_durability(
        CheckpointConfig {
            enabled: true,
            interval_ms: 3_600_000,
            retain: 2,
        },
        JournalMode::Off,
    );
    graph.attach_store(&store).expect("attach");
    // What the runs before freed goes back to the system first (the purge
    // thread does that each second), so the restore cannot reuse it unseen.
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak resident memory");
    let before = resident_bytes();
    let summary = graph.run(&control).expect("restore run");
    let recovery = summary.recovery.expect("a recovery");
    assert!(recovery.checkpoint.is_some(), "restored a checkpoint");
    RestoreFigures {
        took: recovery.took,
        bytes,
        peak_gain: peak_resident_bytes().saturating_sub(before),
    }
}

/// Prints the stall cases' table and returns its rows.
fn print_stalls(cases: &[(String, StallFigures)]) -> Vec<serde_json::Value> {
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6} {:>10}",
        "checkpoints every 1 s of",
        "gap none",
        "gap ckpt",
        "p99.9 ckpt",
        ">10ms ckpt",
        "stall",
        "taken",
        "state MB"
    );
    let mut stall_rows = Vec::new();
    for (name, figures) in cases {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{name:<44} {:>10.1} {:>10.1} {:>10.1} {:>10} {:>10.2} {:>6} {:>10.1}",
            ms(figures.gap_without.longest),
            ms(figures.gap_with.longest),
            ms(figures.gap_with.p999),
            figures.gap_with.over_10ms,
            ms(figures.stall),
            figures.taken,
            figures.bytes as f64 / 1e6
        );
        stall_rows.push(serde_json::json!({
            "case": name,
            "longest_gap_without_checkpoints_ms": ms(figures.gap_without.longest),
            "longest_gap_with_checkpoints_ms": ms(figures.gap_with.longest),
            "p999_gap_with_checkpoints_ms": ms(figures.gap_with.p999),
            "gaps_over_10ms_with_checkpoints": figures.gap_with.over_10ms,
            "gaps_over_10ms_without_checkpoints": figures.gap_without.over_10ms,
            "longest_checkpoint_stall_ms": ms(figures.stall),
            "checkpoints": figures.taken,
            "checkpoint_bytes": figures.bytes,
        }));
    }
    stall_rows
}

fn main() {
    // Freed memory goes back to the system as `eddy run` gives it back.
    eddy_host::allocator::purge_in_background();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).expect("workspace root");
    assert!(
        Path::new("target/plugins/window_stats.wasm").exists(),
        "run `cargo xtask guests` first (cargo xtask bench does)"
    );
    let engine = PluginEngine::new().expect("engine");
    let dir = Path::new("target/bench/durability-state");
    if std::env::var_os("EDDY_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("EDDY_LOG"))
            .with_writer(std::io::stderr)
            .init();
    }
    if std::env::args().any(|a| a == "recovery") {
        // `cargo bench --bench durability -- recovery`: that case only.
        let figures = recovery(&engine, &dir.with_extension("recovery"));
        println!(
            "recovery: {:?}, one checkpoint: {:?}",
            figures.restore, figures.checkpoint
        );
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "open-windows") {
        // `cargo bench --bench durability -- open-windows GB`: the stall case
        // of open windows only, with about GB gigabytes of records in them
        // (their checkpoints hold 33 bytes a record); written to
        // `target/bench/durability-open-windows.json`; then restores the
        // last checkpoint, and reports the peak memory that took. Long:
        // 5 GB take about 2 min, 5 GB of memory and 15 GB of disk.
        let gb: f64 = args
            .get(at + 1)
            .and_then(|gb| gb.parse().ok())
            .expect("open-windows takes the gigabytes of state: open-windows 5");
        let records = (gb * 1e9 / 33.0) as u64;
        let started = Instant::now();
        let figures = open_windows(&engine, dir, records);
        // The process's peak: the state, twice over if copies were not shared.
        let peak_mib = peak_resident_bytes() as f64 / (1 << 20) as f64;
        println!(
            "open windows of {records} records: {:.0} s, peak resident {peak_mib:.0} MiB",
            started.elapsed().as_secs_f64()
        );
        let rows = print_stalls(&[(format!("{records} records in open windows"), figures)]);
        let restored = restore_open_windows(&engine, dir, records);
        let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
        let gain_over_state = restored.peak_gain as f64 / restored.bytes as f64;
        println!(
            "restoring the last checkpoint ({:.0} MiB): {:.1} s, peak resident memory {:.0} MiB over what the process held ({gain_over_state:.2}× the state)",
            mib(restored.bytes),
            restored.took.as_secs_f64(),
            mib(restored.peak_gain),
        );
        let json = serde_json::json!({
            "gigabytes": gb,
            "records": records,
            "keys": KEYS,
            "peak_resident_mib": peak_mib,
            "restore_s": restored.took.as_secs_f64(),
            "restore_state_mib": mib(restored.bytes),
            "restore_peak_gain_mib": mib(restored.peak_gain),
            "restore_peak_gain_over_state": gain_over_state,
            "stalls": rows,
        });
        std::fs::write(
            "target/bench/durability-open-windows.json",
            serde_json::to_string_pretty(&json).expect("json"),
        )
        .expect("write target/bench/durability-open-windows.json");
        return;
    }
    if args.iter().any(|a| a == "stalls") {
        // `cargo bench --bench durability -- stalls`: those cases only.
        stall_cases(&engine, dir);
        return;
    }
    let cases = [
        Case {
            name: "no checkpoints",
            interval_ms: None,
            journal: JournalMode::Off,
        },
        Case {
            name: "checkpoint every 1 s, no journal",
            interval_ms: Some(1000),
            journal: JournalMode::Off,
        },
        Case {
            name: "checkpoint every 100 ms, no journal",
            interval_ms: Some(100),
            journal: JournalMode::Off,
        },
        Case {
            name: "checkpoint every 1 s, journal buffered",
            interval_ms: Some(1000),
            journal: JournalMode::Buffered,
        },
        Case {
            name: "checkpoint every 1 s, journal sync",
            interval_ms: Some(1000),
            journal: JournalMode::Sync,
        },
        Case {
            name: "checkpoint every 100 ms, journal buffered",
            interval_ms: Some(100),
            journal: JournalMode::Buffered,
        },
    ];
    // `cargo bench --bench durability -- only TEXT`: the throughput cases
    // whose name holds TEXT (to profile one), nothing written.
    let only = args
        .iter()
        .position(|a| a == "only")
        .and_then(|i| args.get(i + 1));
    let cases: Vec<&Case> = cases
        .iter()
        .filter(|c| only.is_none_or(|text| c.name.contains(text.as_str())))
        .collect();
    println!(
        "durability: {KEYS} keys -> window-stats (tumbling 10 s, 100 records per key and window) -> null sink; {RECORDS} records per run, median of {RUNS}"
    );
    println!("{:<44} {:>12} {:>14}", "case", "rec/s", "vs none");
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    // Interleaved, so that drift of a noisy machine touches every case alike.
    for _ in 0..RUNS {
        for (case, runs) in cases.iter().zip(&mut rates) {
            runs.push(throughput(&engine, case, dir));
        }
    }
    let rates: Vec<f64> = rates.into_iter().map(median).collect();
    let mut results = Vec::new();
    for (case, rate) in cases.iter().zip(&rates) {
        let ratio = rate / rates[0];
        println!("{:<44} {rate:>12.0} {ratio:>14.2}", case.name);
        results.push(serde_json::json!({
            "case": case.name,
            "records_per_s": rate,
            "over_no_checkpoints": ratio,
        }));
    }
    if only.is_some() || std::env::args().any(|a| a == "throughput") {
        // `cargo bench --bench durability -- throughput`: those cases only
        // (nothing written).
        return;
    }
    let figures = recovery(&engine, &dir.with_extension("recovery"));
    let (took, bytes) = (figures.restore, figures.bytes);
    println!(
        "recovery of {RECOVERY_KEYS} keys of state: {:.0} ms (store on disk: {:.1} MB); one checkpoint of them: {:.0} ms",
        took.as_secs_f64() * 1e3,
        bytes as f64 / 1e6,
        figures.checkpoint.as_secs_f64() * 1e3
    );
    let stall_rows = stall_cases(&engine, dir);
    let json = serde_json::json!({
        "stalls": stall_rows,
        "records_per_run": RECORDS,
        "runs": RUNS,
        "cases": results,
        "recovery_keys": RECOVERY_KEYS,
        "recovery_ms": took.as_secs_f64() * 1e3,
        "recovery_store_bytes": bytes,
        "checkpoint_of_recovery_keys_ms": figures.checkpoint.as_secs_f64() * 1e3,
    });
    std::fs::write(
        "target/bench/durability.json",
        serde_json::to_string_pretty(&json).expect("json"),
    )
    .expect("write target/bench/durability.json");
    println!("wrote target/bench/durability.json");
}
