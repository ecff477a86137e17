//! The `ble` source through btleplug against BlueZ mocked on a private
//! D-Bus system bus (python-dbusmock's bluez5 template, started by
//! `tests/peers/bluez_mock.py`): no Bluetooth radio can run here, so BlueZ
//! is the mock and everything from D-Bus on is real. Advertisements flow
//! as BlueZ reports them (property changes of ServiceData,
//! ManufacturerData and RSSI) into records.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Running, eddy, json_lines, root};

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

const PIPELINE: &str = r#"[pipeline]
name = "racks"
dead_letter_path = "dead.jsonl"
[checkpoint]
enabled = false
[sources.racks.ble]
adapter = "hci0"
name_prefixes = ["ATC", "Ruuvi", "BTH"]
devices = [
  { address = "a4:c1:38:00:00:01", name = "rack-3-top" },
  { address = "54:48:E6:8F:80:A5", name = "rack-4-top", bindkey = "231d39c1d7cc1ab1aee224cd096db932" },
]
[sinks.out]
inputs = ["racks"]
[sinks.out.file]
path = "out/readings.jsonl"
"#;

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
    std::fs::write(d.join("spec.json"), spec().to_string()).unwrap();
    std::fs::write(d.join("p.toml"), PIPELINE).unwrap();
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
    let log = |d: &Path| {
        format!(
            "eddy: {}\nbluez: {}",
            std::fs::read_to_string(d.join("eddy.log")).unwrap_or_default(),
            std::fs::read_to_string(d.join("bluez.log")).unwrap_or_default()
        )
    };
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
