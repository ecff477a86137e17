//! Peers fail; the pipeline does not. A TCP source and a TCP sink whose
//! server the test stops and starts again, next to a simulation feeding a
//! window operator: the pipeline keeps running through the outage, status
//! shows both as retrying with the error, the sink loses nothing it held,
//! and records flow again after the comeback.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::peer::{Peer, Role};
use crate::support::{
    eddy, free_port, json_lines, lines, metrics, plugin, run, stderr, stdout, toml_path,
};

/// Polls `eddy status --json` until `ready` says yes.
fn wait_for_status(
    dir: &std::path::Path,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(&["status", "--json"], dir);
        if out.status.success() {
            let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
            if ready(&status) {
                return status;
            }
        }
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn component<'a>(status: &'a serde_json::Value, list: &str, name: &str) -> &'a serde_json::Value {
    status[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {list} `{name}` in {status}"))
}

#[test]
fn a_peer_outage_is_ridden_out_and_the_sink_loses_nothing_it_held() {
    let mut feed = Peer::start(Role::Feed {
        line: Arc::new(|n| {
            format!(
                r#"{{"key":"meter","time":{},"n":{n}}}"#,
                1_767_225_600_000 + n as i64 * 10
            )
        }),
        every: Duration::from_millis(5),
    });
    let mut collector = Peer::start(Role::Collect { ack: true });
    let dir = tempfile::tempdir().unwrap();
    let pipeline = format!(
        r#"[sources.feed]
retry_initial_backoff_ms = 50
retry_max_backoff_ms = 300
[sources.feed.tcp]
address = "{feed}"

[sources.rooms.sim]
seed = 3
start_time_ms = 1_767_225_600_000
speed = 20
rooms = [{{ name = "a" }}, {{ name = "b" }}, {{ name = "c" }}, {{ name = "d" }}]

[operators.stats]
inputs = ["rooms"]
plugin = {plugin}
window.tumbling = {{ size_ms = 5000 }}

[sinks.up]
inputs = ["stats"]
retry_initial_backoff_ms = 50
retry_max_backoff_ms = 300
[sinks.up.tcp]
address = "{collector}"
acknowledgements = true

[sinks.local]
inputs = ["stats", "feed"]
[sinks.local.file]
path = "local.jsonl"
"#,
        feed = feed.address(),
        collector = collector.address(),
        plugin = toml_path(&plugin("window_stats")),
    );
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let child = eddy()
        .args(["run", "p.toml", "--duration", "12s"])
        .current_dir(dir.path())
        .env("EDDY_STATE_DIR", dir.path().join("state"))
        .env("EDDY_LOG", "info")
        .stderr(std::fs::File::create(dir.path().join("eddy.log")).unwrap())
        .spawn()
        .unwrap();

    // Both peers in use.
    wait_for_status(
        dir.path(),
        "the sink delivered and the feed was read",
        |s| {
            component(s, "sinks", "up")["written"].as_u64() > Some(10)
                && component(s, "sources", "feed")["records"].as_u64() > Some(10)
        },
    );

    // The outage.
    collector.stop();
    feed.stop();
    let fed_before = feed.fed();
    let down = wait_for_status(dir.path(), "both retrying", |s| {
        component(s, "sinks", "up")["state"] == "retrying"
            && component(s, "sources", "feed")["state"] == "retrying"
            && component(s, "sinks", "up")["held"].as_u64() > Some(0)
    });
    for (list, name) in [("sinks", "up"), ("sources", "feed")] {
        let c = component(&down, list, name);
        let error = c["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("127.0.0.1:"), "{name}: {c}");
        assert!(c["errors"].as_u64() >= Some(1), "{name}: {c}");
    }
    // Everything else goes on.
    assert_eq!(component(&down, "sources", "rooms")["state"], "up");
    let local_before = json_lines(&dir.path().join("local.jsonl")).len();
    wait_for_status(dir.path(), "the local sink still writing", |s| {
        component(s, "sinks", "local")["written"].as_u64() > Some(local_before as u64 + 20)
    });
    // So do the metrics Prometheus scrapes.
    let scraped = metrics(dir.path());
    for expected in [
        r#"eddy_component_up{component="up",role="sink"} 0"#,
        r#"eddy_component_up{component="feed",role="source"} 0"#,
        r#"eddy_component_up{component="rooms",role="source"} 1"#,
        r#"eddy_sink_buffered_records{sink="up"}"#,
        r#"eddy_component_errors_total{component="up",role="sink"}"#,
    ] {
        assert!(scraped.contains(expected), "no {expected} in\n{scraped}");
    }
    // The table form says the same.
    let table = stdout(&run(&["status"], dir.path()));
    assert!(table.contains("retrying for"), "{table}");

    // The comeback.
    collector.restart();
    feed.restart();
    wait_for_status(dir.path(), "both up again", |s| {
        component(s, "sinks", "up")["state"] == "up"
            && component(s, "sources", "feed")["state"] == "up"
            && component(s, "sinks", "up")["held"].as_u64() == Some(0)
    });
    let out = child.wait_with_output().unwrap();
    let log = std::fs::read_to_string(dir.path().join("eddy.log")).unwrap();
    assert!(out.status.success(), "eddy failed: {log}");
    assert!(log.contains("sink `up` is up again"), "{log}");

    let local = json_lines(&dir.path().join("local.jsonl"));
    let ids = |records: &[serde_json::Value]| -> BTreeSet<String> {
        records
            .iter()
            .filter(|r| r["output"] == "stats")
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let received = lines(&collector.lines().join("\n"));
    // Every window result reached the collector (some twice: at least once).
    assert_eq!(
        ids(&local),
        ids(&received),
        "the collector got what the local file got"
    );
    // And per room, the windows have no gap, so neither sink lost any.
    let mut starts: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in received.iter().filter(|r| r["output"] == "stats") {
        starts
            .entry(r["key"].as_str().unwrap().to_owned())
            .or_default()
            .push(r["fields"]["window_start"].as_i64().unwrap());
    }
    assert_eq!(starts.len(), 4);
    for (room, mut windows) in starts {
        windows.sort();
        windows.dedup();
        assert!(windows.len() >= 10, "{room}: {windows:?}");
        assert!(
            windows.windows(2).all(|w| w[1] - w[0] == 5000),
            "{room}: a window is missing: {windows:?}"
        );
    }
    // The feed's records after the comeback were read.
    let feed_after = local
        .iter()
        .filter(|r| r["output"] == "feed")
        .filter(|r| r["fields"]["n"].as_u64() > Some(fed_before))
        .count();
    assert!(
        feed_after > 10,
        "{feed_after} feed records after the comeback"
    );
    assert!(
        collector.connections() >= 2 && feed.connections() >= 2,
        "both were connected to again"
    );
}

#[test]
fn check_contacts_no_peer() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = format!(
        r#"[sources.feed.tcp]
address = "{address}"

[sinks.up]
inputs = ["feed"]
[sinks.up.tcp]
address = "{address}"
acknowledgements = true

[sinks.local]
inputs = ["feed"]
[sinks.local.file]
path = "out/local.jsonl"
"#
    );
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let out = run(&["check", "p.toml"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(100));
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("eddy check connected to the peer: {other:?}"),
    }
    assert!(
        !dir.path().join("out").exists(),
        "eddy check created the sink's folder"
    );
    assert!(
        !dir.path().join("state").exists(),
        "eddy check created the state store"
    );
}

/// A window operator fed by a simulation and by a TCP source whose server
/// is down for the whole run: with `idle_timeout_ms` the down source stops
/// holding event time back and windows fire; without, none may.
fn windows_fired_with_a_source_down(idle_timeout_ms: Option<u64>) -> usize {
    // A port nothing listens on.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let idle = idle_timeout_ms.map_or(String::new(), |ms| format!("idle_timeout_ms = {ms}"));
    let dir = tempfile::tempdir().unwrap();
    let pipeline = format!(
        r#"[sources.rooms.sim]
start_time_ms = 1_767_225_600_000
speed = 20
rooms = [{{ name = "a" }}, {{ name = "b" }}]

[sources.feed]
{idle}
retry_max_backoff_ms = 200
[sources.feed.tcp]
address = "{address}"

[operators.stats]
inputs = ["rooms", "feed"]
plugin = {plugin}
window.tumbling = {{ size_ms = 5000 }}

[sinks.out]
inputs = ["stats"]
[sinks.out.file]
path = "stats.jsonl"

[sinks.raw]
inputs = ["rooms"]
[sinks.raw.file]
path = "rooms.jsonl"
"#,
        plugin = toml_path(&plugin("window_stats")),
    );
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let out = run(&["run", "p.toml", "--duration", "3s"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    // The simulation ran either way: a minute of readings of two rooms.
    let readings = json_lines(&dir.path().join("rooms.jsonl")).len();
    assert!(readings >= 100, "{readings} readings");
    json_lines(&dir.path().join("stats.jsonl")).len()
}

#[test]
fn a_source_that_is_down_holds_event_time_back_unless_it_may_go_idle() {
    // 3 s at 20x is a minute of event time: about twelve 5 s windows per room.
    let with_idleness = windows_fired_with_a_source_down(Some(300));
    assert!(with_idleness >= 16, "{with_idleness} windows fired");
    assert_eq!(windows_fired_with_a_source_down(None), 0);
}

/// The seeds' window job over a recorded input, with an acknowledged TCP
/// sink to `port` and a local file sink beside it.
fn held_pipeline(port: u16) -> String {
    format!(
        r#"[pipeline]
shutdown_timeout_ms = 300
[checkpoint]
interval_ms = 100

[sources.ups.file]
path = "input.jsonl"

[operators.stats]
inputs = ["ups"]
plugin = {plugin}
window.tumbling = {{ size_ms = 1000 }}

[sinks.up]
inputs = ["stats"]
retry_initial_backoff_ms = 20
retry_max_backoff_ms = 100
[sinks.up.tcp]
address = "127.0.0.1:{port}"
acknowledgements = true

[sinks.local]
inputs = ["stats"]
[sinks.local.file]
path = "local.jsonl"
"#,
        plugin = toml_path(&plugin("window_stats")),
    )
}

/// Runs the pipeline to its end with the collector up, and checks that it
/// got every window result the local file has, none lost.
fn deliver_the_rest(dir: &std::path::Path, port: u16) {
    let collector = Peer::start_at(Role::Collect { ack: true }, port);
    let out = run(&["run", "p.toml"], dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let ids = |records: &[serde_json::Value]| -> BTreeSet<String> {
        records
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let local = json_lines(&dir.join("local.jsonl"));
    let received = lines(&collector.lines().join("\n"));
    // 900 s of input, 16 cells, 1 s windows.
    assert_eq!(ids(&local).len(), 900 * 16);
    assert_eq!(
        ids(&received),
        ids(&local),
        "the collector got every result"
    );
}

#[test]
fn records_held_for_a_down_peer_are_kept_when_the_run_ends_and_delivered_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    crate::crash::write_input(dir.path());
    let port = free_port();
    std::fs::write(dir.path().join("p.toml"), held_pipeline(port)).unwrap();
    let out = crate::support::run_logged(&["run", "p.toml"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the last checkpoint keeps them for the next run"),
        "{}",
        stderr(&out)
    );
    deliver_the_rest(dir.path(), port);
}

#[test]
fn records_held_for_a_down_peer_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    crate::crash::write_input(dir.path());
    let port = free_port();
    std::fs::write(dir.path().join("p.toml"), held_pipeline(port)).unwrap();
    for wait_ms in [400, 900] {
        let mut child = eddy()
            .args(["run", "p.toml"])
            .current_dir(dir.path())
            .env("EDDY_STATE_DIR", dir.path().join("state"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    deliver_the_rest(dir.path(), port);
}
