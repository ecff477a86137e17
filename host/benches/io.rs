//! The I/O layer's figures, in one run:
//!
//! 1. **File source, CSV against JSON lines**: the same records (1000 keys,
//!    each reporting every 10 ms, so 100 records per key and 1 s window)
//!    written once as a CSV file and once as JSON lines, each read by a real
//!    pipeline (`[sources.r.file]` → `window-stats` with 1 s tumbling windows
//!    → null sink) on one pipeline thread, end to end; and each format read
//!    by the file source alone, to show what decoding costs.
//! 2. **Latency of a live source**: a TCP server sends 1000 records/s, each
//!    carrying the instant it was written; the pipeline reads them with the
//!    `tcp` source and writes them with the `tcp` sink to a second server,
//!    which takes the difference when each line arrives: p50, p99 and the
//!    worst, from socket to socket.
//!
//! `EDDY_BENCH_RECORDS` overrides the 10 M records of the first part;
//! `EDDY_BENCH_CASE=files`, `csv`, `json` or `latency` runs one part only
//! (for profiling).
//! Prints tables; writes `target/bench/io.json` (after both parts).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "support/stats.rs"]
mod stats;

use stats::percentile;

use eddy_driver::{Poll, SourceConfig};
use eddy_host::config;
use eddy_host::dataflow::{Graph, RunControl};

/// Distinct keys.
const KEYS: u64 = 1000;
/// Event time between two readings of one key, ms.
const EVERY_MS: u64 = 10;
/// Records per second of the latency case, and how long it runs.
const RATE: u64 = 1000;
const LATENCY_RUN: Duration = Duration::from_secs(12);
/// The first records of the latency case, while connections come up, are not counted.
const WARM_UP: usize = 1000;

fn records() -> u64 {
    std::env::var("EDDY_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000_000)
}

/// Writes the input files unless they exist with this many records.
fn input_files(dir: &Path, records: u64) -> (PathBuf, PathBuf) {
    let csv = dir.join(format!("readings-{records}.csv"));
    let jsonl = dir.join(format!("readings-{records}.jsonl"));
    if csv.exists() && jsonl.exists() {
        return (csv, jsonl);
    }
    std::fs::create_dir_all(dir).expect("bench folder");
    let mut c = BufWriter::new(std::fs::File::create(&csv).expect("csv"));
    let mut j = BufWriter::new(std::fs::File::create(&jsonl).expect("jsonl"));
    writeln!(c, "key,time,voltage,temperature").expect("write");
    for i in 0..records {
        let key = i % KEYS;
        let time = 1_767_225_600_000 + (i / KEYS * EVERY_MS) as i64;
        // Three decimals, as sensors report; varies with key and time.
        let voltage = 13.0 + ((i * 7 + key) % 500) as f64 / 1000.0;
        let temperature = 20.0 + ((i * 13 + key * 3) % 15_000) as f64 / 1000.0;
        writeln!(c, "cell-{key:04},{time},{voltage:.3},{temperature:.3}").expect("write");
        writeln!(
            j,
            r#"{{"key":"cell-{key:04}","time":{time},"voltage":{voltage:.3},"temperature":{temperature:.3}}}"#
        )
        .expect("write");
    }
    c.flush().expect("flush");
    j.flush().expect("flush");
    (csv, jsonl)
}

/// A pipeline reading `file` into `window-stats`; returns records/s.
fn end_to_end(file: &Path, records: u64) -> f64 {
    let text = format!(
        r#"[pipeline]
dead_letter_path = "target/bench/io-dead-letter.jsonl"
[checkpoint]
enabled = false
[api]
enabled = false

[sources.r.file]
path = {file:?}

[operators.stats]
inputs = ["r"]
plugin = "target/plugins/window_stats.wasm"
window.tumbling = {{ size_ms = 1000 }}

[sinks.none]
inputs = ["stats"]
[sinks.none.null]
"#,
        file = file.display().to_string()
    );
    let pipeline = config::parse(Path::new("bench.toml"), text).expect("bench pipeline");
    let mut graph = Graph::build(&pipeline).expect("bench graph");
    graph.open(None, None).expect("open");
    let started = Instant::now();
    let summary = graph.run(&RunControl::default()).expect("bench run");
    let took = started.elapsed();
    assert_eq!(summary.records_in, records);
    assert_eq!(summary.dead_lettered, 0);
    let windows = records / KEYS / (1000 / EVERY_MS) * KEYS;
    assert_eq!(summary.written, [("none".to_owned(), windows)]);
    records as f64 / took.as_secs_f64()
}

/// The file source alone; returns records/s.
fn source_only(file: &Path, records: u64) -> f64 {
    let settings: eddy_driver_file::FileSourceConfig =
        toml::from_str(&format!("path = {:?}", file.display().to_string())).expect("settings");
    let services = eddy_driver::Services::new();
    let cx = eddy_driver::Context {
        pipeline: "bench",
        name: "r",
        base_dir: Path::new("."),
        services: &services,
        watermarks: eddy_driver::Watermarks::default(),
    };
    let started = Instant::now();
    let eddy_driver::Source::Polled(mut driver) = settings.open(&cx).expect("open") else {
        panic!("the file source is polled");
    };
    let mut batch = Vec::with_capacity(1024);
    let mut total = 0;
    loop {
        let poll = driver.poll(&mut batch, 1024).expect("poll");
        total += batch.len() as u64;
        batch.clear();
        if poll == Poll::Ended {
            break;
        }
    }
    assert_eq!(total, records);
    total as f64 / started.elapsed().as_secs_f64()
}

fn wall_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Latencies from a feeding server, through the pipeline, to a receiving server.
fn latency() -> Vec<Duration> {
    let feed = TcpListener::bind("127.0.0.1:0").expect("feed");
    let receive = TcpListener::bind("127.0.0.1:0").expect("receive");
    let (feed_at, receive_at) = (feed.local_addr().unwrap(), receive.local_addr().unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let feeder = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (stream, _) = feed.accept().expect("eddy connects");
            stream.set_nodelay(true).unwrap();
            let mut stream = stream;
            let start = Instant::now();
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                // Paced by the clock, not by sleeps adding up.
                let due = start + Duration::from_nanos(n * 1_000_000_000 / RATE);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let line = format!(
                    "{{\"key\":\"meter\",\"time\":{},\"sent_ns\":\"{}\"}}\n",
                    1_767_225_600_000 + n as i64,
                    wall_ns()
                );
                if stream.write_all(line.as_bytes()).is_err() {
                    return;
                }
                n += 1;
            }
        })
    };
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let receiver = {
        let latencies = latencies.clone();
        std::thread::spawn(move || {
            let (stream, _) = receive.accept().expect("eddy connects");
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                let arrived = wall_ns();
                let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
                let sent: u128 = value["fields"]["sent_ns"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .expect("sent_ns");
                latencies
                    .lock()
                    .unwrap()
                    .push(Duration::from_nanos(arrived.saturating_sub(sent) as u64));
            }
        })
    };
    let text = format!(
        r#"[checkpoint]
enabled = false
[api]
enabled = false

[sources.feed]
journal = "off"
[sources.feed.tcp]
address = "{feed_at}"

[sinks.out]
inputs = ["feed"]
[sinks.out.tcp]
address = "{receive_at}"
"#
    );
    let pipeline = config::parse(Path::new("latency.toml"), text).expect("latency pipeline");
    let mut graph = Graph::build(&pipeline).expect("graph");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    graph.open(Some(runtime.handle()), None).expect("open");
    let control = RunControl {
        deadline: Some(Instant::now() + LATENCY_RUN),
        ..RunControl::default()
    };
    graph.run(&control).expect("run");
    done.store(true, Ordering::Relaxed);
    drop(graph);
    runtime.shutdown_timeout(Duration::from_secs(1));
    let _ = feeder.join();
    let _ = receiver.join();
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    assert!(
        latencies.len() > WARM_UP * 5,
        "{} records went through",
        latencies.len()
    );
    latencies.drain(..WARM_UP);
    latencies.sort();
    latencies
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).expect("workspace root");
    assert!(
        Path::new("target/plugins/window_stats.wasm").exists(),
        "run `cargo xtask guests` first (cargo xtask bench does)"
    );
    let records = records();
    let only = std::env::var("EDDY_BENCH_CASE").ok();
    let (csv, jsonl) = input_files(Path::new("target/bench/io"), records);
    println!(
        "file source: {records} records, {KEYS} keys, 1 s tumbling windows of window-stats, null sink; one pipeline thread"
    );
    println!("| format | file size | end to end rec/s | source alone rec/s |");
    println!("| --- | --- | --- | --- |");
    let mut results = Vec::new();
    let files = [("csv", &csv), ("json lines", &jsonl)];
    let files = match only.as_deref() {
        Some("latency") => &files[..0],
        Some("csv") => &files[..1],
        Some("json") => &files[1..],
        _ => &files[..],
    };
    for &(format, file) in files {
        let size = std::fs::metadata(file).map_or(0, |m| m.len());
        let through = end_to_end(file, records);
        if only.as_deref().is_some_and(|case| case != "files") {
            println!("| {format} | | {:.2} M | |", through / 1e6);
            continue;
        }
        let alone = source_only(file, records);
        println!(
            "| {format} | {:.0} MB | {:.2} M | {:.2} M |",
            size as f64 / 1e6,
            through / 1e6,
            alone / 1e6
        );
        results.push(serde_json::json!({
            "format": format,
            "bytes": size,
            "end_to_end_records_per_s": through,
            "source_only_records_per_s": alone,
        }));
    }
    if only.as_deref().is_some_and(|case| case != "latency") {
        return;
    }
    let sorted = latency();
    let (p50, p99, max) = (
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        *sorted.last().expect("latencies"),
    );
    println!(
        "\nlive source -> sink latency, tcp source to tcp sink, {RATE} records/s, {} records: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        sorted.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    let json = serde_json::json!({
        "records": records,
        "keys": KEYS,
        "file_source": results,
        "latency": {
            "records_per_s": RATE,
            "records": sorted.len(),
            "p50_ms": p50.as_secs_f64() * 1e3,
            "p99_ms": p99.as_secs_f64() * 1e3,
            "max_ms": max.as_secs_f64() * 1e3,
        },
    });
    std::fs::create_dir_all("target/bench").expect("target/bench");
    std::fs::write(
        "target/bench/io.json",
        serde_json::to_string_pretty(&json).expect("json"),
    )
    .expect("write target/bench/io.json");
    println!("wrote target/bench/io.json");
}
