//! A real Modbus server for tests: pymodbus (`tests/peers/modbus_server.py`)
//! serving TCP on 127.0.0.1 or RTU on one end of a `socat` pseudo-terminal
//! pair. The server lays its register map out with Python's `struct` and
//! writes the points and their expected values to a spec file, which the
//! tests compare eddy's records with.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::root;

/// The Python with pymodbus that `cargo xtask test` installs.
pub(crate) fn python() -> PathBuf {
    let python = std::env::var_os("EDDY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/peers-venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run `cargo xtask test`, which installs pymodbus into target/peers-venv",
        python.display()
    );
    python
}

/// Waits for `path` to exist.
fn wait_for(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what} never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running pymodbus server; stopped when dropped.
pub(crate) struct ModbusServer {
    child: Child,
    /// The points it serves, with `expected` values.
    pub(crate) spec: serde_json::Value,
    /// Where it counts the requests units 1 to 3 answered.
    requests: PathBuf,
}

/// Where a server listens.
pub(crate) enum On<'a> {
    /// TCP on 127.0.0.1:port.
    Tcp(u16),
    /// RTU on a serial device.
    Rtu(&'a Path),
}

impl ModbusServer {
    /// Starts a server writing its spec and counts into `dir`.
    pub(crate) fn start(dir: &Path, on: On<'_>) -> ModbusServer {
        let spec = dir.join("modbus-spec.json");
        let _ = std::fs::remove_file(&spec);
        let requests = dir.join("modbus-requests.json");
        let mut cmd = Command::new(python());
        cmd.arg(root().join("tests/peers/modbus_server.py"))
            .arg("--spec")
            .arg(&spec)
            .arg("--requests")
            .arg(&requests);
        match on {
            On::Tcp(port) => cmd.args(["--tcp", &port.to_string()]),
            On::Rtu(device) => cmd.arg("--rtu").arg(device),
        };
        let log = std::fs::File::create(dir.join("modbus-server.log")).unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("python starts");
        wait_for(&spec, "the Modbus server");
        let spec = serde_json::from_slice(&std::fs::read(&spec).unwrap()).unwrap();
        ModbusServer {
            child,
            spec,
            requests,
        }
    }

    /// Requests answered so far.
    pub(crate) fn requests(&self) -> u64 {
        std::fs::read(&self.requests)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["count"].as_u64())
            .unwrap_or(0)
    }

    /// Stops it (SIGKILL: as a device losing power).
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ModbusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `socat` pseudo-terminal pair: eddy opens one end, the server the other.
pub(crate) struct SerialPair {
    child: Child,
    /// eddy's end.
    pub(crate) eddy: PathBuf,
    /// The server's end.
    pub(crate) server: PathBuf,
}

impl SerialPair {
    /// Starts socat with both ends linked into `dir`.
    pub(crate) fn start(dir: &Path) -> SerialPair {
        let (eddy, server) = (dir.join("tty-eddy"), dir.join("tty-server"));
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", eddy.display()))
            .arg(format!("pty,raw,echo=0,link={}", server.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat starts (cargo xtask test installs it)");
        wait_for(&eddy, "socat's first end");
        wait_for(&server, "socat's second end");
        SerialPair {
            child,
            eddy,
            server,
        }
    }
}

impl Drop for SerialPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The points of unit 1 as an EdgeX device profile, in YAML as EdgeX
/// writes them: `deviceResources` with Modbus `attributes` and value
/// `properties`.
pub(crate) fn edgex_profile(spec: &serde_json::Value) -> String {
    let mut yaml = String::from(
        "name: \"Test-Meter\"\nmanufacturer: \"eddy tests\"\nmodel: \"SIM-1\"\nlabels:\n  - \"test\"\ndescription: \"every raw type and order\"\ndeviceResources:\n",
    );
    for p in spec["points"].as_array().unwrap() {
        // EdgeX's own spellings: `DISCRETES_INPUT`, and a bit of a
        // register as `startingAddress: "register.bit"`.
        let table = match p["primaryTable"].as_str().unwrap() {
            "DISCRETE_INPUTS" => "DISCRETES_INPUT",
            other => other,
        };
        let address = match p.get("bitOffset") {
            Some(bit) => format!("\"{}.{bit}\"", p["startingAddress"]),
            None => p["startingAddress"].to_string(),
        };
        yaml.push_str(&format!(
            "  - name: \"{}\"\n    isHidden: false\n    description: \"\"\n    attributes:\n      primaryTable: \"{table}\"\n      startingAddress: {address}\n      rawType: \"{}\"\n",
            p["name"].as_str().unwrap(),
            p["rawType"].as_str().unwrap()
        ));
        for key in ["isWordSwap", "isByteSwap", "stringRegisterSize"] {
            if let Some(v) = p.get(key) {
                yaml.push_str(&format!("      {key}: {v}\n"));
            }
        }
        let value_type = match p["rawType"].as_str().unwrap() {
            "Bool" => "Bool",
            "String" => "String",
            _ if p.get("scale").is_some() => "Float64",
            other => other,
        };
        yaml.push_str(&format!(
            "    properties:\n      valueType: \"{value_type}\"\n      readWrite: \"{}\"\n",
            p.get("readWrite").and_then(|v| v.as_str()).unwrap_or("R")
        ));
        if let Some(scale) = p.get("scale") {
            // EdgeX writes numbers in properties as strings.
            yaml.push_str(&format!("      scale: \"{scale}\"\n"));
        }
        if let Some(offset) = p.get("offset") {
            yaml.push_str(&format!("      offset: \"{offset}\"\n"));
        }
    }
    yaml.push_str("deviceCommands: []\n");
    yaml
}

/// Asserts that a record has every point of the spec with its expected value.
pub(crate) fn assert_expected(record: &serde_json::Value, spec: &serde_json::Value) {
    for p in spec["points"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let (got, want) = (&record["fields"][name], &p["expected"]);
        let same = match (got.as_f64(), want.as_f64()) {
            (Some(g), Some(w)) => (g - w).abs() <= 1e-9 * w.abs().max(1.0),
            _ => got == want,
        };
        assert!(
            same,
            "point `{name}`: read {got}, expected {want}; record {record}"
        );
    }
}
