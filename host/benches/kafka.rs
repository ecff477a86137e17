//! Kafka figures, in one run, against librdkafka's mock cluster started
//! here (it speaks the Kafka protocol over TCP on 127.0.0.1; a real broker
//! is slower to start and not needed for eddy's side of the cost), with a
//! release `eddy run`:
//!
//! 1. **End to end**: readings of 100 sensors on 8 partitions, read by the
//!    `kafka` source from the earliest offset, through the seeds' job (1 s
//!    windows, alerts) and produced back through the outbox (idempotent,
//!    `acks=all`, lz4). Records per second into eddy until every result is
//!    acknowledged, and eddy's CPU time (user + system) per record.
//! 2. **Drain**: simulated results written to a `kafka` sink whose cluster
//!    is down (every result waits in the outbox), then the cluster back and
//!    the outbox delivered: results per second.
//!
//! Prints a table; writes `target/bench/kafka.json`.

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

#[path = "support/process.rs"]
mod process;

use process::{Killed, cpu};

#[path = "support/run.rs"]
mod run;

use run::{eddy, no_input, seeds_job, status, ten_ups};

/// Readings in the end-to-end case. The mock cluster keeps at most 100 000
/// messages (and 5 MB) a partition: these fit in its 8 partitions.
const READINGS: u64 = 300_000;
/// Sensors they come from.
const SENSORS: u64 = 100;
/// Results in the drain case.
const BACKLOG: u64 = 1_000_000;

/// The readings, one message each, keyed by sensor, the event time as the
/// message timestamp.
fn produce(brokers: &str) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let t0 = 1_767_225_600_000i64;
    for n in 0..READINGS {
        let sensor = format!("sensor-{}", n % SENSORS);
        let payload = format!("{{\"temperature\": {:.2}}}", 20.0 + (n % 97) as f64 / 10.0);
        let mut record = BaseRecord::to("readings")
            .key(&sensor)
            .payload(&payload)
            .timestamp(t0 + (n / SENSORS) as i64 * 10);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
}

/// The uplink's status: (results held, state).
fn uplink(dir: &Path) -> (u64, String) {
    let s = status(dir);
    let sink = s["sinks"]
        .as_array()
        .and_then(|sinks| sinks.iter().find(|s| s["name"] == "uplink").cloned())
        .unwrap_or_default();
    (
        sink["held"].as_u64().unwrap_or(u64::MAX),
        sink["state"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Case 1: (records/s, CPU µs a record, results).
fn end_to_end(root: &Path, dir: &Path, brokers: &str) -> (f64, f64, u64) {
    let pipeline = format!(
        r#"
[pipeline]
name = "e2e"
[checkpoint]
interval_ms = 5000
[sources.sensors]
bounded_out_of_orderness_ms = 1000
[sources.sensors.kafka]
brokers = ["{brokers}"]
topics = ["readings"]
{seeds}[sinks.uplink.kafka]
brokers = ["{brokers}"]
topic = "results.{{output}}"
"#,
        seeds = seeds_job(root),
    );
    let child = Killed(eddy(dir, &pipeline).spawn().expect("eddy"));
    let pid = child.0.id();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(600);
    loop {
        let records = status(dir)["sources"][0]["records"].as_u64().unwrap_or(0);
        if records >= READINGS && uplink(dir).0 == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "eddy read {records} of {READINGS}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = t0.elapsed().as_secs_f64();
    let cpu_used = cpu(pid);
    let results = status(dir)["sinks"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "uplink").cloned())
        .and_then(|s| s["written"].as_u64())
        .unwrap_or(0);
    (
        READINGS as f64 / seconds,
        cpu_used.as_secs_f64() * 1e6 / READINGS as f64,
        results,
    )
}

/// Case 2: results into the outbox with the cluster down (a run that ends
/// with them held), then the cluster back and a run that only delivers
/// them before it ends: (results held, results/s drained).
fn drain(
    dir: &Path,
    cluster: &MockCluster<'_, impl rdkafka::producer::ProducerContext>,
) -> (u64, f64) {
    let brokers = cluster.bootstrap_servers();
    // 10 UPS of 2 strings of 8 cells: 160 readings every 100 ms of event time.
    let duration_ms = BACKLOG / 160 * 100;
    let sink = format!(
        r#"
[sinks.uplink]
inputs = ["ups"]
retry_initial_backoff_ms = 100
retry_max_backoff_ms = 100
outbox = {{ max_bytes = 4_000_000_000 }}
[sinks.uplink.kafka]
brokers = ["{brokers}"]
topic = "backlog"
"#
    );
    let ups = ten_ups(duration_ms);
    let fill = format!(
        r#"
[pipeline]
name = "drain"
shutdown_timeout_ms = 0
[checkpoint]
enabled = false
{ups}{sink}"#
    );
    cluster.broker_down(1).expect("broker down");
    let filled = eddy(dir, &fill).status().expect("eddy");
    assert!(filled.success(), "the filling run failed");
    cluster.broker_up(1).expect("broker up");
    let empty = no_input(dir);
    let deliver = format!(
        r#"
[pipeline]
name = "drain"
shutdown_timeout_ms = 600000
[checkpoint]
enabled = false
{empty}{sink}"#
    );
    let t0 = Instant::now();
    let delivered = eddy(dir, &deliver).status().expect("eddy");
    assert!(delivered.success(), "the delivering run failed");
    (BACKLOG, BACKLOG as f64 / t0.elapsed().as_secs_f64())
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().expect("temporary folder");
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("readings", 8, 1).expect("topic");
    for topic in ["results.stats", "results.alerts", "backlog"] {
        cluster.create_topic(topic, 3, 1).expect("topic");
    }
    let brokers = cluster.bootstrap_servers();
    produce(&brokers);
    let e2e = dir.path().join("e2e");
    let backlog = dir.path().join("backlog");
    for d in [&e2e, &backlog] {
        std::fs::create_dir_all(d).expect("dir");
    }
    let (rate, cpu_us, results) = end_to_end(&root, &e2e, &brokers);
    let (held, drain_rate) = drain(&backlog, &cluster);
    println!("Kafka, librdkafka's mock cluster on 127.0.0.1, release eddy");
    println!("| case | figure |");
    println!("| --- | --- |");
    println!(
        "| end to end: {READINGS} readings of {SENSORS} sensors on 8 partitions → kafka source → 1 s windows and alerts → outbox → kafka sink ({results} results) | {rate:.0} records/s, {cpu_us:.1} µs of eddy CPU a record |"
    );
    println!(
        "| drain of a backlog of {held} results after the cluster came back | {drain_rate:.0} results/s |"
    );
    let json = serde_json::json!({
        "end_to_end_records_per_s": rate,
        "end_to_end_cpu_us_per_record": cpu_us,
        "end_to_end_results": results,
        "drain_results_per_s": drain_rate,
        "drain_backlog": held,
    });
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    std::fs::write(out.join("kafka.json"), json.to_string()).expect("kafka.json");
}
