//! MQTT and outbox figures, in one run, against a real mosquitto on
//! 127.0.0.1 started here, with a release `eddy run`:
//!
//! 1. **End to end**: a publisher (rumqttc, QoS 1) sends readings of 100
//!    sensors to mosquitto; eddy reads them (`mqtt` source, QoS 1,
//!    acknowledged once journaled), runs the seeds' job (1 s windows per
//!    sensor, alerts on them) and publishes the results to mosquitto
//!    through the outbox. Messages per second into eddy, and eddy's CPU
//!    time (user + system, `/proc/PID/stat`) per message.
//! 2. **QoS 0, 1000 sensors**: the same job with the source at QoS 0,
//!    first at 10 000 messages a second for 30 s (eddy's share of a core,
//!    CPU per message, resident memory), then 1 M messages as fast as the
//!    publisher sends them (whether eddy keeps up, CPU per message).
//! 3. **Outbox write cost**: simulated readings as fast as the pipeline
//!    takes them, written straight to an `mqtt` sink whose broker is down
//!    (every result goes to the outbox) against the same to the `null`
//!    sink: results per second of each, and the cost per result.
//! 4. **Drain**: the broker back, the outbox of (3) delivered; results
//!    per second.
//! 5. **Memory with a backlog**: eddy's peak resident memory in (3) for
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
/// Sensors (keys) of the QoS 0 cases.
const QOS0_SENSORS: u64 = 1000;
/// Messages of the QoS 0 case at full speed.
const QOS0_MESSAGES: u64 = 1_000_000;
/// The paced QoS 0 case: messages a second, for how many seconds.
const PACED_RATE: u64 = 10_000;
const PACED_SECONDS: u64 = 30;

#[path = "support/process.rs"]
mod process;

use process::{Killed, cpu, status_kib};

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

/// What a publisher sends: `messages` readings of `sensors` sensors at
/// `qos`, `rate` a second (or as fast as the broker takes them), with an
/// event time that advances as if at `rate` (10 000 a second when
/// unpaced).
struct Load {
    messages: u64,
    sensors: u64,
    qos: QoS,
    rate: Option<u64>,
}

/// Publishes `load` to the broker at `port`; returns when every message
/// has been written to it (at QoS 1, acknowledged).
fn publish(port: u16, load: Load) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut options = MqttOptions::new("bench-publisher", "127.0.0.1", port);
        options.set_inflight(1000);
        let (client, mut events) = AsyncClient::new(options, 1000);
        let Load {
            messages,
            sensors,
            qos,
            rate,
        } = load;
        let flusher = client.clone();
        let sender = tokio::spawn(async move {
            let t0 = 1_767_225_600_000u64;
            let every_ms = rate.unwrap_or(10_000);
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            for n in 0..messages {
                if let Some(rate) = rate
                    && n % (rate / 1000).max(1) == 0
                {
                    tick.tick().await;
                }
                let payload = format!(
                    "{{\"ts\": {}, \"temperature\": {:.2}}}",
                    t0 + n * 1000 / every_ms,
                    20.0 + (n % 97) as f64 / 10.0
                );
                client
                    .publish(
                        format!("site/s1/sensor/{}", n % sensors),
                        qos,
                        false,
                        payload,
                    )
                    .await
                    .expect("publish");
            }
        });
        let mut done = 0;
        while done < messages {
            match events.poll().await.expect("publisher connection") {
                Event::Incoming(rumqttc::Packet::PubAck(_)) if qos == QoS::AtLeastOnce => done += 1,
                Event::Outgoing(Outgoing::Publish(_)) if qos == QoS::AtMostOnce => done += 1,
                _ => {}
            }
        }
        // QoS 0 has no acknowledgement: a last round trip (a ping would
        // do; a subscription answered is simplest) before disconnecting
        // makes sure the broker has read every message.
        if qos == QoS::AtMostOnce {
            flusher
                .subscribe("bench/flush", QoS::AtMostOnce)
                .await
                .expect("subscribe");
            while !matches!(
                events.poll().await.expect("publisher connection"),
                Event::Incoming(rumqttc::Packet::SubAck(_))
            ) {}
        }
        sender.await.expect("sender");
    });
}

/// The pipeline of the end-to-end cases: the seeds' job on an `mqtt`
/// source subscribed at `qos`, its results published to the same broker.
fn seeds_over_mqtt(root: &Path, port: u16, qos: u8) -> String {
    format!(
        r#"
[pipeline]
name = "e2e"
[checkpoint]
interval_ms = 5000
[sources.sensors]
[sources.sensors.mqtt]
topics = ["site/+/sensor/+"]
qos = {qos}
topic_parsing = "site/+site/sensor/+sensor"
key_levels = ["site", "sensor"]
time_field = "ts"
broker = {{ url = "mqtt://127.0.0.1:{port}", client_id = "bench-reader" }}
{seeds}[sinks.uplink.mqtt]
topic = "results/{{output}}/{{key}}"
broker = {{ url = "mqtt://127.0.0.1:{port}", client_id = "bench-uplink" }}
"#,
        seeds = seeds_job(root),
    )
}

/// Starts eddy on `pipeline` in `dir` and waits for its source to be up.
fn start(dir: &Path, pipeline: &str) -> Killed {
    let child = Killed(eddy(dir, pipeline).spawn().expect("eddy"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(dir)["sources"][0]["state"] != "up" {
        assert!(Instant::now() < deadline, "the source never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// The records the source of the run in `dir` has read.
fn read(dir: &Path) -> u64 {
    status(dir)["sources"][0]["records"].as_u64().unwrap_or(0)
}

/// A process's resident memory now and at its peak, in KiB.
fn resident_kib(pid: u32) -> (u64, u64) {
    let [now, peak] = status_kib(pid, ["VmRSS:", "VmHWM:"]);
    (now, peak)
}

/// What a QoS 0 run measured.
struct Qos0 {
    /// Messages the publisher sent, and the records eddy read of them.
    sent: u64,
    read: u64,
    /// Messages a second the publisher sent them at, and eddy read them at.
    sent_per_s: f64,
    read_per_s: f64,
    /// eddy's CPU time a message, in µs, and as a share of one core.
    cpu_us: f64,
    core: f64,
    /// eddy's largest resident memory sampled during the run, and its
    /// peak since it started (`VmHWM`, start-up included), in MiB.
    rss_mib: f64,
    hwm_mib: f64,
}

/// The issue's MQTT case: `load` (at QoS 0) into the seeds' job of the
/// eddy in `dir`, through mosquitto.
fn qos0(dir: &Path, eddy: &Killed, port: u16, load: Load) -> Qos0 {
    let pid = eddy.0.id();
    let messages = load.messages;
    let before = read(dir);
    let c0 = cpu(pid);
    let t0 = Instant::now();
    let publisher = std::thread::spawn(move || publish(port, load));
    let mut rss = 0;
    while !publisher.is_finished() {
        rss = rss.max(resident_kib(pid).0);
        std::thread::sleep(Duration::from_millis(100));
    }
    let sent_s = t0.elapsed().as_secs_f64();
    publisher.join().expect("publisher");
    // The last messages reach eddy: its count stops growing.
    let (mut last, mut still) = (read(dir), Instant::now());
    while still.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(50));
        let now = read(dir);
        if now != last {
            (last, still) = (now, Instant::now());
        }
    }
    let read_s = (still - t0).as_secs_f64();
    let cpu_used = (cpu(pid) - c0).as_secs_f64();
    let got = last - before;
    Qos0 {
        sent: messages,
        read: got,
        sent_per_s: messages as f64 / sent_s,
        read_per_s: got as f64 / read_s,
        cpu_us: cpu_used * 1e6 / got.max(1) as f64,
        core: cpu_used / read_s,
        rss_mib: rss as f64 / 1024.0,
        hwm_mib: resident_kib(pid).1 as f64 / 1024.0,
    }
}

/// Case 1: (messages/s, CPU µs a message).
fn end_to_end(root: &Path, dir: &Path, port: u16) -> (f64, f64) {
    let child = start(dir, &seeds_over_mqtt(root, port, 1));
    let pid = child.0.id();
    let c0 = cpu(pid);
    let t0 = Instant::now();
    let load = Load {
        messages: MESSAGES,
        sensors: SENSORS,
        qos: QoS::AtLeastOnce,
        rate: None,
    };
    let publisher = std::thread::spawn(move || publish(port, load));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let records = read(dir);
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
    // The broker's own count: every result reached it. A count short of it
    // is read twice more, to tell a late count from results not sent.
    let mut counts = vec![broker_received(port)];
    while counts.len() < 3 && counts.last().is_some_and(|&c| c < results) {
        counts.push(broker_received(port));
    }
    let received = counts.last().copied().unwrap_or(0);
    if received < results {
        let log = std::fs::read_to_string(dir.join("eddy.log")).unwrap_or_default();
        let said: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("outbox"))
            .collect();
        panic!(
            "the broker received {received} of {results} results (counts read: {counts:?}); \
             eddy said:\n{}",
            said.join("\n")
        );
    }
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

/// The QoS 0 cases, on one eddy and one mosquitto: 10k messages a second
/// for [`PACED_SECONDS`], then [`QOS0_MESSAGES`] as fast as they go.
fn qos0_cases(root: &Path, dir: &Path) -> (Qos0, Qos0) {
    let port = free_port();
    let _broker = mosquitto(dir, port);
    let work = dir.join("qos0");
    std::fs::create_dir_all(&work).expect("dir");
    let eddy = start(&work, &seeds_over_mqtt(root, port, 0));
    let paced = qos0(
        &work,
        &eddy,
        port,
        Load {
            messages: PACED_RATE * PACED_SECONDS,
            sensors: QOS0_SENSORS,
            qos: QoS::AtMostOnce,
            rate: Some(PACED_RATE),
        },
    );
    let full = qos0(
        &work,
        &eddy,
        port,
        Load {
            messages: QOS0_MESSAGES,
            sensors: QOS0_SENSORS,
            qos: QoS::AtMostOnce,
            rate: None,
        },
    );
    (paced, full)
}

fn print_qos0(paced: &Qos0, full: &Qos0) {
    println!(
        "| QoS 0, {QOS0_SENSORS} sensors, {PACED_RATE} messages/s for {PACED_SECONDS} s: mosquitto → seeds' job → mosquitto | {:.1} % of a core, {:.2} µs a message; resident {:.1} MiB (peak since start {:.1} MiB); read {} of {} |",
        paced.core * 100.0,
        paced.cpu_us,
        paced.rss_mib,
        paced.hwm_mib,
        paced.read,
        paced.sent
    );
    println!(
        "| QoS 0, {QOS0_SENSORS} sensors, {} messages as fast as they go | sent {:.0}/s, read {:.0}/s ({} of {}); {:.2} µs of eddy CPU a message; resident {:.1} MiB |",
        full.sent,
        full.sent_per_s,
        full.read_per_s,
        full.read,
        full.sent,
        full.cpu_us,
        full.rss_mib
    );
}

fn qos0_json(q: &Qos0) -> serde_json::Value {
    serde_json::json!({
        "sent": q.sent,
        "read": q.read,
        "sent_per_s": q.sent_per_s,
        "read_per_s": q.read_per_s,
        "cpu_us_per_message": q.cpu_us,
        "share_of_a_core": q.core,
        "resident_mib": q.rss_mib,
        "peak_resident_mib_since_start": q.hwm_mib,
    })
}

/// `cargo bench -p eddy-host --bench mqtt -- qos0` runs the QoS 0 cases
/// alone (printed, not written).
fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().expect("temporary folder");
    if std::env::args().skip(1).any(|a| a == "qos0") {
        let (paced, full) = qos0_cases(&root, dir.path());
        println!("| case | figure |");
        println!("| --- | --- |");
        print_qos0(&paced, &full);
        return;
    }

    let port = free_port();
    let e2e_dir = dir.path().join("e2e");
    std::fs::create_dir_all(&e2e_dir).expect("dir");
    let (e2e_rate, e2e_cpu_us) = if std::env::var_os("EDDY_BENCH_SKIP_E2E").is_some() {
        (0.0, 0.0)
    } else {
        let _broker = mosquitto(dir.path(), port);
        end_to_end(&root, &e2e_dir, port)
    };
    let (paced, full) = qos0_cases(&root, dir.path());

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
    print_qos0(&paced, &full);
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
        "qos0_paced": qos0_json(&paced),
        "qos0_full_speed": qos0_json(&full),
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
