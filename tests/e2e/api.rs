//! The local API against clients that misbehave: a client without the token
//! is refused before its body is read, and a storm of requests does not slow
//! the pipeline down.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{finish, plugin, start, status, toml_path};

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

/// A running eddy, stopped (SIGTERM) when dropped, so a failing test leaves none behind.
struct Running(Option<std::process::Child>);

impl Running {
    fn stop(mut self, dir: &std::path::Path) {
        if let Some(child) = self.0.take() {
            // SAFETY: kill(2) with a pid this test started.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            finish(child, dir);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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

/// Sends `GET /status` over one kept connection until `until`; returns
/// how many answers came back.
async fn client(address: &str, token: Option<&str>, until: tokio::time::Instant) -> u64 {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!("GET /status HTTP/1.1\r\nHost: eddy\r\n{auth}\r\n");
    let mut served = 0;
    while tokio::time::Instant::now() < until {
        let Ok(stream) = tokio::net::TcpStream::connect(address).await else {
            continue;
        };
        let mut reader = tokio::io::BufReader::new(stream);
        'kept: while tokio::time::Instant::now() < until {
            if reader
                .get_mut()
                .write_all(request.as_bytes())
                .await
                .is_err()
            {
                break;
            }
            let mut length = 0;
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => break 'kept,
                    Ok(_) => {}
                }
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).await.is_err() {
                break;
            }
            served += 1;
        }
    }
    served
}

/// Records the pipeline takes in over `span`, as `eddy status` counts them.
fn rate(dir: &std::path::Path, span: Duration) -> f64 {
    let records = |s: &serde_json::Value| s["sources"][0]["records"].as_u64().unwrap();
    let (t0, r0) = (Instant::now(), records(&status(dir)));
    std::thread::sleep(span);
    let (t1, r1) = (Instant::now(), records(&status(dir)));
    (r1 - r0) as f64 / (t1 - t0).as_secs_f64()
}

#[test]
fn a_storm_of_requests_leaves_the_pipeline_as_fast_measured_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline()).unwrap();
    let child = Running(Some(start(dir.path())));
    let address = address(dir.path());
    let token = std::fs::read_to_string(dir.path().join("state/api.token")).unwrap();
    rate(dir.path(), Duration::from_millis(500));
    // 100 clients, each on a connection of its own that it keeps, as a
    // scraper or a dashboard does; every third without the token. They run
    // on one thread at the lowest priority: they stand in for other
    // machines and do not get to take the CPU the pipeline runs on.
    let storm = |span: Duration| -> u64 {
        let (address, token) = (address.clone(), token.trim().to_owned());
        std::thread::spawn(move || {
            // SAFETY: setpriority on this thread only.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, 19);
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let until = tokio::time::Instant::now() + span;
                let clients = (0..100).map(|n| {
                    let (address, token) = (address.clone(), token.clone());
                    tokio::spawn(async move {
                        client(&address, (n % 3 != 0).then_some(&token), until).await
                    })
                });
                let mut served = 0;
                for c in clients.collect::<Vec<_>>() {
                    served += c.await.unwrap_or(0);
                }
                served
            })
        })
        .join()
        .unwrap()
    };
    // Quiet and stormy spans in turn, so that drift affects both alike.
    let (mut quiet, mut stormy) = (Vec::new(), Vec::new());
    let mut requests = 0;
    for _ in 0..5 {
        quiet.push(rate(dir.path(), Duration::from_secs(1)));
        let measured = std::thread::scope(|scope| {
            let load = scope.spawn(|| storm(Duration::from_millis(1400)));
            std::thread::sleep(Duration::from_millis(200));
            let measured = rate(dir.path(), Duration::from_secs(1));
            requests += load.join().unwrap();
            measured
        });
        stormy.push(measured);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (quiet, stormy) = (median(quiet), median(stormy));
    println!("records/s quiet {quiet:.0}, under {requests} requests from 100 clients {stormy:.0}");
    assert!(requests > 1000, "the storm sent {requests} requests");
    assert!(
        stormy >= 0.9 * quiet,
        "under the storm the pipeline took {stormy:.0} records/s, alone {quiet:.0}"
    );
    child.stop(dir.path());
}
