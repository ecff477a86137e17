//! The `ble` source through btleplug against BlueZ mocked on a private
//! D-Bus system bus (python-dbusmock's bluez5 template, started by
//! `tests/peers/bluez_mock.py`): no Bluetooth radio can run here, so BlueZ
//! is the mock and everything from D-Bus on is real. Advertisements flow
//! as BlueZ reports them (property changes of ServiceData,
//! ManufacturerData and RSSI) into records; a GATT device's services
//! appear as BlueZ shows them once connected, its notifications as Value
//! property changes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Running, eddy, json_lines, root, status};

/// Waits until `check` holds, for up to 60 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The mock, stopped when dropped.
struct Mock(Child);

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sensors and what they advertise, in order.
fn spec() -> serde_json::Value {
    serde_json::json!({
        "devices": [
            ["A4:C1:38:00:00:01", "ATC_rack3"],
            ["C7:2B:00:00:00:02", "Ruuvi 0202"],
            ["54:48:E6:8F:80:A5", "BTH-enc"],
            ["11:22:33:44:55:66", "Other"],
        ],
        "packets": [
            // BTHome, packet 1: 0x09CA = 25.06 °C, 0x13BF = 50.55 %.
            {"address": "A4:C1:38:00:00:01", "rssi": -60,
             "service_data": {"fcd2": "40000102ca0903bf13"}},
            // The same packet heard again: one record.
            {"address": "A4:C1:38:00:00:01", "rssi": -58,
             "service_data": {"fcd2": "40000102ca0903bf13"}},
            // Packet 2: 0x0929 = 23.45 °C.
            {"address": "A4:C1:38:00:00:01", "rssi": -61,
             "service_data": {"fcd2": "400002022909"}},
            // Ruuvi RAWv2, the format's published vector: 24.3 °C,
            // 53.49 %, 1000.44 hPa, 2977 mV, sequence 205.
            {"address": "C7:2B:00:00:00:02", "rssi": -70,
             "manufacturer_data": {"1177": "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F"}},
            // Encrypted BTHome (laid out by Python's cryptography, see
            // the decoder's tests): 25.06 °C, 50.55 %, counter 0x33221100.
            {"address": "54:48:E6:8F:80:A5", "rssi": -65,
             "service_data": {"fcd2": "41a47266c95f730011223378237214"}},
            // Not a name this pipeline listens to.
            {"address": "11:22:33:44:55:66", "rssi": -50,
             "service_data": {"fcd2": "40000102ca09"}},
            // An object id whose size is unknown: dead-lettered.
            {"address": "A4:C1:38:00:00:01", "rssi": -60,
             "service_data": {"fcd2": "40f700"}},
        ],
    })
}

/// A pipeline writing what `[sources.racks.ble]` (with `settings`) reads
/// to `out/readings.jsonl`, what it cannot to `dead.jsonl`.
fn pipeline(settings: &str) -> String {
    format!(
        "[pipeline]\nname = \"racks\"\ndead_letter_path = \"dead.jsonl\"\n\
         [checkpoint]\nenabled = false\n\
         [sources.racks.ble]\nadapter = \"hci0\"\n{settings}\
         [sinks.out]\ninputs = [\"racks\"]\n\
         [sinks.out.file]\npath = \"out/readings.jsonl\"\n"
    )
}

const SCAN: &str = r#"name_prefixes = ["ATC", "Ruuvi", "BTH"]
devices = [
  { address = "a4:c1:38:00:00:01", name = "rack-3-top" },
  { address = "54:48:E6:8F:80:A5", name = "rack-4-top", bindkey = "231d39c1d7cc1ab1aee224cd096db932" },
]
"#;

/// Starts the mocked BlueZ with `spec`, then `eddy run` on `pipeline`
/// against it; gives both and the file the mock writes when it is done.
fn start_with_bluez(
    d: &Path,
    spec: &serde_json::Value,
    pipeline: &str,
) -> (Mock, Running, std::path::PathBuf) {
    std::fs::write(d.join("spec.json"), spec.to_string()).unwrap();
    std::fs::write(d.join("p.toml"), pipeline).unwrap();
    let (address_file, done_file) = (d.join("bus-address"), d.join("done"));
    let mock = Mock(
        Command::new("/usr/bin/python3")
            .arg(root().join("tests/peers/bluez_mock.py"))
            .args([d.join("spec.json"), address_file.clone(), done_file.clone()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("bluez.log")).unwrap())
            .spawn()
            .expect("python3 starts (cargo xtask test installs python3-dbusmock)"),
    );
    eventually("the mocked BlueZ came up", || address_file.exists());
    let bus = std::fs::read_to_string(&address_file).unwrap();
    let child = Running(Some(
        eddy()
            .args(["run", "p.toml"])
            .current_dir(d)
            .env("EDDY_STATE_DIR", d.join("state"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.trim())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("eddy.log")).unwrap())
            .spawn()
            .unwrap(),
    ));
    (mock, child, done_file)
}

/// What the two logs say, for a failed assertion.
fn log(d: &Path) -> String {
    format!(
        "eddy: {}\nbluez: {}",
        std::fs::read_to_string(d.join("eddy.log")).unwrap_or_default(),
        std::fs::read_to_string(d.join("bluez.log")).unwrap_or_default()
    )
}

fn close(record: &serde_json::Value, field: &str, expected: f64) {
    let got = record["fields"][field].as_f64();
    assert!(
        got.is_some_and(|g| (g - expected).abs() < 1e-6),
        "{field}: {got:?}, expected {expected}; {record}"
    );
}

#[test]
fn advertisements_flow_from_bluez_into_records_without_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mock, child, done_file) = start_with_bluez(d, &spec(), &pipeline(SCAN));
    eventually("every packet advertised", || done_file.exists());
    eventually("four records and a dead letter", || {
        json_lines(&d.join("out/readings.jsonl")).len() >= 4
            && !json_lines(&d.join("dead.jsonl")).is_empty()
    });
    // Another moment for anything that should not come.
    std::thread::sleep(Duration::from_millis(500));
    let records = json_lines(&d.join("out/readings.jsonl"));
    let of = |key: &str| -> Vec<&serde_json::Value> {
        records.iter().filter(|r| r["key"] == key).collect()
    };
    let rack3 = of("rack-3-top");
    assert_eq!(
        rack3.len(),
        2,
        "the repeat of packet 1 is dropped: {records:?}\n{}",
        log(d)
    );
    close(rack3[0], "temperature_c", 25.06);
    close(rack3[0], "humidity_pct", 50.55);
    assert_eq!(rack3[0]["fields"]["packet"], 1);
    assert_eq!(rack3[0]["fields"]["rssi_dbm"], -60);
    close(rack3[1], "temperature_c", 23.45);
    assert_eq!(rack3[1]["fields"]["packet"], 2);
    let ruuvi = of("C7:2B:00:00:00:02");
    assert_eq!(ruuvi.len(), 1, "{records:?}");
    close(ruuvi[0], "temperature_c", 24.3);
    close(ruuvi[0], "humidity_pct", 53.49);
    close(ruuvi[0], "pressure_hpa", 1000.44);
    close(ruuvi[0], "battery_mv", 2977.0);
    assert_eq!(ruuvi[0]["fields"]["packet"], 205);
    assert_eq!(ruuvi[0]["fields"]["rssi_dbm"], -70);
    let rack4 = of("rack-4-top");
    assert_eq!(rack4.len(), 1, "{records:?}");
    close(rack4[0], "temperature_c", 25.06);
    assert_eq!(rack4[0]["fields"]["packet"], 0x3322_1100_i64);
    assert!(of("11:22:33:44:55:66").is_empty(), "filtered by name");
    assert_eq!(records.len(), 4, "{records:?}");
    let dead = json_lines(&d.join("dead.jsonl"));
    let text = dead[0].to_string();
    assert!(text.contains("40f700") && text.contains("0xF7"), "{text}");
    child.stop(d);
    drop(mock);
}

/// Little-endian bytes as the hex the mock's spec takes.
fn le(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const GATT: &str = r#"devices = [
  { address = "c0:ff:ee:00:00:01", name = "rack-1-ess", gatt = true, read_interval_ms = 1000 },
]
"#;

#[test]
fn environmental_sensing_notifications_flow_over_gatt_and_a_dropped_connection_is_made_again() {
    // The characteristics' raw values (Bluetooth GATT Specification
    // Supplement: temperature sint16 in 0.01 °C, 0x8000 unknown; humidity
    // uint16 in 0.01 %; pressure uint32 in 0.1 Pa), and what they mean.
    let (first_t, first_t_c) = (2450i16, 24.50);
    let (notified_t, notified_t_c) = (-200i16, -2.00);
    let (humidity, humidity_pct) = (5000u16, 50.00);
    let (pressure, pressure_hpa) = (1_013_250u32, 101_325.0 / 100.0);
    let (after_t, after_t_c) = (2100i16, 21.00);
    let spec = serde_json::json!({
        "devices": [["C0:FF:EE:00:00:01", "ESS-1"]],
        "gatt": [{
            "address": "C0:FF:EE:00:00:01",
            "service": "181a",
            "characteristics": [
                {"uuid": "2a6e", "flags": ["read", "notify"], "value": le(&first_t.to_le_bytes())},
                {"uuid": "2a6f", "flags": ["read"], "value": le(&humidity.to_le_bytes())},
                {"uuid": "2a6d", "flags": ["notify"]},
            ],
            "connections": [
                [
                    {"uuid": "2a6e", "value": le(&notified_t.to_le_bytes())},
                    {"uuid": "2a6d", "value": le(&pressure.to_le_bytes())},
                    // The sensor does not know: no record.
                    {"uuid": "2a6e", "value": le(&i16::MIN.to_le_bytes())},
                    // Three bytes are no pressure: a dead letter.
                    {"uuid": "2a6d", "value": "010203"},
                ],
                // After the drop, connected again.
                [{"uuid": "2a6e", "value": le(&after_t.to_le_bytes())}],
            ],
        }],
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mock, child, done_file) = start_with_bluez(d, &spec, &pipeline(GATT));
    let temperatures = || -> Vec<f64> {
        json_lines(&d.join("out/readings.jsonl"))
            .iter()
            .filter_map(|r| r["fields"]["temperature_c"].as_f64())
            .collect()
    };
    eventually("both connections served", || done_file.exists());
    eventually("the temperature notified after the reconnection", || {
        temperatures().len() >= 3
    });
    let records = json_lines(&d.join("out/readings.jsonl"));
    assert!(
        records.iter().all(|r| r["key"] == "rack-1-ess"),
        "{records:?}"
    );
    // Read once on connecting, then notified; the unknown value is left
    // out, and the second connection's first read found it still unknown.
    let got = temperatures();
    let expected = [first_t_c, notified_t_c, after_t_c];
    assert_eq!(got.len(), 3, "{got:?}\n{}", log(d));
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() < 1e-9, "{got:?} against {expected:?}");
    }
    let pressures: Vec<f64> = records
        .iter()
        .filter_map(|r| r["fields"]["pressure_hpa"].as_f64())
        .collect();
    assert_eq!(pressures.len(), 1, "{records:?}");
    assert!((pressures[0] - pressure_hpa).abs() < 1e-9, "{pressures:?}");
    // Humidity cannot notify: read on each connection and every second.
    let humidities: Vec<f64> = records
        .iter()
        .filter_map(|r| r["fields"]["humidity_pct"].as_f64())
        .collect();
    assert!(humidities.len() >= 2, "{records:?}");
    assert!(
        humidities.iter().all(|h| (h - humidity_pct).abs() < 1e-9),
        "{humidities:?}"
    );
    let dead = json_lines(&d.join("dead.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    let text = dead[0].to_string();
    assert!(text.contains("010203") && text.contains("0x2A6D"), "{text}");
    // The drop is a fault of the device in `eddy status`; it is up again.
    let s = status(d);
    let device = &s["sources"][0]["devices"]["rack-1-ess"];
    assert!(device["faults"].as_u64().unwrap_or(0) >= 1, "{s}");
    assert!(
        device["last_fault"]
            .as_str()
            .is_some_and(|f| f.contains("disconnected")),
        "{s}"
    );
    assert_eq!(device["up"], true, "{s}");
    child.stop(d);
    drop(mock);
}

#[test]
fn a_device_that_cannot_work_is_refused_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[pipeline]\nname = \"racks\"\n[sources.racks.ble]\ndevices = [\n";
    let end = "]\n[sinks.out]\ninputs = [\"racks\"]\n[sinks.out.stdout]\n";
    for (device, says) in [
        (
            "  { address = \"C0:FF:EE:00:00:01\", read_interval_ms = 5000 },\n",
            "add `gatt = true`",
        ),
        (
            "  { address = \"C0:FF:EE:00:00:01\", gatt = true, read_interval_ms = 10 },\n",
            "read_interval_ms is from 1000",
        ),
        (
            "  { address = \"C0:FF:EE:00:00:01\", bindkey = \"00\" },\n",
            "bindkey is 32 hex digits",
        ),
    ] {
        std::fs::write(dir.path().join("p.toml"), format!("{base}{device}{end}")).unwrap();
        let out = crate::support::run(&["check", "p.toml"], dir.path());
        let error = crate::support::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{error}");
        // The device is on line 5, from its opening brace at column 3.
        assert!(
            error.contains("p.toml:5:3") && error.contains(says),
            "{error}"
        );
    }
}
