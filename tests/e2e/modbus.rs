//! The `modbus` source against a real Modbus server (pymodbus), over TCP
//! and over RTU on a pseudo-terminal pair: every raw type and order read
//! as the server laid it out, faults (exceptions, timeouts, a busy device)
//! counted per device without records, and a server restart ridden out.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::modbus_peer::{ModbusServer, On, SerialPair, assert_expected, edgex_profile};
use crate::support::free_port;
use crate::support::{Running, json_lines, metrics, start, status};

/// Waits until `check` holds, for up to 30 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The records of device `key` in the output file.
fn records_of(dir: &Path, key: &str) -> Vec<serde_json::Value> {
    json_lines(&dir.join("out/readings.jsonl"))
        .into_iter()
        .filter(|r| r["key"] == key)
        .collect()
}

/// A device's status.
fn device(status: &serde_json::Value, name: &str) -> serde_json::Value {
    status["sources"][0]["devices"][name].clone()
}

/// The connection settings, then devices: the meter (unit 1, its EdgeX
/// profile), a device with a hole in its map (unit 2), a busy one (unit 3)
/// and a slow one (unit 4).
fn pipeline(connection: &str, spec: &serde_json::Value) -> String {
    let hole = spec["hole"].as_u64().unwrap();
    format!(
        r#"[pipeline]
name = "modbus"
[checkpoint]
enabled = false
[sources.room]
idle_timeout_ms = 1000
[sources.room.modbus]
{connection}
timeout_ms = 400
retries = 1

[[sources.room.modbus.devices]]
name = "meter"
unit = 1
poll_interval_ms = 200
profile = "meter.yaml"

[[sources.room.modbus.devices]]
name = "holey"
unit = 2
poll_interval_ms = 200
points = [
  {{ name = "ok", primaryTable = "HOLDING_REGISTERS", startingAddress = 0, rawType = "Int16" }},
  {{ name = "missing", primaryTable = "HOLDING_REGISTERS", startingAddress = {hole}, rawType = "Uint16" }},
]

[[sources.room.modbus.devices]]
name = "busy"
unit = 3
poll_interval_ms = 200
points = [
  {{ name = "int16", primaryTable = "HOLDING_REGISTERS", startingAddress = 0, rawType = "Int16" }},
  {{ name = "voltage", primaryTable = "INPUT_REGISTERS", startingAddress = 0, rawType = "Uint16", scale = 0.1 }},
]

[[sources.room.modbus.devices]]
name = "slow"
unit = 4
poll_interval_ms = 1000
points = [
  {{ name = "int16", primaryTable = "HOLDING_REGISTERS", startingAddress = 0, rawType = "Int16" }},
]

[sinks.out]
inputs = ["room"]
[sinks.out.file]
path = "out/readings.jsonl"
"#
    )
}

/// A scratch folder with a pymodbus server on TCP and the meter's EdgeX
/// profile (`meter.yaml`) written from what the server serves.
fn tcp_setup() -> (tempfile::TempDir, ModbusServer, u16) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = ModbusServer::start(dir.path(), On::Tcp(port));
    std::fs::write(dir.path().join("meter.yaml"), edgex_profile(&server.spec)).unwrap();
    (dir, server, port)
}

#[test]
fn every_type_and_order_reads_as_laid_out_and_faults_are_counted_per_device() {
    let (dir, server, port) = tcp_setup();
    let connection = format!("tcp = \"127.0.0.1:{port}\"");
    std::fs::write(
        dir.path().join("p.toml"),
        pipeline(&connection, &server.spec),
    )
    .unwrap();
    let child = Running(Some(start(dir.path())));
    eventually("five meter records and a slow device in fault", || {
        let s = status(dir.path());
        records_of(dir.path(), "meter").len() >= 5
            && device(&s, "slow")["faults"].as_u64().unwrap_or(0) >= 2
    });
    let s = status(dir.path());
    let meter = records_of(dir.path(), "meter");
    for record in &meter {
        assert_expected(record, &server.spec);
    }
    // The event time is when the response came: now, give or take.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let last = meter.last().unwrap()["time"].as_i64().unwrap();
    assert!(
        (now - 60_000..=now).contains(&last),
        "time {last}, now {now}"
    );
    // A device answered with an exception gives no record, every poll.
    assert!(records_of(dir.path(), "holey").is_empty());
    let holey = device(&s, "holey");
    assert_eq!(holey["up"], false, "{s}");
    assert!(holey["faults"].as_u64().unwrap() >= 2, "{holey}");
    let why = holey["last_fault"].as_str().unwrap();
    assert!(why.contains("exception 0x02"), "{why}");
    // Busy every other request: the retry gets the answer.
    let busy = records_of(dir.path(), "busy");
    assert!(!busy.is_empty(), "{s}");
    assert_eq!(busy[0]["fields"]["int16"], -12345);
    assert_eq!(device(&s, "busy")["faults"], 0, "{s}");
    // A device that does not answer in time is a fault; its late answers
    // are not taken for another device's.
    assert!(records_of(dir.path(), "slow").is_empty());
    let slow = device(&s, "slow");
    assert!(
        slow["last_fault"]
            .as_str()
            .unwrap()
            .contains("no answer within 400 ms"),
        "{slow}"
    );
    assert_eq!(device(&s, "meter")["up"], true, "{s}");
    assert_eq!(device(&s, "meter")["faults"], 0, "{s}");
    assert_eq!(s["sources"][0]["state"], "up", "the source is up: {s}");
    let metrics = metrics(dir.path());
    let line = metrics
        .lines()
        .find(|l| l.starts_with("eddy_device_faults_total") && l.contains("device=\"holey\""))
        .unwrap_or_else(|| panic!("no fault counter for holey: {metrics}"));
    assert!(line.contains("component=\"room\""), "{line}");
    child.stop(dir.path());
    server.kill();
}

#[test]
fn a_server_restart_in_the_middle_of_a_run_is_ridden_out() {
    let (dir, server, port) = tcp_setup();
    let spec = server.spec.clone();
    let connection = format!("tcp = \"127.0.0.1:{port}\"");
    std::fs::write(dir.path().join("p.toml"), pipeline(&connection, &spec)).unwrap();
    let child = Running(Some(start(dir.path())));
    eventually("meter records before the restart", || {
        records_of(dir.path(), "meter").len() >= 3
    });
    server.kill();
    eventually("the outage seen", || {
        let s = status(dir.path());
        s["sources"][0]["state"] == "retrying" || device(&s, "meter")["up"] == false
    });
    let down = records_of(dir.path(), "meter").len();
    let restarted_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let server = ModbusServer::start(dir.path(), On::Tcp(port));
    eventually("meter records after the restart", || {
        records_of(dir.path(), "meter").len() >= down + 3
    });
    let s = status(dir.path());
    assert_eq!(s["sources"][0]["state"], "up", "{s}");
    assert_eq!(device(&s, "meter")["up"], true, "{s}");
    let after: Vec<_> = records_of(dir.path(), "meter")
        .into_iter()
        .filter(|r| r["time"].as_i64().unwrap() >= restarted_at)
        .collect();
    assert!(!after.is_empty());
    for record in &after {
        assert_expected(record, &spec);
    }
    child.stop(dir.path());
    server.kill();
}

#[test]
fn rtu_over_a_serial_line_reads_the_same_values() {
    let dir = tempfile::tempdir().unwrap();
    let pair = SerialPair::start(dir.path());
    let server = ModbusServer::start(dir.path(), On::Rtu(&pair.server));
    std::fs::write(dir.path().join("meter.yaml"), edgex_profile(&server.spec)).unwrap();
    let connection = format!(
        "rtu = {{ port = {:?}, baud_rate = 115200, parity = \"none\" }}",
        pair.eddy.display().to_string()
    );
    // The slow device is left out on a serial line: its late answers
    // would collide with the next request, as on a real bus.
    let text = pipeline(&connection, &server.spec);
    let text = text[..text
        .find("[[sources.room.modbus.devices]]\nname = \"slow\"")
        .unwrap()]
        .to_owned()
        + "[sinks.out]\ninputs = [\"room\"]\n[sinks.out.file]\npath = \"out/readings.jsonl\"\n";
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let child = Running(Some(start(dir.path())));
    eventually("three meter records over RTU", || {
        records_of(dir.path(), "meter").len() >= 3
    });
    for record in records_of(dir.path(), "meter") {
        assert_expected(&record, &server.spec);
    }
    let s = status(dir.path());
    assert!(records_of(dir.path(), "holey").is_empty());
    let holey = device(&s, "holey");
    assert!(
        holey["last_fault"]
            .as_str()
            .unwrap()
            .contains("exception 0x02"),
        "{holey}"
    );
    assert!(!records_of(dir.path(), "busy").is_empty(), "{s}");
    child.stop(dir.path());
    server.kill();
}

#[test]
fn coalescing_reads_contiguous_points_in_one_request() {
    // The meter's points lie in four tables: four requests a poll when
    // coalesced; when a request may read one register (16 bits), one per
    // register address, and one per bit table (its bits lie within 16).
    let (dir, server, port) = tcp_setup();
    let spec = server.spec.clone();
    let points = spec["points"].as_array().unwrap();
    let mut requests_per_poll = Vec::new();
    for max_registers in [125, 1] {
        let text = format!(
            r#"[checkpoint]
enabled = false
[sources.room.modbus]
tcp = "127.0.0.1:{port}"
max_registers = {max_registers}
[[sources.room.modbus.devices]]
name = "meter"
poll_interval_ms = 100
profile = "meter.yaml"
[sinks.out]
inputs = ["room"]
[sinks.out.file]
path = "out/readings.jsonl"
"#
        );
        let _ = std::fs::remove_dir_all(dir.path().join("out"));
        std::fs::write(dir.path().join("p.toml"), text).unwrap();
        let before = server.requests();
        let child = Running(Some(start(dir.path())));
        eventually("ten polls", || records_of(dir.path(), "meter").len() >= 10);
        child.stop(dir.path());
        // The counts file is written every 100 ms.
        std::thread::sleep(Duration::from_millis(300));
        let polls = records_of(dir.path(), "meter").len() as f64;
        requests_per_poll.push((server.requests() - before) as f64 / polls);
    }
    // Expected from the spec: the tables the points are in, and the
    // registers they take apart (bits of one register share it).
    let tables: std::collections::BTreeSet<&str> = points
        .iter()
        .map(|p| p["primaryTable"].as_str().unwrap())
        .collect();
    let mut addresses: std::collections::BTreeSet<(String, u64)> = Default::default();
    for p in points {
        let table = p["primaryTable"].as_str().unwrap();
        let address = p["startingAddress"].as_u64().unwrap();
        if table.ends_with("REGISTERS") {
            addresses.insert((table.to_owned(), address));
        } else {
            assert!(address < 16, "the bits lie within one request");
            addresses.insert((table.to_owned(), 0));
        }
    }
    let (coalesced, apart) = (requests_per_poll[0], requests_per_poll[1]);
    // A poll may be under way when the run stops: allow a little more.
    assert!(
        (tables.len() as f64..tables.len() as f64 + 1.0).contains(&coalesced),
        "{coalesced} requests a poll coalesced; {} tables",
        tables.len()
    );
    assert!(
        (addresses.len() as f64..addresses.len() as f64 + 4.0).contains(&apart),
        "{apart} requests a poll one point each; {} addresses",
        addresses.len()
    );
    server.kill();
}

#[test]
fn the_device_examples_check_without_touching_a_device() {
    // The Modbus example names a gateway and a serial port that are not
    // here, the I2C example a bus that is not, the BLE example an adapter
    // and sensors that are not, the MQTT and Kafka examples brokers that are not:
    // `eddy check` reads their
    // profiles and settings and contacts nothing.
    for example in [
        "modbus-room.toml",
        "i2c-rack.toml",
        "ble-racks.toml",
        "mqtt-uplink.toml",
        "kafka-uplink.toml",
    ] {
        let out = crate::support::run(
            &["check", example],
            &crate::support::root().join("examples"),
        );
        assert!(
            out.status.success(),
            "{example}: {}",
            crate::support::stderr(&out)
        );
    }
}

/// `eddy check` of `text` as `dir/p.toml`, which must fail with exit 2;
/// its standard error.
fn refused(dir: &Path, text: &str) -> String {
    std::fs::write(dir.join("p.toml"), text).unwrap();
    let out = crate::support::run(&["check", "p.toml"], dir);
    let error = crate::support::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{error}");
    error
}

#[test]
fn a_profile_that_cannot_work_is_refused_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    // A Float32 that claims three registers.
    let text = r#"[sources.room.modbus]
tcp = "127.0.0.1:1502"
[[sources.room.modbus.devices]]
name = "meter"
points = [
  { name = "power", primaryTable = "INPUT_REGISTERS", startingAddress = 0, rawType = "Float32", stringRegisterSize = 3 },
]
[sinks.out]
inputs = ["room"]
[sinks.out.stdout]
"#;
    let error = refused(dir.path(), text);
    // At the point's own place in the file.
    assert!(error.contains("p.toml:6:"), "{error}");
    assert!(
        error.contains("`power`: a Float32 takes 2 registers, not 3"),
        "{error}"
    );
    // Overlapping points, and an unknown rawType, in a profile file: the
    // file's place is named.
    std::fs::write(
        dir.path().join("bad.yaml"),
        "deviceResources:\n  - name: a\n    attributes: { primaryTable: HOLDING_REGISTERS, startingAddress: 0, rawType: Int32 }\n  - name: b\n    attributes: { primaryTable: HOLDING_REGISTERS, startingAddress: 1, rawType: Int16 }\n",
    )
    .unwrap();
    let text = r#"[sources.room.modbus]
tcp = "127.0.0.1:1502"
[[sources.room.modbus.devices]]
name = "meter"
profile = "bad.yaml"
[sinks.out]
inputs = ["room"]
[sinks.out.stdout]
"#;
    let error = refused(dir.path(), text);
    assert!(error.contains("points `a` and `b` overlap"), "{error}");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "deviceResources:\n  - name: a\n    attributes: { primaryTable: HOLDING_REGISTERS, startingAddress: 0, rawType: Int24 }\n",
    )
    .unwrap();
    let error = refused(dir.path(), text);
    assert!(error.contains("bad.yaml"), "{error}");
    assert!(error.contains("`Int24` cannot be read"), "{error}");
    assert!(error.contains("p.toml:5:"), "{error}");
}

#[test]
fn writes_are_read_back_with_the_points_type_scale_and_order() {
    use eddy_driver_modbus::{Point, PointValue, PointWriter, WriteError};
    let (dir, server, port) = tcp_setup();
    let point = |name: &str| -> Point {
        let p = server.spec["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone();
        let mut p = p.as_object().unwrap().clone();
        p.remove("expected");
        serde_json::from_value(serde_json::Value::Object(p)).unwrap()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let timeout = Duration::from_secs(2);
    runtime.block_on(async {
        let address = format!("127.0.0.1:{port}").parse().unwrap();
        let mut link = tokio_modbus::client::tcp::connect(address).await.unwrap();
        // A scaled setpoint: 23.4 at 0.1 per unit is raw 234.
        let setpoint = point("setpoint");
        let back = link
            .write_point(1, &setpoint, &PointValue::Float(23.4), timeout)
            .await
            .unwrap();
        let PointValue::Float(read) = back else {
            panic!("{back:?}");
        };
        assert!((read - 23.4).abs() < 1e-9, "{read}");
        // A word- and byte-swapped Float32, and a coil.
        let mut float = point("float32_wb");
        float.read_write = eddy_driver_modbus::ReadWrite::RW;
        let back = link
            .write_point(1, &float, &PointValue::Float(-7.25), timeout)
            .await
            .unwrap();
        assert_eq!(back, PointValue::Float(-7.25));
        let coil = point("coil1");
        let back = link
            .write_point(1, &coil, &PointValue::Bool(true), timeout)
            .await
            .unwrap();
        assert_eq!(back, PointValue::Bool(true));
        // Out of range, read-only: refused before anything is sent.
        let error = link
            .write_point(1, &setpoint, &PointValue::Float(4000.0), timeout)
            .await
            .unwrap_err();
        assert!(matches!(error, WriteError::Encode(_)), "{error}");
        let error = link
            .write_point(1, &point("int16"), &PointValue::Int(1), timeout)
            .await
            .unwrap_err();
        assert!(matches!(error, WriteError::ReadOnly(_)), "{error}");
        // The device refuses an address it does not have (unit 2's hole).
        let mut hole = point("uint16");
        hole.read_write = eddy_driver_modbus::ReadWrite::RW;
        let error = link
            .write_point(2, &hole, &PointValue::Int(5), timeout)
            .await
            .unwrap_err();
        assert!(
            matches!(error, WriteError::Exception { code: 2, .. }),
            "{error}"
        );
    });
    // Read by eddy afterwards: the values written are what the device holds.
    let connection = format!("tcp = \"127.0.0.1:{port}\"");
    let text = format!(
        r#"[checkpoint]
enabled = false
[sources.room.modbus]
{connection}
[[sources.room.modbus.devices]]
name = "meter"
poll_interval_ms = 100
points = [
  {{ name = "setpoint", primaryTable = "HOLDING_REGISTERS", startingAddress = {sp}, rawType = "Int16" }},
  {{ name = "coil1", primaryTable = "COILS", startingAddress = 1, rawType = "Bool" }},
]
[sinks.out]
inputs = ["room"]
[sinks.out.file]
path = "out/readings.jsonl"
"#,
        sp = point("setpoint").address
    );
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let child = Running(Some(start(dir.path())));
    eventually("a record", || !records_of(dir.path(), "meter").is_empty());
    let record = &records_of(dir.path(), "meter")[0];
    assert_eq!(record["fields"]["setpoint"], 234, "the raw register");
    assert_eq!(record["fields"]["coil1"], true);
    child.stop(dir.path());
    server.kill();
}
