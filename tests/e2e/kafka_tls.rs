//! Kafka over TLS, for real. librdkafka's mock cluster speaks plaintext
//! only, so eddy runs in a network namespace of its own in which the
//! cluster's address (127.0.0.1 and its port) is a TLS endpoint — socat
//! with the test's CA and certificate — in front of the cluster, reached
//! over a veth pair: every connection eddy makes to the cluster, the
//! bootstrap one and those to the broker its metadata names, is TLS.

use std::path::Path;
use std::process::{Command, Stdio};

use rdkafka::mocking::MockCluster;

use crate::certs::{make_ca, server_cert};
use crate::kafka::consume_all;
use crate::mqtt::Peer;
use crate::netns::Namespace;
use crate::support::{eventually, json_lines};

fn socat(mut cmd: Command, args: &[String]) -> Peer {
    Peer(
        cmd.args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat runs (cargo xtask test installs it)"),
    )
}

/// A pipeline of 5 s of simulated readings (10 a second) to a file and to
/// Kafka at `brokers` over TLS with the CA `ca`.
fn pipeline(dir: &Path, brokers: &str, ca: &str, shutdown_ms: u64) {
    std::fs::write(
        dir.join("p.toml"),
        format!(
            r#"
[pipeline]
name = "site"
shutdown_timeout_ms = {shutdown_ms}
[checkpoint]
enabled = false
[sources.ups.sim]
speed = 0
duration_ms = 5_000
interval_ms = 1000
ups = [{{ name = "ups-1", strings = 2, cells_per_string = 5 }}]
[sinks.local]
inputs = ["ups"]
[sinks.local.file]
path = "local.jsonl"
[sinks.uplink]
inputs = ["ups"]
retry_initial_backoff_ms = 100
retry_max_backoff_ms = 500
[sinks.uplink.kafka]
brokers = ["{brokers}"]
topic = "out.readings"
ack_timeout_ms = 3000
tls = {{ ca_file = "{ca}" }}
"#
        ),
    )
    .unwrap();
}

/// `eddy run` in the namespace, to its end; its log.
fn run_in(ns: &Namespace, dir: &Path) -> String {
    let out = ns
        .command(env!("CARGO_BIN_EXE_eddy"))
        .args(["run", "p.toml"])
        .current_dir(dir)
        .env("EDDY_STATE_DIR", dir.join("state"))
        .env("EDDY_API_LISTEN", "127.0.0.1:0")
        .env("EDDY_LOG", "info")
        .output()
        .expect("eddy runs");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "eddy failed: {log}");
    log
}

#[test]
fn kafka_over_tls_is_written_with_its_ca_and_refused_with_another() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "ca");
    make_ca(d, "other-ca");
    server_cert(d, "broker", "ca", "127.0.0.1");
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("out.readings", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let port = brokers.rsplit_once(':').unwrap().1.to_owned();

    let ns = Namespace::new("ktls");
    // Host side: the veth address forwards to the cluster on loopback.
    let _relay = socat(
        Command::new("socat"),
        &[
            format!("TCP-LISTEN:{port},bind={},fork,reuseaddr", ns.host_ip),
            format!("TCP:127.0.0.1:{port}"),
        ],
    );
    // Namespace side: the cluster's address is TLS, forwarded over the veth.
    let _tls = socat(
        ns.command("socat"),
        &[
            format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,cert={dir}/broker.pem,key={dir}/broker.key,verify=0",
                dir = d.display()
            ),
            format!("TCP:{}:{port}", ns.host_ip),
        ],
    );
    eventually(
        20,
        || "the TLS endpoint listens".into(),
        || {
            ns.command("socat")
                .args(["-u", "OPEN:/dev/null", &format!("TCP:127.0.0.1:{port}")])
                .status()
                .is_ok_and(|s| s.success())
        },
    );

    // A CA the broker's certificate is not from: nothing goes, nothing is
    // lost (the results stay in the outbox).
    let refused = d.join("refused");
    std::fs::create_dir_all(&refused).unwrap();
    std::fs::copy(d.join("other-ca.pem"), refused.join("other-ca.pem")).unwrap();
    pipeline(&refused, &brokers, "other-ca.pem", 4000);
    let log = run_in(&ns, &refused);
    let made = json_lines(&refused.join("local.jsonl")).len();
    assert!(made > 0, "the simulator made readings: {log}");
    assert!(
        log.contains("stay in the outbox"),
        "undelivered results are kept: {log}"
    );
    assert!(
        consume_all(&brokers, "out.readings", 1).is_empty(),
        "nothing reached the cluster through a TLS endpoint whose certificate the CA did not sign"
    );

    // The broker's CA: every reading reaches the cluster, as the file has it.
    let good = d.join("good");
    std::fs::create_dir_all(&good).unwrap();
    std::fs::copy(d.join("ca.pem"), good.join("ca.pem")).unwrap();
    pipeline(&good, &brokers, "ca.pem", 30_000);
    let log = run_in(&ns, &good);
    let local = json_lines(&good.join("local.jsonl"));
    let topic = consume_all(&brokers, "out.readings", 1);
    assert_eq!(topic.len(), local.len(), "{log}");
    let key_time = |v: &serde_json::Value| (v["key"].clone(), v["time"].clone());
    let mut want: Vec<_> = local.iter().map(key_time).collect();
    let mut got: Vec<_> = topic.iter().map(|(_, v)| key_time(v)).collect();
    want.sort_by_key(|k| k.0.to_string() + &k.1.to_string());
    got.sort_by_key(|k| k.0.to_string() + &k.1.to_string());
    assert_eq!(got, want);
    assert!(
        topic.iter().all(|(id, _)| !id.is_empty()),
        "each has its result id"
    );
}
