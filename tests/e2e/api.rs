//! The local API against clients that misbehave: a client without the token
//! is refused before its body is read, and a storm of requests from many
//! clients is answered, each request as its token deserves, while the
//! pipeline goes on. (How fast the pipeline goes under such a storm is a
//! figure of `cargo xtask bench`, the `api` part, not a test.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::storm::storm;
use crate::support::{Running, plugin, start, status, toml_path};

/// Unpaced simulation into window statistics.
fn pipeline() -> String {
    format!(
        r#"[pipeline]
name = "site"
[checkpoint]
enabled = false
[sources.ups.sim]
speed = 0
interval_ms = 1000
ups = [{{ name = "ups-1", strings = 10, cells_per_string = 100 }}]
[operators.stats]
inputs = ["ups"]
plugin = {stats}
window.tumbling = {{ size_ms = 60_000 }}
[sinks.none]
inputs = ["stats"]
[sinks.none.null]
"#,
        stats = toml_path(&plugin("window_stats")),
    )
}

/// The API's address, from `api.json`.
fn address(dir: &std::path::Path) -> String {
    let endpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state/api.json")).unwrap()).unwrap();
    endpoint["url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned()
}

#[test]
fn an_upload_without_the_token_is_refused_before_its_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    // A quiet pipeline, whose own memory stays put.
    let quiet = pipeline()
        .replace("speed = 0", "speed = 1")
        .replace("strings = 10", "strings = 1");
    std::fs::write(dir.path().join("p.toml"), quiet).unwrap();
    let child = Running(Some(start(dir.path())));
    let before = status(dir.path())["resident_bytes"].as_u64().unwrap();
    let size: usize = 64 << 20;
    let mut stream = TcpStream::connect(address(dir.path())).unwrap();
    write!(
        stream,
        "PUT /pipelines/site/operators/stats/plugin HTTP/1.1\r\nHost: eddy\r\nContent-Length: {size}\r\n\r\n"
    )
    .unwrap();
    // The server answers as soon as it has the headers.
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let chunk = vec![0u8; 1 << 20];
            let mut sent = 0;
            while sent < size && stream.write_all(&chunk).is_ok() {
                sent += chunk.len();
            }
            sent
        })
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 401");
    drop(stream);
    let sent = writer.join().unwrap();
    let after = status(dir.path())["resident_bytes"].as_u64().unwrap();
    assert!(
        after < before + (8 << 20),
        "resident memory went from {before} to {after} bytes while {sent} bytes were offered"
    );
    child.stop(dir.path());
}

/// Records the pipeline has taken in, as `eddy status` counts them.
fn records(dir: &std::path::Path) -> u64 {
    status(dir)["sources"][0]["records"].as_u64().unwrap()
}

#[test]
fn a_storm_of_requests_is_answered_by_token_while_the_pipeline_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline()).unwrap();
    let child = Running(Some(start(dir.path())));
    let address = address(dir.path());
    let token = std::fs::read_to_string(dir.path().join("state/api.token")).unwrap();
    let token = token.trim().to_owned();
    // 100 clients, each on a connection of its own that it keeps, as a
    // scraper or a dashboard does; every third without the token.
    let before = records(dir.path());
    let span = Duration::from_secs(3);
    let (with, without) = storm(&address, &token, span, false);
    let after = records(dir.path());
    println!(
        "{} answers; with the token {with:?}, without {without:?}; records {before} -> {after}",
        with.total() + without.total()
    );
    assert!(with.ok > 100, "token holders got {with:?}");
    assert_eq!(
        (with.refused, with.other),
        (0, 0),
        "token holders got {with:?}"
    );
    assert!(
        without.refused > 50,
        "clients without the token got {without:?}"
    );
    assert_eq!(
        (without.ok, without.other),
        (0, 0),
        "clients without the token got {without:?}"
    );
    // The API serves 200 requests a second with bursts of as many; the
    // rest are told to come back (429) after a pause.
    let served = with.ok + without.refused;
    assert!(
        served <= 200 * (span.as_secs() + 1) + 200,
        "{served} requests were served in {span:?}"
    );
    assert!(
        with.busy + without.busy > 0,
        "nothing was told to come back later"
    );
    assert!(
        after > before,
        "the pipeline took no record during the storm ({before} before, {after} after)"
    );
    child.stop(dir.path());
}
