//! Modbus polling figures, in one run, against a real pymodbus server on
//! 127.0.0.1 (`tests/peers/modbus_server.py`, unit 1: 29 points in four
//! tables, every raw type and order), read by a release `eddy run`:
//!
//! 1. **As fast as the server answers**, one connection, ten devices (all
//!    unit 1) polled every 1 ms: points per second, with requests
//!    coalesced (`max_registers = 125`: 4 requests a poll) and without
//!    (`max_registers = 1`: 25 requests a poll).
//! 2. **CPU per 1000 points/s**: the same ten devices every 100 ms
//!    (2900 points/s), eddy's CPU time (user + system, from
//!    `/proc/PID/stat`) over the run.
//!
//! Needs the peers `cargo xtask test` installs (pymodbus in
//! `target/peers-venv`). Prints a table; writes `target/bench/modbus.json`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Devices polled, all unit 1.
const DEVICES: usize = 10;
/// Points of unit 1.
const POINTS: u64 = 29;
/// How long each case runs.
const RUN: Duration = Duration::from_secs(10);

#[path = "support/process.rs"]
mod process;

use process::{Killed, cpu};

/// Records the source has taken in, from `eddy status`.
fn records(dir: &Path) -> u64 {
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["status", "--json"])
        .env("EDDY_STATE_DIR", dir.join("state"))
        .output()
        .expect("eddy status");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    status["sources"][0]["records"].as_u64().unwrap_or(0)
}

/// Runs eddy polling the server for [`RUN`]; returns (points/s, CPU
/// seconds per second).
fn measure(dir: &Path, port: u16, max_registers: u16, every_ms: u64) -> (f64, f64) {
    let mut text = format!(
        "[pipeline]\nname = \"bench\"\n[checkpoint]\nenabled = false\n[sources.room.modbus]\ntcp = \"127.0.0.1:{port}\"\nmax_registers = {max_registers}\ntimeout_ms = 2000\n"
    );
    for d in 0..DEVICES {
        text.push_str(&format!(
            "[[sources.room.modbus.devices]]\nname = \"meter-{d}\"\nunit = 1\npoll_interval_ms = {every_ms}\nprofile = \"meter.yaml\"\n"
        ));
    }
    text.push_str("[sinks.none]\ninputs = [\"room\"]\n[sinks.none.null]\n");
    std::fs::write(dir.join("p.toml"), text).expect("pipeline");
    let _ = std::fs::remove_dir_all(dir.join("state"));
    let child = Killed(
        Command::new(env!("CARGO_BIN_EXE_eddy"))
            .args(["run", "p.toml"])
            .current_dir(dir)
            .env("EDDY_STATE_DIR", dir.join("state"))
            .env("EDDY_API_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("eddy starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("state/api.json").exists() {
        assert!(Instant::now() < deadline, "the API never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    let pid = child.0.id();
    let (t0, r0, c0) = (Instant::now(), records(dir), cpu(pid));
    std::thread::sleep(RUN);
    let (t1, r1, c1) = (Instant::now(), records(dir), cpu(pid));
    let seconds = (t1 - t0).as_secs_f64();
    (
        (r1 - r0) as f64 * POINTS as f64 / seconds,
        (c1 - c0).as_secs_f64() / seconds,
    )
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("target/peers-venv/bin/python");
    assert!(
        python.exists(),
        "pymodbus is missing: run `cargo xtask test` (or `cargo xtask bench`), which installs it"
    );
    let dir = tempfile::tempdir().expect("temporary folder");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let spec = dir.path().join("spec.json");
    let _server = Killed(
        Command::new(&python)
            .arg(root.join("tests/peers/modbus_server.py"))
            .arg("--spec")
            .arg(&spec)
            .args(["--tcp", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !spec.exists() {
        assert!(Instant::now() < deadline, "the server never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The meter's points as an EdgeX profile, from the server's spec.
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&spec).expect("spec")).expect("spec json");
    let mut yaml = String::from("deviceResources:\n");
    for p in spec["points"].as_array().expect("points") {
        yaml.push_str(&format!(
            "  - name: {}\n    attributes: {{ primaryTable: {}, startingAddress: {}, rawType: {}{}{}{}{} }}\n",
            p["name"],
            p["primaryTable"],
            p["startingAddress"],
            p["rawType"],
            p.get("isWordSwap").map_or(String::new(), |v| format!(", isWordSwap: {v}")),
            p.get("isByteSwap").map_or(String::new(), |v| format!(", isByteSwap: {v}")),
            p.get("stringRegisterSize").map_or(String::new(), |v| format!(", stringRegisterSize: {v}")),
            p.get("bitOffset").map_or(String::new(), |v| format!(", bitOffset: {v}")),
        ));
    }
    std::fs::write(dir.path().join("meter.yaml"), yaml).expect("profile");
    let (coalesced, coalesced_cpu) = measure(dir.path(), port, 125, 1);
    let (apart, apart_cpu) = measure(dir.path(), port, 1, 1);
    let (paced, paced_cpu) = measure(dir.path(), port, 125, 100);
    println!(
        "Modbus TCP, one pymodbus server, {DEVICES} devices of {POINTS} points, {} s a case",
        RUN.as_secs()
    );
    println!("| case | requests a poll | points/s | eddy CPU |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| as fast as answered, coalesced | 4 | {coalesced:.0} | {:.0}% |",
        coalesced_cpu * 100.0
    );
    println!(
        "| as fast as answered, one register a request | 25 | {apart:.0} | {:.0}% |",
        apart_cpu * 100.0
    );
    println!(
        "| every 100 ms, coalesced | 4 | {paced:.0} | {:.1}% |",
        paced_cpu * 100.0
    );
    let per_thousand = paced_cpu * 1000.0 / paced.max(1.0);
    println!(
        "CPU per 1000 points/s polled: {:.2} ms a second ({:.2}% of a core); coalescing: {:.1}x the points/s",
        per_thousand * 1000.0,
        per_thousand * 100.0,
        coalesced / apart.max(1.0)
    );
    let json = serde_json::json!({
        "devices": DEVICES,
        "points_per_device": POINTS,
        "coalesced_points_per_s": coalesced,
        "coalesced_cpu": coalesced_cpu,
        "one_register_points_per_s": apart,
        "one_register_cpu": apart_cpu,
        "paced_points_per_s": paced,
        "paced_cpu": paced_cpu,
        "cpu_core_share_per_1000_points_per_s": per_thousand,
    });
    std::fs::create_dir_all(root.join("target/bench")).expect("target/bench");
    std::fs::write(
        root.join("target/bench/modbus.json"),
        serde_json::to_string_pretty(&json).expect("json"),
    )
    .expect("write target/bench/modbus.json");
    println!("wrote target/bench/modbus.json");
}
