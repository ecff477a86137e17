//! One broker connection shared by a source, a sink and the device twin
//! (`[brokers.site]`, named by each), against mosquitto, the paho
//! subscriber and the shadow service (`tests/peers/`): everything flows
//! over a single client id, as a cloud service that allows one connection
//! per device asks, and QoS 1 readings published while eddy is killed
//! arrive through the shared connection's kept session.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use crate::mqtt::{mosquitto, publisher, start_eddy, subscriber, tails};
use crate::support::{eventually, json_lines, status};
use crate::twin::{shadow, shadow_service};

fn pipeline(port: u16) -> String {
    format!(
        r#"
[pipeline]
name = "site"
[checkpoint]
interval_ms = 1000
[brokers.site]
url = "mqtt://127.0.0.1:{port}"
client_id = "site-7"
session_expiry_s = 3600
[sources.racks]
journal = "sync"
[sources.racks.mqtt]
broker = "site"
topics = ["site/+/rack/+/+"]
topic_parsing = "site/+site/rack/+rack/+sensor"
key_levels = ["site", "rack"]
json_fields = {{ seq = "/seq" }}
[sinks.uplink]
inputs = ["racks"]
[sinks.uplink.mqtt]
broker = "site"
topic = "sites/site-7/{{output}}/{{key}}"
[sinks.local]
inputs = ["racks"]
[sinks.local.file]
path = "readings.jsonl"
[twin]
thing = "site-7"
broker = "site"
report_interval_ms = 500
"#
    )
}

/// The seq numbers of readings in `file` (JSON lines; a subscriber's hold
/// the result under `payload`).
fn seqs(path: &Path) -> Vec<u64> {
    json_lines(path)
        .iter()
        .filter_map(|v| {
            let v = v.get("payload").unwrap_or(v);
            v["fields"]["seq"].as_u64()
        })
        .collect()
}

/// The readings not among `seen`.
fn missing(seen: &HashSet<u64>) -> Vec<u64> {
    (0..COUNT).filter(|n| !seen.contains(n)).collect()
}

/// Readings published.
const COUNT: u64 = 120;

/// Connections mosquitto accepted from the client id `id`.
fn connections(dir: &Path, id: &str) -> usize {
    std::fs::read_to_string(dir.join("mosquitto.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("New client connected") && l.contains(&format!(" as {id} ")))
        .count()
}

#[test]
fn a_source_a_sink_and_the_twin_share_one_connection_and_its_kept_session() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = crate::support::free_port();
    let _broker = mosquitto(d, port);
    let _service = shadow_service(d, port);
    let _subscriber = subscriber(d, port);
    std::fs::write(d.join("p.toml"), pipeline(port)).unwrap();
    let logs = || tails(d, &["eddy.log", "mosquitto.log", "shadow_service.log"]);
    let mut eddy = start_eddy(d);
    eventually(
        30,
        || "the source is up".into(),
        || status(d)["sources"][0]["state"] == "up",
    );
    // The twin reports on the same connection.
    eventually(
        30,
        || format!("the twin reported\n{}", logs()),
        || !shadow(d, "site-7")["state"]["reported"].is_null(),
    );
    let (_publisher, done) = publisher(d, port, COUNT, 20);
    eventually(
        30,
        || "readings come in".into(),
        || seqs(&d.join("readings.jsonl")).len() >= 20,
    );
    eddy.kill();
    // Published while eddy is away: the shared connection's session
    // keeps them.
    std::thread::sleep(Duration::from_millis(1000));
    eddy = start_eddy(d);
    eventually(60, || "everything published".into(), || done.exists());
    let all = |file: &str| seqs(&d.join(file)).into_iter().collect::<HashSet<u64>>();
    eventually(
        60,
        || {
            format!(
                "every reading read, but {:?}\n{}",
                missing(&all("readings.jsonl")),
                logs()
            )
        },
        || all("readings.jsonl").len() as u64 == COUNT,
    );
    eventually(
        60,
        || {
            format!(
                "every reading went up, but {:?}\n{}",
                missing(&all("received.jsonl")),
                logs()
            )
        },
        || all("received.jsonl").len() as u64 == COUNT,
    );
    eddy.stop(d);
    // One connection a run, under the one client id: the components did
    // not each connect (a second connection with the id would have closed
    // the first, which the broker logs).
    assert_eq!(connections(d, "site-7"), 2, "{}", logs());
    let log = std::fs::read_to_string(d.join("mosquitto.log")).unwrap();
    assert!(!log.contains("already connected"), "{log}");
}

#[test]
fn a_broker_name_without_its_table_or_a_bad_shared_table_is_refused_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let check = |text: &str| {
        std::fs::write(d.join("p.toml"), text).unwrap();
        let out = crate::support::run(&["check", "p.toml"], d);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            crate::support::stderr(&out)
        );
        crate::support::stderr(&out)
    };
    let source = "[sources.racks.mqtt]\ntopics = [\"site/#\"]\nbroker = \"cloud\"\n\
                  [sinks.local]\ninputs = [\"racks\"]\n[sinks.local.file]\npath = \"r.jsonl\"\n";
    let err = check(&format!(
        "[brokers.site]\nurl = \"mqtt://127.0.0.1:1883\"\nclient_id = \"s\"\n{source}"
    ));
    assert!(
        err.contains("p.toml:6:10: source `racks`: no [brokers.cloud] table (there are: site)"),
        "{err}"
    );
    let err = check(&format!(
        "[brokers.cloud]\nurl = \"http://broker\"\nclient_id = \"s\"\n{source}"
    ));
    assert!(
        err.contains("p.toml:2:7: [brokers.cloud]: `http://broker` is not a broker URL"),
        "{err}"
    );
    let err = check(&format!(
        "[brokers.cloud]\nurl = \"mqtt://b\"\nclient_id = \"s\"\nkeepalive = 3\n{source}"
    ));
    assert!(
        err.contains("p.toml:4:1: unknown field `keepalive`"),
        "{err}"
    );
}
