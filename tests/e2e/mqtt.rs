//! The `mqtt` sink and its durable outbox against a real mosquitto started
//! by the test, and an independent subscriber (paho-mqtt, in
//! `tests/peers/mqtt_subscriber.py`) holding a persistent session.
//!
//! The outage: results flow, eddy is killed with SIGKILL (results it
//! delivered after its last checkpoint come again from the restarted run),
//! the broker is stopped for a while (60 s, or `EDDY_TEST_OUTAGE_S`) as
//! results keep coming, eddy is killed during the outage and started
//! again, the broker comes back. The
//! subscriber must get every result exactly once by id, in order within a
//! priority; none may be missing against the same run's local file sink,
//! which checkpoints make exact (it is rewound and replayed with the run).

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::certs::{make_ca, server_cert};
use crate::modbus_peer::python;
use crate::support::{Running, free_port, json_lines, metrics, plugin, root, status, toml_path};

/// Waits until `check` holds, for up to `seconds`.
fn eventually(seconds: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The logs of eddy, the broker and the subscriber, for a failure.
fn logs(dir: &Path) -> String {
    tails(dir, &["eddy.log", "mosquitto.log", "subscriber.log"])
}

/// The last lines of each of `files` in `dir`, for a failure.
pub(crate) fn tails(dir: &Path, files: &[&str]) -> String {
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            format!(
                "== {f}\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A process stopped when dropped.
pub(crate) struct Peer(pub(crate) Child);

impl Peer {
    /// SIGTERM (mosquitto saves its sessions), then waits.
    pub(crate) fn stop(mut self) {
        // SAFETY: kill(2) with a pid this test started.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// mosquitto on `port`, keeping its sessions in `dir` across restarts.
/// (`user root`: started as root, mosquitto would switch to a user of its
/// own, which cannot read or write the test's directory.)
pub(crate) fn mosquitto(dir: &Path, port: u16) -> Peer {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nmax_queued_messages 0\nlog_dest stderr\n",
            dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("mosquitto.log"))
                .unwrap(),
        )
        .spawn()
        .expect("mosquitto starts (cargo xtask test installs it)");
    eventually(20, "mosquitto listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Peer(child)
}

/// The subscriber, appending what it receives to `dir/received.jsonl`.
pub(crate) fn subscriber(dir: &Path, port: u16) -> Peer {
    let ready = dir.join("subscribed");
    let child = Command::new(python())
        .arg(root().join("tests/peers/mqtt_subscriber.py"))
        .arg(port.to_string())
        .arg("results-consumer")
        .arg("sites/#")
        .arg(dir.join("received.jsonl"))
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("subscriber.log")).unwrap())
        .spawn()
        .unwrap();
    eventually(20, "the subscriber subscribed", || ready.exists());
    Peer(child)
}

/// The seeds' job on a simulated UPS in real time (a live source: what it
/// read is journaled, what it would have read while eddy was down is not
/// there), results to the broker (alerts first) and to a local file.
fn pipeline(port: u16) -> String {
    format!(
        r#"
[pipeline]
name = "site"
[checkpoint]
interval_ms = 2000
[sources.ups]
journal = "sync"
bounded_out_of_orderness_ms = 2000
[sources.ups.sim]
seed = 7
interval_ms = 100
ups = [{{ name = "ups-1", strings = 2, cells_per_string = 4 }}]
faults = [{{ kind = "cell_overheat", device = "ups-1/string-1/cell-03", start_after_ms = 3_000, rise_c_per_min = 120.0 }}]
[operators.stats]
inputs = ["ups"]
plugin = {stats}
params = {{ fields = ["temperature"] }}
window.tumbling = {{ size_ms = 1000 }}
[operators.alerts]
inputs = ["stats"]
plugin = {alert}
params = {{ field = "temperature_max", threshold = 35.0, within_ms = 2000, clear_below = 32.0 }}
[sinks.uplink]
inputs = ["alerts", "alerts.cleared", "stats"]
outbox = {{ priorities = ["alerts", "alerts.cleared"] }}
retry_initial_backoff_ms = 200
retry_max_backoff_ms = 1000
[sinks.uplink.mqtt]
topic = "sites/site-7/{{output}}/{{key}}"
broker = {{ url = "mqtt://127.0.0.1:{port}", client_id = "site-7-uplink" }}
[sinks.local]
inputs = ["alerts", "alerts.cleared", "stats"]
[sinks.local.file]
path = "local.jsonl"
"#,
        stats = toml_path(&plugin("window_stats")),
        alert = toml_path(&plugin("threshold_alert")),
    )
}

pub(crate) fn start_eddy(dir: &Path) -> Running {
    let run = Running::spawn(dir);
    eventually(60, "the API came up", || {
        dir.join("state/api.json").exists()
    });
    run
}

/// The ids the subscriber received, in order, with their outputs.
fn received(dir: &Path) -> Vec<(String, String)> {
    json_lines(&dir.join("received.jsonl"))
        .iter()
        .map(|m| {
            (
                m["payload"]["id"].as_str().unwrap_or_default().to_owned(),
                m["payload"]["output"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// eddy is killed this many times.
const KILLS: usize = 2;
/// The most results a delivery batch holds.
const BATCH: usize = 4096;

fn outage() -> Duration {
    Duration::from_secs(
        std::env::var("EDDY_TEST_OUTAGE_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    )
}

#[test]
fn results_reach_the_broker_exactly_once_through_an_outage_and_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let broker = mosquitto(d, port);
    let sub = subscriber(d, port);
    std::fs::write(d.join("p.toml"), pipeline(port)).unwrap();
    let mut eddy_run = start_eddy(d);
    eventually(60, "results flow to the subscriber", || {
        received(d).len() >= 20
    });
    // Killed while results flow: some were delivered after the last
    // checkpoint, and the restarted run produces them again.
    eddy_run.kill();
    eddy_run = start_eddy(d);
    let before = received(d).len();
    eventually(60, &format!("results flow again\n{}", logs(d)), || {
        received(d).len() >= before + 20
    });

    // The broker goes away; results keep coming into the outbox.
    broker.stop();
    let down_at = Instant::now();
    let held = |d: &Path| -> u64 {
        status(d)["sinks"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "uplink"))
            .and_then(|s| s["held"].as_u64())
            .unwrap_or(0)
    };
    eventually(30, "results wait in the outbox", || held(d) >= 10);
    let s = status(d);
    let uplink = s["sinks"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "uplink"))
        .unwrap();
    assert!(uplink["outbox"]["bytes"].as_u64().unwrap_or(0) > 0, "{s}");
    assert!(uplink["outbox"]["oldest_age_ms"].as_i64().is_some(), "{s}");
    assert_eq!(uplink["state"], "retrying", "{s}");
    assert!(
        metrics(d).contains("eddy_outbox_bytes{sink=\"uplink\"}"),
        "the outbox's gauges are in /metrics"
    );
    // Killed during the outage, started again.
    eddy_run.kill();
    eddy_run = start_eddy(d);
    eventually(30, "the restarted run holds results", || held(d) >= 10);
    let rest = outage().saturating_sub(down_at.elapsed());
    std::thread::sleep(rest);
    let during = held(d);

    // The broker comes back: the outbox drains.
    let _broker = mosquitto(d, port);
    eventually(120, "the outbox drained", || held(d) == 0);
    eddy_run.stop(d);
    std::thread::sleep(Duration::from_millis(1000));
    drop(sub);

    let local: Vec<(String, String)> = json_lines(&d.join("local.jsonl"))
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["output"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let got = received(d);
    let log = || std::fs::read_to_string(d.join("eddy.log")).unwrap_or_default();
    assert!(
        during > 0 && local.len() > 40,
        "held {during}, local {}",
        local.len()
    );
    // Exactly once by id: a repeat can only be a result the broker had
    // acknowledged when eddy was killed, before eddy had recorded that (the
    // batch in flight, at most one per kill); a consumer drops it by id.
    let mut seen: HashSet<String> = HashSet::new();
    let repeats: Vec<String> = got
        .iter()
        .map(|(id, _)| id.clone())
        .filter(|id| !seen.insert(id.clone()))
        .collect();
    assert!(
        repeats.len() <= KILLS * BATCH,
        "{} repeats: {repeats:?}",
        repeats.len()
    );
    let got: Vec<(String, String)> = {
        let mut first = HashSet::new();
        got.into_iter()
            .filter(|(id, _)| first.insert(id.clone()))
            .collect()
    };
    // None missing, none extra.
    let local_ids: HashSet<&String> = local.iter().map(|(id, _)| id).collect();
    let missing: Vec<&&String> = local_ids.iter().filter(|id| !seen.contains(**id)).collect();
    assert!(
        missing.is_empty(),
        "{} missing, e.g. {:?}\n{}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        log()
    );
    let extra: Vec<&String> = seen.iter().filter(|id| !local_ids.contains(*id)).collect();
    assert!(extra.is_empty(), "not produced: {extra:?}");
    // In order within a priority (here each output has its own).
    for output in ["alerts", "alerts.cleared", "stats"] {
        let order = |list: &[(String, String)]| -> Vec<String> {
            list.iter()
                .filter(|(_, o)| o == output)
                .map(|(id, _)| id.clone())
                .collect()
        };
        assert_eq!(order(&got), order(&local), "order of {output}");
    }
    // MQTT 5: the id is also a user property.
    for m in json_lines(&d.join("received.jsonl")) {
        assert_eq!(m["user_properties"]["result_id"], m["payload"]["id"], "{m}");
    }
}

/// `tests/peers/mqtt_publisher.py` sending `count` readings, one every
/// `interval_ms`; the file it writes when done.
pub(crate) fn publisher(
    dir: &Path,
    port: u16,
    count: u64,
    interval_ms: u64,
) -> (Peer, std::path::PathBuf) {
    let done = dir.join("published");
    let child = Command::new(python())
        .arg(root().join("tests/peers/mqtt_publisher.py"))
        .args([port.to_string(), count.to_string(), interval_ms.to_string()])
        .arg(&done)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("publisher.log")).unwrap())
        .spawn()
        .unwrap();
    (Peer(child), done)
}

/// Readings over MQTT into a local file, with a sync journal.
fn reader_pipeline(port: u16) -> String {
    format!(
        r#"
[pipeline]
name = "readings"
dead_letter_path = "dead.jsonl"
[checkpoint]
interval_ms = 1000
[sources.racks]
journal = "sync"
[sources.racks.mqtt]
topics = ["site/+/rack/+/+"]
topic_parsing = "site/+site/rack/+rack/+sensor"
key_levels = ["site", "rack"]
json_fields = {{ seq = "/seq", temperature = "/env/temperature" }}
broker = {{ url = "mqtt://127.0.0.1:{port}", client_id = "site-7-readings", protocol = "3.1.1" }}
[sinks.local]
inputs = ["racks"]
[sinks.local.file]
path = "readings.jsonl"
"#
    )
}

#[test]
fn messages_published_while_eddy_is_killed_and_restarted_are_all_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let _broker = mosquitto(d, port);
    std::fs::write(d.join("p.toml"), reader_pipeline(port)).unwrap();
    let mut reader = start_eddy(d);
    // Subscribed (the session exists) before anything is published.
    eventually(30, "the source is up", || {
        status(d)["sources"][0]["state"] == "up"
    });
    const COUNT: u64 = 150;
    let (_publisher, done) = publisher(d, port, COUNT, 20);
    let readings = || json_lines(&d.join("readings.jsonl"));
    eventually(30, "readings come in", || readings().len() >= 20);
    reader.kill();
    // Published while eddy is down: the broker keeps them for the session.
    std::thread::sleep(Duration::from_millis(1000));
    reader = start_eddy(d);
    eventually(60, "everything published", || done.exists());
    eventually(60, &format!("every reading arrived\n{}", logs(d)), || {
        let seqs: HashSet<u64> = readings()
            .iter()
            .filter_map(|r| r["fields"]["seq"].as_u64())
            .collect();
        seqs.len() as u64 == COUNT
    });
    reader.stop(d);
    let all = readings();
    for r in &all {
        let n = r["fields"]["seq"].as_u64().unwrap();
        assert_eq!(r["key"], format!("s1/r{}", n % 3), "{r}");
        assert_eq!(r["fields"]["sensor"], "temp", "{r}");
        let t = r["fields"]["temperature"].as_f64().unwrap();
        assert!((t - (20.0 + n as f64 / 10.0)).abs() < 1e-9, "{r}");
    }
    // At least once: a message journaled but not yet acknowledged when
    // eddy was killed comes again (at most what was in flight).
    assert!(all.len() as u64 >= COUNT && all.len() as u64 <= COUNT + 1024);
    // The payload that is not JSON is dead-lettered with its topic (once,
    // or again if it came again after the kill).
    let dead = json_lines(&d.join("dead.jsonl"));
    assert!(!dead.is_empty(), "the bad payload is dead-lettered");
    for entry in &dead {
        let rejected = &entry["rejected"][0];
        assert_eq!(rejected["input"], "{broken", "{entry}");
        assert!(
            rejected["origin"]
                .as_str()
                .unwrap()
                .ends_with("(topic site/s1/rack/r0/temp)"),
            "{entry}"
        );
    }
}

#[test]
fn a_tls_broker_is_read_and_written_with_its_ca_and_refused_with_another() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The broker's CA, its certificate for 127.0.0.1, and a CA it has
    // nothing to do with.
    make_ca(d, "ca");
    make_ca(d, "other-ca");
    server_cert(d, "broker", "ca", "127.0.0.1");
    let (plain, tls) = (free_port(), free_port());
    let conf = d.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nper_listener_settings false\nallow_anonymous true\nlog_dest stderr\n\
             listener {plain} 127.0.0.1\n\
             listener {tls} 127.0.0.1\ncafile {dir}/ca.pem\ncertfile {dir}/broker.pem\nkeyfile {dir}/broker.key\n",
            dir = d.display()
        ),
    )
    .unwrap();
    let _broker = Peer(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("mosquitto.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    eventually(20, "mosquitto listens", || {
        std::net::TcpStream::connect(("127.0.0.1", tls)).is_ok()
    });
    let source = |name: &str, ca: &str| {
        format!(
            "[sources.{name}.mqtt]\ntopics = [\"site/#\"]\njson_fields = {{ seq = \"/seq\" }}\n\
             broker = {{ url = \"mqtts://127.0.0.1:{tls}\", client_id = \"{name}\", tls = {{ ca_file = \"{ca}\" }} }}\n"
        )
    };
    // The readings go back up over TLS too: through the CA, and through
    // the CA the broker has nothing to do with.
    let sink = |name: &str, ca: &str| {
        format!(
            "[sinks.{name}]\ninputs = [\"good\"]\n[sinks.{name}.mqtt]\ntopic = \"sites/{name}/{{key}}\"\n\
             broker = {{ url = \"mqtts://127.0.0.1:{tls}\", client_id = \"{name}\", keep_alive_s = 1, tls = {{ ca_file = \"{ca}\" }} }}\n"
        )
    };
    let _subscriber = subscriber(d, plain);
    std::fs::write(
        d.join("p.toml"),
        format!(
            "[pipeline]\nname = \"tls\"\n[checkpoint]\nenabled = false\n{}{}\
             [sinks.local]\ninputs = [\"good\", \"bad\"]\n[sinks.local.file]\npath = \"readings.jsonl\"\n{}{}",
            source("good", "ca.pem"),
            source("bad", "other-ca.pem"),
            sink("up", "ca.pem"),
            sink("up_bad", "other-ca.pem"),
        ),
    )
    .unwrap();
    let run = start_eddy(d);
    let state = |name: &str| -> serde_json::Value {
        status(d)["sources"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or_default()
    };
    eventually(30, &format!("the good source is up\n{}", logs(d)), || {
        state("good")["state"] == "up"
    });
    let _publisher = publisher(d, plain, 10, 10);
    let readings = || json_lines(&d.join("readings.jsonl"));
    eventually(30, "ten readings over TLS", || readings().len() >= 10);
    let bad = state("bad");
    assert_eq!(bad["state"], "retrying", "{bad}");
    let error = bad["last_error"].as_str().unwrap_or_default();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert_eq!(readings().len(), 10, "only the good source reads");
    // The subscriber on the plain listener gets the ten readings once
    // each, from the sink that trusts the broker's CA only.
    let up = || -> Vec<serde_json::Value> { json_lines(&d.join("received.jsonl")) };
    eventually(30, "ten readings published over TLS", || up().len() >= 10);
    let topics: std::collections::BTreeSet<String> = up()
        .iter()
        .map(|m| m["topic"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        topics.iter().all(|t| t.starts_with("sites/up/")),
        "{topics:?}"
    );
    let seqs: std::collections::BTreeSet<i64> = up()
        .iter()
        .filter_map(|m| m["payload"]["seq"].as_i64())
        .collect();
    let sent: std::collections::BTreeSet<i64> = readings()
        .iter()
        .filter_map(|r| r["seq"].as_i64())
        .collect();
    assert_eq!(seqs, sent, "the readings read are the readings published");
    let sink_state = |name: &str| -> serde_json::Value {
        status(d)["sinks"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or_default()
    };
    eventually(30, "the sink without the broker's CA retries", || {
        sink_state("up_bad")["state"] == "retrying"
    });
    let bad = sink_state("up_bad");
    let error = bad["last_error"].as_str().unwrap_or_default();
    assert!(error.to_lowercase().contains("certificate"), "{bad}");
    assert_eq!(up().len(), 10, "{topics:?}");
    // Idle for seven keep-alive intervals: the sink's pings keep its one
    // connection (mosquitto drops a client silent for 1.5 intervals, and
    // looks every few seconds: one with a 1 s keep-alive within 5 s).
    std::thread::sleep(Duration::from_secs(7));
    let log = std::fs::read_to_string(d.join("mosquitto.log")).unwrap_or_default();
    let connects = log.matches(" as up (").count();
    assert_eq!(connects, 1, "{log}");
    assert!(!log.contains("up has exceeded timeout"), "{log}");
    run.stop(d);
}
