//! MQTT and outbox figures, in one run, against a real mosquitto on
//! 127.0.0.1 started here, with a release `eddy run`:
//!
//! 1. **End to end**: a publisher (rumqttc, QoS 1) sends readings of 100
//!    sensors to mosquitto; eddy reads them (`mqtt` source, QoS 1,
//!    acknowledged once journaled), runs the seeds' job (1 s windows per
//!    sensor, alerts on them) and publishes the results to mosquitto
//!    through the outbox. Messages per second into eddy, and eddy's CPU
//!    time (user + system, `/proc/PID/stat`) per message.
//! 2. **Outbox write cost**: simulated readings as fast as the pipeline
//!    takes them, written straight to an `mqtt` sink whose broker is down
//!    (every result goes to the outbox) against the same to the `null`
//!    sink: results per second of each, and the cost per result.
//! 3. **Drain**: the broker back, the outbox of (2) delivered; results
//!    per second.
//! 4. **Memory with a backlog**: eddy's peak resident memory in (2) for
//!    two backlog sizes, and the outbox's size on disk: flat, the backlog
//!    is on disk.
//!
//! mosquitto comes from `cargo xtask bench`'s prerequisites (as for the
//! tests). Prints a table; writes `target/bench/mqtt.json`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, QoS};

/// Messages the publisher sends in the end-to-end case.
const MESSAGES: u64 = 200_000;
/// Sensors they come from.
const SENSORS: u64 = 100;

#[path = "support/process.rs"]
mod process;

use process::{Killed, cpu};

#[path = "support/run.rs"]
mod run;

use run::{eddy, no_input, seeds_job, status, ten_ups};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn mosquitto(dir: &Path, port: u16) -> Killed {
    let conf = dir.join(format!("mosquitto-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\n\
             max_inflight_messages 1000\nmax_queued_messages 1000000\nsys_interval 1\n"
        ),
    )
    .expect("mosquitto.conf");
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto starts (cargo xtask bench installs it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    Killed(child)
}

/// The peak resident memory the run logged when it stopped, in MiB.
fn peak_mib(dir: &Path) -> u64 {
    let log = std::fs::read_to_string(dir.join("eddy.log")).unwrap_or_default();
    log.lines()
        .filter_map(|l| l.split("peak_resident_mib=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .next_back()
        .unwrap_or(0)
}

/// Publishes [`MESSAGES`] readings at QoS 1 as fast as the broker takes them.
fn publish(port: u16) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut options = MqttOptions::new("bench-publisher", "127.0.0.1", port);
        options.set_inflight(1000);
        let (client, mut events) = AsyncClient::new(options, 1000);
        let sender = tokio::spawn(async move {
            let t0 = 1_767_225_600_000u64;
            for n in 0..MESSAGES {
                let sensor = n % SENSORS;
                let payload = format!(
                    "{{\"ts\": {}, \"temperature\": {:.2}}}",
                    t0 + (n / SENSORS) * 10,
                    20.0 + (n % 97) as f64 / 10.0
                );
                client
                    .publish(
                        format!("site/s1/sensor/{sensor}"),
                        QoS::AtLeastOnce,
                        false,
                        payload,
                    )
                    .await
                    .expect("publish");
            }
        });
        let mut acked = 0;
        while acked < MESSAGES {
            match events.poll().await.expect("publisher connection") {
                Event::Incoming(rumqttc::Packet::PubAck(_)) => acked += 1,
                Event::Outgoing(Outgoing::Publish(_)) => {}
                _ => {}
            }
        }
        sender.await.expect("sender");
    });
}

/// Case 1: (messages/s, CPU µs a message).
fn end_to_end(root: &Path, dir: &Path, port: u16) -> (f64, f64) {
    let pipeline = format!(
        r#"
[pipeline]
name = "e2e"
[checkpoint]
interval_ms = 5000
[sources.sensors]
[sources.sensors.mqtt]
topics = ["site/+/sensor/+"]
topic_parsing = "site/+site/sensor/+sensor"
key_levels = ["site", "sensor"]
time_field = "ts"
broker = {{ url = "mqtt://127.0.0.1:{port}", client_id = "bench-reader" }}
{seeds}[sinks.uplink.mqtt]
topic = "results/{{output}}/{{key}}"
broker = {{ url = "mqtt://127.0.0.1:{port}", client_id = "bench-uplink" }}
"#,
        seeds = seeds_job(root),
    );
    let child = Killed(eddy(dir, &pipeline).spawn().expect("eddy"));
    let pid = child.0.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(dir)["sources"][0]["state"] != "up" {
        assert!(Instant::now() < deadline, "the source never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let c0 = cpu(pid);
    let t0 = Instant::now();
    let publisher = std::thread::spawn(move || publish(port));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let records = status(dir)["sources"][0]["records"].as_u64().unwrap_or(0);
        if records >= MESSAGES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "eddy read {records} of {MESSAGES}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = t0.elapsed().as_secs_f64();
    let cpu_used = cpu(pid) - c0;
    publisher.join().expect("publisher");
    (
        MESSAGES as f64 / seconds,
        cpu_used.as_secs_f64() * 1e6 / MESSAGES as f64,
    )
}

/// Simulated readings straight into `sink`: (results, seconds, peak MiB).
fn burst(dir: &Path, sink: &str, results: u64) -> (u64, f64, u64) {
    // 10 UPS of 2 strings of 8 cells: 160 readings every 100 ms of event time.
    let ups = ten_ups(results / 160 * 100);
    let pipeline = format!(
        r#"
[pipeline]
name = "burst"
shutdown_timeout_ms = 0
[checkpoint]
enabled = false
{ups}[sinks.uplink]
inputs = ["ups"]
outbox = {{ max_bytes = 4_000_000_000 }}
{sink}
"#
    );
    let t0 = Instant::now();
    let status = eddy(dir, &pipeline).status().expect("eddy");
    assert!(status.success(), "the burst run failed");
    (results, t0.elapsed().as_secs_f64(), peak_mib(dir))
}

/// Bytes in a directory tree.
fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| {
                let path: PathBuf = e.path();
                if path.is_dir() {
                    disk_bytes(&path)
                } else {
                    e.metadata().map_or(0, |m| m.len())
                }
            })
            .sum()
    })
}

/// Case 3: the broker back, how fast the outbox of `dir` empties:
/// results/s.
fn drain(dir: &Path, port: u16, results: u64) -> f64 {
    let empty = no_input(dir);
    let pipeline = format!(
        r#"
[pipeline]
name = "burst"
shutdown_timeout_ms = 600000
[checkpoint]
enabled = false
{empty}[sinks.uplink]
inputs = ["ups"]
outbox = {{ max_bytes = 4_000_000_000 }}
[sinks.uplink.mqtt]
topic = "results/{{output}}/{{key}}"
broker = {{ url = "mqtt://127.0.0.1:{port}", client_id = "bench-drain" }}
"#
    );
    let t0 = Instant::now();
    let status = eddy(dir, &pipeline).status().expect("eddy");
    assert!(status.success(), "the drain run failed");
    let seconds = t0.elapsed().as_secs_f64();
    // The broker's own count: every result reached it.
    let received = broker_received(port);
    assert!(
        received >= results,
        "the broker received {received} of {results} results"
    );
    results as f64 / seconds
}

/// The PUBLISH packets the broker at `port` has received since it
/// started, from its `$SYS` topics (updated every second).
fn broker_received(port: u16) -> u64 {
    // The retained count is at most a second old.
    std::thread::sleep(Duration::from_millis(1500));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let options = MqttOptions::new("bench-counter", "127.0.0.1", port);
        let (client, mut events) = AsyncClient::new(options, 10);
        client
            .subscribe("$SYS/broker/publish/messages/received", QoS::AtMostOnce)
            .await
            .expect("subscribe");
        let read = async {
            loop {
                if let Event::Incoming(rumqttc::Packet::Publish(p)) =
                    events.poll().await.expect("counter connection")
                {
                    return String::from_utf8_lossy(&p.payload)
                        .trim()
                        .parse()
                        .unwrap_or(0);
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the broker's count within 10 s")
    })
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().expect("temporary folder");

    let port = free_port();
    let e2e_dir = dir.path().join("e2e");
    std::fs::create_dir_all(&e2e_dir).expect("dir");
    let (e2e_rate, e2e_cpu_us) = if std::env::var_os("EDDY_BENCH_SKIP_E2E").is_some() {
        (0.0, 0.0)
    } else {
        let _broker = mosquitto(dir.path(), port);
        end_to_end(&root, &e2e_dir, port)
    };

    let down = free_port();
    let null_dir = dir.path().join("null");
    let small_dir = dir.path().join("small");
    let large_dir = dir.path().join("large");
    for d in [&null_dir, &small_dir, &large_dir] {
        std::fs::create_dir_all(d).expect("dir");
    }
    let mqtt_sink = format!(
        "[sinks.uplink.mqtt]\ntopic = \"results/{{output}}/{{key}}\"\nbroker = {{ url = \"mqtt://127.0.0.1:{down}\", client_id = \"bench-burst\" }}\n"
    );
    // 7.5 million results: about 1.1 GB on disk.
    let large: u64 = std::env::var("EDDY_BENCH_BACKLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7_500_000);
    let small = large / 4;
    let (n_null, t_null, _) = burst(&null_dir, "[sinks.uplink.null]", small);
    let (n_small, t_small, rss_small) = burst(&small_dir, &mqtt_sink, small);
    let disk_small = disk_bytes(&small_dir.join("state"));
    let (n_large, t_large, rss_large) = burst(&large_dir, &mqtt_sink, large);
    let disk_large = disk_bytes(&large_dir.join("state"));
    let _broker = mosquitto(dir.path(), down);
    let drain_rate = drain(&large_dir, down, n_large);
    let rss_drain = peak_mib(&large_dir);

    let cost_us = (t_small - t_null).max(0.0) * 1e6 / n_small as f64;
    println!("MQTT and the outbox, mosquitto on 127.0.0.1, release eddy");
    println!("| case | figure |");
    println!("| --- | --- |");
    println!(
        "| end to end: {MESSAGES} readings of {SENSORS} sensors, mosquitto → mqtt source (QoS 1) → 1 s windows and alerts → outbox → mosquitto | {e2e_rate:.0} messages/s, {e2e_cpu_us:.1} µs of eddy CPU a message |"
    );
    println!(
        "| {n_null} results straight to the null sink | {:.0} results/s |",
        n_null as f64 / t_null
    );
    println!(
        "| {n_small} results into the outbox, broker down | {:.0} results/s; {cost_us:.2} µs a result more than null |",
        n_small as f64 / t_small
    );
    println!(
        "| {n_large} results into the outbox, broker down | {:.0} results/s |",
        n_large as f64 / t_large
    );
    println!(
        "| drain of {n_large} results to mosquitto (all counted by the broker) | {drain_rate:.0} results/s, peak resident memory {rss_drain} MiB |"
    );
    println!(
        "| peak resident memory with a backlog of {n_small} ({} MiB on disk) and {n_large} ({} MiB on disk) | {rss_small} MiB and {rss_large} MiB |",
        disk_small >> 20,
        disk_large >> 20
    );
    let json = serde_json::json!({
        "end_to_end_messages_per_s": e2e_rate,
        "end_to_end_cpu_us_per_message": e2e_cpu_us,
        "null_results_per_s": n_null as f64 / t_null,
        "outbox_results_per_s": n_small as f64 / t_small,
        "outbox_cost_us_per_result": cost_us,
        "outbox_large_results_per_s": n_large as f64 / t_large,
        "drain_results_per_s": drain_rate,
        "peak_rss_mib": { "small": rss_small, "large": rss_large, "drain": rss_drain },
        "outbox_disk_mib": { "small": disk_small >> 20, "large": disk_large >> 20 },
        "backlog_results": { "small": n_small, "large": n_large },
    });
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    std::fs::write(out.join("mqtt.json"), json.to_string()).expect("mqtt.json");
}
