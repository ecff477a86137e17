//! The host's device twin against a real mosquitto and a shadow service
//! written from AWS's Device Shadow documentation
//! (`tests/peers/shadow_service.py`, paho-mqtt). The test acts as the
//! cloud application: it publishes readings and desired-state updates on
//! the broker and reads the shadows the service keeps.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rumqttc::{Client, MqttOptions, QoS};
use serde_json::{Value, json};

use crate::modbus_peer::python;
use crate::mqtt::{Peer, mosquitto, tails};
use crate::support::{
    Running, eventually, free_port, json_lines, plugin, root, run, status, toml_path,
};

const THING: &str = "site-7-gw";

/// The logs of eddy, the broker and the service, for a failure.
fn logs(dir: &Path) -> String {
    tails(dir, &["eddy.log", "mosquitto.log", "shadow_service.log"])
}

/// The shadow service, keeping its shadows in `dir/shadows.json` (and a
/// log of accepted updates in `dir/shadows.json.log`); update documents
/// dropped into `dir/control` reach it without the broker.
pub(crate) fn shadow_service(dir: &Path, port: u16) -> Peer {
    let ready = dir.join("service-ready");
    let _ = std::fs::remove_file(&ready);
    let child = Command::new(python())
        .arg(root().join("tests/peers/shadow_service.py"))
        .arg(port.to_string())
        .arg(dir.join("shadows.json"))
        .arg(&ready)
        .arg(dir.join("control"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("shadow_service.log")).unwrap())
        .spawn()
        .unwrap();
    eventually(
        20,
        || "the shadow service subscribed".into(),
        || ready.exists(),
    );
    Peer(child)
}

/// The shadow of `thing` as the service keeps it (null when there is none).
pub(crate) fn shadow(dir: &Path, thing: &str) -> Value {
    std::fs::read_to_string(dir.join("shadows.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .map(|all| all[thing].clone())
        .unwrap_or_default()
}

/// The cloud application: an MQTT client of its own.
struct Cloud {
    client: Client,
    _events: std::thread::JoinHandle<()>,
}

impl Cloud {
    fn connect(port: u16) -> Cloud {
        let mut options = MqttOptions::new("cloud-app", "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(options, 1024);
        let events = std::thread::spawn(move || {
            for event in connection.iter() {
                if event.is_err() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        });
        Cloud {
            client,
            _events: events,
        }
    }

    fn publish(&self, topic: &str, payload: &Value) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
            .unwrap();
    }

    /// Changes the desired state, as an application does through the service.
    fn desire(&self, desired: Value) {
        self.publish(
            &format!("$aws/things/{THING}/shadow/update"),
            &json!({ "state": { "desired": desired } }),
        );
    }

    /// One reading of `sensor` at `time`.
    fn reading(&self, sensor: &str, time: i64, value: f64) {
        self.publish(
            &format!("readings/{sensor}"),
            &json!({ "time": time, "value": value }),
        );
    }
}

fn pipeline(port: u16) -> String {
    format!(
        r#"
[pipeline]
name = "site"
dead_letter_path = "dead.jsonl"
[sources.readings]
[sources.readings.mqtt]
topics = ["readings/+"]
topic_parsing = "readings/+sensor"
key_levels = ["sensor"]
time_field = "time"
broker = {{ url = "mqtt://127.0.0.1:{port}", client_id = "site-7-readings" }}
[operators.alerts]
inputs = ["readings"]
plugin = {alert}
params = {{ field = "value", threshold = 60.0 }}
[operators.alerts.grants]
state = ["alert", "breach"]
side_outputs = ["cleared"]
timers = true
twin = true
[sinks.seen]
inputs = ["readings"]
[sinks.seen.file]
path = "seen.jsonl"
[sinks.alerts]
inputs = ["alerts", "alerts.cleared"]
[sinks.alerts.file]
path = "alerts.jsonl"
[twin]
thing = "{THING}"
report_interval_ms = 500
broker = {{ url = "mqtt://127.0.0.1:{port}", client_id = "{THING}" }}
"#,
        alert = toml_path(&plugin("threshold_alert")),
    )
}

/// Alerts by state (`raised` / `cleared`), then key: the threshold each
/// was judged by.
fn alerts(dir: &Path) -> BTreeMap<(String, String), Vec<f64>> {
    let mut out: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for a in json_lines(&dir.join("alerts.jsonl")) {
        let state = a["fields"]["state"].as_str().unwrap_or_default().to_owned();
        let key = a["key"].as_str().unwrap_or_default().to_owned();
        out.entry((state, key))
            .or_default()
            .push(a["fields"]["threshold"].as_f64().unwrap_or(f64::NAN));
    }
    out
}

const SENSORS: [&str; 3] = ["s1", "s2", "s3"];
const START: i64 = 1_767_225_600_000;

/// Five readings of each sensor at `value`, from `from` ms on; waits until
/// eddy has seen them all (`seen` readings in all).
fn readings(cloud: &Cloud, dir: &Path, from: i64, value: f64, seen: usize) {
    for i in 0..5 {
        for sensor in SENSORS {
            cloud.reading(sensor, START + from + i * 100, value);
        }
    }
    eventually(
        30,
        || format!("eddy saw {seen} readings\n{}", logs(dir)),
        || json_lines(&dir.join("seen.jsonl")).len() >= seen,
    );
    // The operator runs in the same step as the sink that saw them.
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn a_threshold_set_in_the_cloud_changes_the_alerts_of_the_running_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let _broker = mosquitto(d, port);
    let _service = shadow_service(d, port);
    std::fs::write(d.join("p.toml"), pipeline(port)).unwrap();
    let mut eddy = Running::spawn(d);
    let cloud = Cloud::connect(port);

    // The host reports itself: version, pipeline, its operators' plugins.
    eventually(
        30,
        || {
            format!(
                "the host reported itself: {}\n{}",
                shadow(d, THING),
                logs(d)
            )
        },
        || {
            shadow(d, THING)["state"]["reported"]["operators"]["alerts"]["plugin"]
                == "threshold-alert"
        },
    );
    let reported = &shadow(d, THING)["state"]["reported"];
    assert_eq!(reported["eddy"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(reported["eddy"]["pipeline"], "site");
    // The source connects after the twin: wait until it is up.
    eventually(
        30,
        || format!("the readings source is up\n{}", logs(d)),
        || status(d)["sources"][0]["state"] == "up",
    );

    // 50 is below the file's threshold of 60: no alert.
    readings(&cloud, d, 0, 50.0, 15);
    assert!(alerts(d).is_empty(), "{:?}", alerts(d));

    // The cloud lowers the threshold: the running plugin takes it, and the
    // host reports it back, so the delta is gone.
    cloud.desire(json!({ "params": { "alerts": { "threshold": 45.0 } } }));
    eventually(
        30,
        || {
            format!(
                "the new threshold was reported: {}\n{}",
                shadow(d, THING),
                logs(d)
            )
        },
        || shadow(d, THING)["state"]["reported"]["params"]["alerts"]["threshold"] == 45.0,
    );
    readings(&cloud, d, 1000, 50.0, 30);
    let raised = alerts(d);
    let want: BTreeMap<(String, String), Vec<f64>> = SENSORS
        .iter()
        .map(|s| (("raised".to_owned(), s.to_string()), vec![45.0]))
        .collect();
    assert_eq!(raised, want, "each sensor raised once, judged by 45");

    // Params the plugin refuses (it would clear above where it raises):
    // reported as rejected with the plugin's reason; the old ones stay.
    cloud.desire(json!({ "params": { "alerts": { "threshold": 10.0, "clear_below": 100.0 } } }));
    eventually(
        30,
        || {
            format!(
                "the refusal was reported: {}\n{}",
                shadow(d, THING),
                logs(d)
            )
        },
        || {
            shadow(d, THING)["state"]["reported"]["rejected"]["params"]["alerts"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("clear_below"))
        },
    );
    let doc = shadow(d, THING);
    assert_eq!(
        doc["state"]["reported"]["params"]["alerts"]["threshold"],
        45.0
    );
    // 30 is below 45 (the params in force): each alert clears. With the
    // refused params (threshold 10) it would have been a breach.
    readings(&cloud, d, 2000, 30.0, 45);
    let after = alerts(d);
    for sensor in SENSORS {
        assert_eq!(
            after.get(&("cleared".to_owned(), sensor.to_owned())),
            Some(&vec![45.0]),
            "{sensor} cleared by the threshold in force: {after:?}"
        );
    }

    // The cloud takes its override away: the pipeline file's threshold (60)
    // is in force again, and nothing is reported as set from the twin.
    cloud.desire(json!({ "params": { "alerts": null } }));
    eventually(
        30,
        || {
            format!(
                "the override was taken back: {}\n{}",
                shadow(d, THING),
                logs(d)
            )
        },
        || {
            let reported = &shadow(d, THING)["state"]["reported"];
            reported.get("params").is_none() && reported.get("rejected").is_none()
        },
    );
    // 50 is above 45 but below 60: no alert is raised.
    readings(&cloud, d, 3000, 50.0, 60);
    assert_eq!(alerts(d), after, "no alert by the file's threshold");

    // No restart, no record lost: every reading seen once, in one process.
    let seen = json_lines(&d.join("seen.jsonl"));
    assert_eq!(seen.len(), 60);
    let alerts_op = status(d)["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "alerts")
        .cloned()
        .unwrap();
    assert_eq!(alerts_op["restarts"], 0, "{alerts_op}");
    assert_eq!(alerts_op["records_in"], 60, "{alerts_op}");
    assert!(
        eddy.0.as_mut().unwrap().try_wait().unwrap().is_none(),
        "eddy still runs"
    );
    eddy.stop(d);
}

/// A meter read over Modbus TCP from pymodbus, its latest values on its
/// device twin, its setpoint written from the twin's desired state.
fn meter_pipeline(broker: u16, modbus: u16) -> String {
    format!(
        r#"
[pipeline]
name = "site"
[sources.room]
[sources.room.modbus]
tcp = "127.0.0.1:{modbus}"
timeout_ms = 500
[[sources.room.modbus.devices]]
name = "meter"
unit = 1
poll_interval_ms = 200
profile = "meter.yaml"
[sinks.twins]
inputs = ["room"]
[sinks.twins.twin]
fields = ["setpoint", "current"]
min_interval_ms = 300
[twin]
thing = "{THING}"
device_prefix = "site-7-"
report_interval_ms = 300
broker = {{ url = "mqtt://127.0.0.1:{broker}", client_id = "{THING}" }}
"#
    )
}

/// A pymodbus meter on a free port, its EdgeX profile in `dir/meter.yaml`;
/// with the port and the spec of its writable `setpoint`.
fn meter(dir: &Path) -> (crate::modbus_peer::ModbusServer, u16, Value) {
    use crate::modbus_peer::{ModbusServer, On, edgex_profile};
    let port = free_port();
    let server = ModbusServer::start(dir, On::Tcp(port));
    std::fs::write(dir.join("meter.yaml"), edgex_profile(&server.spec)).unwrap();
    let setpoint = server.spec["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "setpoint")
        .unwrap()
        .clone();
    (server, port, setpoint)
}

/// Holding register `address` of unit 1, written first with `write` if
/// given, then read, by the test's own Modbus client.
fn holding(port: u16, address: u16, write: Option<u16>) -> u16 {
    use tokio_modbus::client::{Reader, Writer};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let at = format!("127.0.0.1:{port}").parse().unwrap();
        let mut link = tokio_modbus::client::tcp::connect_slave(at, tokio_modbus::Slave(1))
            .await
            .unwrap();
        if let Some(value) = write {
            link.write_single_register(address, value)
                .await
                .unwrap()
                .unwrap();
        }
        link.read_holding_registers(address, 1)
            .await
            .unwrap()
            .unwrap()[0]
    })
}

#[test]
fn a_setpoint_desired_in_the_cloud_is_written_to_the_device_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let (_server, modbus_port, setpoint) = meter(d);
    let address = setpoint["startingAddress"].as_u64().unwrap() as u16;
    let scale = setpoint["scale"].as_f64().unwrap();
    let _broker = mosquitto(d, port);
    let _service = shadow_service(d, port);
    std::fs::write(d.join("p.toml"), meter_pipeline(port, modbus_port)).unwrap();
    let eddy = Running::spawn(d);
    let cloud = Cloud::connect(port);
    let meter = "site-7-meter";

    // The device's twin: its connection and its latest values.
    eventually(
        30,
        || format!("the meter's twin: {}\n{}", shadow(d, meter), logs(d)),
        || {
            let reported = &shadow(d, meter)["state"]["reported"];
            reported["connection"]["up"] == true
                && reported["room"]["setpoint"]
                    .as_f64()
                    .zip(setpoint["expected"].as_f64())
                    .is_some_and(|(got, want)| (got - want).abs() < 1e-9)
        },
    );
    let reported = &shadow(d, meter)["state"]["reported"];
    assert_eq!(reported["connection"]["source"], "room");
    assert!(reported["last_seen"].as_i64().is_some(), "{reported}");

    // The cloud wants 23.4: the register holds 23.4 / 0.1, the device's
    // read-back is reported under points, and the polled value follows.
    cloud.publish(
        &format!("$aws/things/{meter}/shadow/update"),
        &json!({ "state": { "desired": { "points": { "setpoint": 23.4 } } } }),
    );
    eventually(
        30,
        || {
            format!(
                "the setpoint was reported: {}\n{}",
                shadow(d, meter),
                logs(d)
            )
        },
        || shadow(d, meter)["state"]["reported"]["points"]["setpoint"] == 23.4,
    );
    assert_eq!(
        holding(modbus_port, address, None),
        (23.4 / scale).round() as u16,
        "the server holds the setpoint"
    );
    eventually(
        30,
        || format!("the polled setpoint: {}", shadow(d, meter)),
        || shadow(d, meter)["state"]["reported"]["room"]["setpoint"] == 23.4,
    );

    // A value the point cannot hold (Int16 at 0.1: at most 3276.7) is
    // refused with the reason and not retried; the register keeps 23.4.
    cloud.publish(
        &format!("$aws/things/{meter}/shadow/update"),
        &json!({ "state": { "desired": { "points": { "setpoint": 4000.0 } } } }),
    );
    eventually(
        30,
        || {
            format!(
                "the refusal was reported: {}\n{}",
                shadow(d, meter),
                logs(d)
            )
        },
        || {
            let rejected = &shadow(d, meter)["state"]["reported"]["rejected"]["points"]["setpoint"];
            rejected["value"] == 4000.0 && rejected["retrying"] == false
        },
    );
    let rejected = shadow(d, meter)["state"]["reported"]["rejected"]["points"]["setpoint"].clone();
    assert!(
        rejected["reason"].as_str().unwrap().contains("outside"),
        "{rejected}"
    );
    assert_eq!(holding(modbus_port, address, None), 234);
    assert_eq!(
        shadow(d, meter)["state"]["reported"]["points"]["setpoint"],
        23.4
    );
    eddy.stop(d);
}

/// `eddy twin get THING --json` against the running eddy in `dir`.
fn local_twin(dir: &Path, thing: &str) -> Value {
    let output = run(&["twin", "get", thing, "--json"], dir);
    serde_json::from_slice(&output.stdout).unwrap_or_default()
}

/// Accepted updates of `thing` in the service's log.
fn accepted(dir: &Path, thing: &str) -> Vec<Value> {
    json_lines(&dir.join("shadows.json.log"))
        .into_iter()
        .filter(|u| u["thing"] == thing)
        .collect()
}

#[test]
fn both_sides_change_during_an_outage_and_converge_after_it_with_eddy_killed_meanwhile() {
    use crate::modbus_peer::{ModbusServer, On};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("control")).unwrap();
    let port = free_port();
    let (server, modbus_port, setpoint) = meter(d);
    let address = setpoint["startingAddress"].as_u64().unwrap() as u16;
    let broker = mosquitto(d, port);
    let _service = shadow_service(d, port);
    std::fs::write(d.join("p.toml"), meter_pipeline(port, modbus_port)).unwrap();
    let mut eddy = Running::spawn(d);
    let meter = "site-7-meter";
    eventually(
        30,
        || format!("the meter's twin: {}\n{}", shadow(d, meter), logs(d)),
        || shadow(d, meter)["state"]["reported"]["connection"]["up"] == true,
    );

    // The link goes down.
    broker.stop();
    // The cloud wants another setpoint meanwhile (through its HTTP API).
    std::fs::write(
        d.join("control").join(format!("{meter}.json")),
        json!({ "state": { "desired": { "points": { "setpoint": 25.5 } } } }).to_string(),
    )
    .unwrap();
    eventually(
        10,
        || format!("the cloud took the desired change: {}", shadow(d, meter)),
        || shadow(d, meter)["state"]["desired"]["points"]["setpoint"] == 25.5,
    );
    // The device changes on site: eddy reads 30.0 and keeps it to report.
    holding(modbus_port, address, Some(300));
    eventually(
        30,
        || format!("eddy keeps the reading to report: {}", local_twin(d, meter)),
        || local_twin(d, meter)["pending_reported"]["room"]["setpoint"] == 30.0,
    );
    assert_eq!(local_twin(d, meter)["synced"], false, "offline");
    // eddy is killed, and the meter goes away: the 30.0 can only come from
    // what eddy kept.
    eddy.kill();
    drop(server);
    let eddy = Running::spawn(d);
    eventually(
        30,
        || {
            format!(
                "the restarted eddy kept the change: {}\n{}",
                local_twin(d, meter),
                logs(d)
            )
        },
        || local_twin(d, meter)["pending_reported"]["room"]["setpoint"] == 30.0,
    );

    // The link comes back.
    let _broker = mosquitto(d, port);
    eventually(
        60,
        || {
            format!(
                "the kept change reached the cloud: {:?}\n{}",
                accepted(d, meter),
                logs(d)
            )
        },
        || {
            accepted(d, meter)
                .iter()
                .any(|u| u["state"]["reported"]["room"]["setpoint"] == 30.0)
        },
    );
    // The desired setpoint cannot be written while the meter is away:
    // reported as retrying, then written once it is back.
    eventually(
        60,
        || {
            format!(
                "the failed write was reported: {}\n{}",
                shadow(d, meter),
                logs(d)
            )
        },
        || {
            shadow(d, meter)["state"]["reported"]["rejected"]["points"]["setpoint"]["retrying"]
                == true
        },
    );
    let server = ModbusServer::start(d, On::Tcp(modbus_port));
    eventually(
        60,
        || {
            format!(
                "the setpoint was written after the outage: {}\n{}",
                shadow(d, meter),
                logs(d)
            )
        },
        || shadow(d, meter)["state"]["reported"]["points"]["setpoint"] == 25.5,
    );
    assert_eq!(holding(modbus_port, address, None), 255);
    // Both sides hold the same document.
    eventually(
        30,
        || {
            format!(
                "converged: cloud {} local {}",
                shadow(d, meter),
                local_twin(d, meter)
            )
        },
        || {
            let cloud = shadow(d, meter);
            let local = local_twin(d, meter);
            local["synced"] == true
                && local["version"] == cloud["version"]
                && local["pending_reported"] == json!({})
                && local["reported"]["points"] == cloud["state"]["reported"]["points"]
                && cloud["state"]["desired"]["points"] == cloud["state"]["reported"]["points"]
        },
    );
    drop(server);
    eddy.stop(d);
}

#[test]
fn a_device_twin_too_large_for_one_shadow_moves_a_section_to_a_named_shadow() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let _broker = mosquitto(d, port);
    let _service = shadow_service(d, port);
    let source = |name: &str| {
        format!(
            r#"
[sources.{name}]
[sources.{name}.mqtt]
topics = ["{name}/+"]
topic_parsing = "{name}/+sensor"
key_levels = ["sensor"]
time_field = "time"
broker = {{ url = "mqtt://127.0.0.1:{port}", client_id = "site-7-{name}" }}
"#
        )
    };
    std::fs::write(
        d.join("p.toml"),
        format!(
            r#"
[pipeline]
name = "site"
{one}
{two}
[sinks.twins]
inputs = ["one", "two"]
[sinks.twins.twin]
min_interval_ms = 200
[twin]
thing = "{THING}"
device_prefix = "site-7-"
broker = {{ url = "mqtt://127.0.0.1:{port}", client_id = "{THING}" }}
"#,
            one = source("one"),
            two = source("two"),
        ),
    )
    .unwrap();
    let eddy = Running::spawn(d);
    let cloud = Cloud::connect(port);
    eventually(
        30,
        || format!("eddy serves its API\n{}", logs(d)),
        || d.join("state/api.json").exists(),
    );
    eventually(
        30,
        || format!("the sources are up\n{}", logs(d)),
        || {
            status(d)["sources"]
                .as_array()
                .is_some_and(|s| s.len() == 2 && s.iter().all(|s| s["state"] == "up"))
        },
    );
    // 5000 characters from each source: 10 KB, more than one shadow holds
    // (8 KB); either section alone fits.
    let long = |c: &str| c.repeat(5000);
    cloud.publish("one/dev1", &json!({ "time": START, "text": long("a") }));
    cloud.publish("two/dev1", &json!({ "time": START, "text": long("b") }));
    let named = "site-7-dev1/one";
    eventually(
        30,
        || format!("the twin split: {:?}\n{}", shadow(d, named), logs(d)),
        || {
            shadow(d, named)["state"]["reported"]["one"]["text"] == long("a")
                && shadow(d, "site-7-dev1")["state"]["reported"]["two"]["text"] == long("b")
        },
    );
    let classic = &shadow(d, "site-7-dev1")["state"]["reported"];
    assert!(classic.get("one").is_none(), "moved out: {classic}");
    let doc_size = serde_json::to_vec(classic).unwrap().len();
    assert!(doc_size <= 8192, "{doc_size} bytes");
    // The section's later values go to its named shadow.
    cloud.publish(
        "one/dev1",
        &json!({ "time": START + 1000, "text": long("c") }),
    );
    eventually(
        30,
        || {
            format!(
                "the named shadow took the new value: {:?}",
                shadow(d, named)
            )
        },
        || shadow(d, named)["state"]["reported"]["one"]["text"] == long("c"),
    );
    assert!(
        shadow(d, "site-7-dev1")["state"]["reported"]
            .get("one")
            .is_none()
    );
    eddy.stop(d);
}
