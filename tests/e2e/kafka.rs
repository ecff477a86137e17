//! The `kafka` source and sink against a Kafka cluster: librdkafka's mock
//! cluster (`rdkafka::mocking::MockCluster`), started in this test process
//! and reached by the real `eddy` binary over TCP on 127.0.0.1. It speaks
//! the Kafka protocol (metadata, fetch, idempotent produce, offsets); a real
//! broker is in `cargo xtask test-kafka`, which takes minutes to install.
//!
//! Exactly once: readings produced to three partitions go through the
//! seeds' window job into a local file and back to Kafka through the
//! outbox; eddy is killed with SIGKILL at random moments while it consumes
//! and started again. The file must hold exactly the windows computed here
//! from the readings, and so must an uninterrupted run; the output topic,
//! repeats dropped by result id, too.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::support::{Rng, Running, eventually, plugin, toml_path, try_status as status};

fn log(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("eddy.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn producer(cluster: &MockCluster<'_, impl rdkafka::producer::ProducerContext>) -> BaseProducer {
    producer_to(&cluster.bootstrap_servers())
}

fn producer_to(brokers: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .create()
        .unwrap()
}

/// One reading: `(partition, key, event time, temperature)`.
type Reading = (i32, String, i64, i64);

/// Produces readings, the event time as the message's timestamp.
fn produce(producer: &BaseProducer, topic: &str, readings: &[Reading]) {
    for (partition, key, time, temperature) in readings {
        let payload = serde_json::json!({ "temperature": temperature }).to_string();
        let mut record = BaseRecord::to(topic)
            .partition(*partition)
            .key(key.as_str())
            .payload(&payload)
            .timestamp(*time);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

const START: i64 = 1_767_225_600_000;

/// Readings of `keys` racks over `seconds`, every 100 ms, a rack's readings
/// on partition `rack % 3`, every fifth pair swapped (out of order by
/// 100 ms, well within the bound), then one reading far ahead on each
/// partition so that every window closes.
fn readings(keys: usize, seconds: i64) -> Vec<Reading> {
    let mut out = Vec::new();
    for step in 0..seconds * 10 {
        for rack in 0..keys {
            let time = START + step * 100 + rack as i64;
            let temperature = 20 + (step * 7 + rack as i64 * 13) % 17;
            out.push(((rack % 3) as i32, format!("rack-{rack}"), time, temperature));
        }
    }
    for i in (0..out.len().saturating_sub(keys * 2)).step_by(5 * keys) {
        out.swap(i, i + keys);
    }
    for partition in 0..3 {
        out.push((partition, "end".into(), START + seconds * 1000 + 60_000, 0));
    }
    out
}

/// The window job's results, computed here: per rack and 1 s window, the
/// count, sum, min and max of the temperatures.
fn expected(readings: &[Reading]) -> BTreeMap<(String, i64), (u64, i64, i64, i64)> {
    let mut windows: BTreeMap<(String, i64), (u64, i64, i64, i64)> = BTreeMap::new();
    for (_, key, time, t) in readings.iter().filter(|r| r.1 != "end") {
        let start = time - time.rem_euclid(1000);
        let w = windows
            .entry((key.clone(), start))
            .or_insert((0, 0, i64::MAX, i64::MIN));
        w.0 += 1;
        w.1 += t;
        w.2 = w.2.min(*t);
        w.3 = w.3.max(*t);
    }
    windows
}

type Windows = BTreeMap<(String, i64), (u64, i64, i64, i64)>;

/// Checks `got` against `want`, naming a few of the windows that differ.
fn assert_windows(got: &Windows, want: &Windows, what: &str) {
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    let wrong: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .take(5)
        .map(|(k, v)| (k, v, &got[k]))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && wrong.is_empty(),
        "{what}: {} windows, {} expected; missing e.g. {missing:?}, extra e.g. {extra:?}, \
         different (window, expected, got) e.g. {wrong:?}",
        got.len(),
        want.len()
    );
}

/// Results as the same map, from the file sink's or the topic's JSON.
fn windows(results: &[serde_json::Value]) -> BTreeMap<(String, i64), (u64, i64, i64, i64)> {
    results
        .iter()
        .map(|r| {
            let f = &r["fields"];
            let int = |name: &str| f[name].as_f64().unwrap() as i64;
            (
                (
                    r["key"].as_str().unwrap().to_owned(),
                    f["window_start"].as_i64().unwrap(),
                ),
                (
                    f["count"].as_u64().unwrap(),
                    int("temperature_sum"),
                    int("temperature_min"),
                    int("temperature_max"),
                ),
            )
        })
        .collect()
}

/// The window job: readings from `topic` on `input` (the source table's
/// watermark settings in `timing`), 1 s windows to a local file and to
/// `output` through the outbox (the uplink's settings in `uplink`).
fn job(timing: &str, input: &str, topic: &str, output: &str, uplink: &str) -> String {
    format!(
        r#"
[pipeline]
name = "site"
batch_size = 256
dead_letter_path = "dead.jsonl"
[checkpoint]
interval_ms = 200
[sources.readings]
{timing}
[sources.readings.kafka]
brokers = ["{input}"]
topics = ["{topic}"]
[operators.stats]
inputs = ["readings"]
plugin = {stats}
params = {{ fields = ["temperature"] }}
window.tumbling = {{ size_ms = 1000 }}
[sinks.local]
inputs = ["stats", "stats.late"]
[sinks.local.file]
path = "local.jsonl"
[sinks.uplink]
inputs = ["stats"]
retry_initial_backoff_ms = 100
retry_max_backoff_ms = 500
[sinks.uplink.kafka]
brokers = ["{output}"]
{uplink}
"#,
        stats = toml_path(&plugin("window_stats")),
    )
}

/// Everything on `topic`, read from the start to the end, with the
/// `result_id` header of each.
pub(crate) fn consume_all(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> Vec<(String, serde_json::Value)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        ends.insert(p, high);
    }
    consumer.assign(&list).unwrap();
    let mut at: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Read past the high watermarks until the topic stays quiet for two
    // seconds: a broker's watermark may lag what a fetch returns.
    let mut quiet_since = Instant::now();
    while at.iter().any(|(p, o)| *o < ends[p]) || quiet_since.elapsed() < Duration::from_secs(2) {
        assert!(
            Instant::now() < deadline,
            "the topic was not read to its end"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        quiet_since = Instant::now();
        let message = message.unwrap();
        at.insert(message.partition(), message.offset() + 1);
        let id = message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "result_id"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let json = serde_json::from_slice(message.payload().unwrap()).unwrap();
        out.push((id, json));
    }
    out
}

/// The file sink's results, a line cut by a kill left out.
fn local(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("local.jsonl")).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// How many runs in `dir` have restored (or found nothing to restore).
fn restored(dir: &Path) -> usize {
    let text = std::fs::read_to_string(dir.join("eddy.log")).unwrap_or_default();
    text.matches("restored from checkpoint").count() + text.matches("no checkpoint yet").count()
}

/// Runs the job until the file holds `count` windows and the outbox is
/// empty, then stops it. `runs` is how many had restored before this one.
fn run_to_end(dir: &Path, run: &mut Running, count: usize, runs: usize) {
    // The file holds what the last run wrote until this one has cut it
    // back to its checkpoint.
    eventually(60, || log(dir), || restored(dir) > runs);
    eventually(
        120,
        || {
            format!(
                "{} of {count} windows\n{}\nsources: {}",
                local(dir).len(),
                log(dir),
                status(dir)["sources"]
            )
        },
        || local(dir).len() >= count,
    );
    eventually(
        60,
        || format!("the outbox did not drain\n{}", log(dir)),
        || {
            status(dir)["sinks"]
                .as_array()
                .and_then(|sinks| sinks.iter().find(|s| s["name"] == "uplink"))
                .is_some_and(|s| s["held"].as_u64() == Some(0))
        },
    );
    run.0.take().map(|mut c| {
        // SAFETY: kill(2) with a pid this test started.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        c.wait().unwrap()
    });
}

const KILLS: usize = 6;
/// The most results a delivery batch holds.
const BATCH: usize = 4096;

#[test]
fn kafka_in_and_out_gives_exactly_the_windows_through_sigkills() {
    let cluster = MockCluster::new(1).unwrap();
    for (topic, partitions) in [("readings", 3), ("site.stats", 2), ("whole.stats", 2)] {
        cluster.create_topic(topic, partitions, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    exactly_once_through_sigkills(&brokers, &producer_to(&brokers));
}

/// The same against a real Kafka-protocol broker, `tansu`, installed and
/// run by `cargo xtask test-kafka` (building it takes minutes, so it is not
/// in the default run), which names the binary in `EDDY_TEST_TANSU`.
#[test]
#[ignore = "needs the tansu broker: cargo xtask test-kafka"]
fn against_a_real_broker_kafka_in_and_out_gives_exactly_the_windows_through_sigkills() {
    let tansu = std::env::var("EDDY_TEST_TANSU").expect("EDDY_TEST_TANSU names the tansu binary");
    let port = crate::support::free_port();
    let listener = format!("tcp://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut broker = std::process::Command::new(tansu)
        .args(["broker", "--kafka-listener-url", &listener])
        .args(["--kafka-advertised-listener-url", &listener])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("tansu.log")).unwrap())
        .spawn()
        .expect("tansu starts");
    eventually(
        60,
        || "tansu listens".into(),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    let brokers = format!("127.0.0.1:{port}");
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .unwrap();
    let topics: Vec<rdkafka::admin::NewTopic<'_>> =
        [("readings", 3), ("site.stats", 2), ("whole.stats", 2)]
            .into_iter()
            .map(|(t, p)| {
                rdkafka::admin::NewTopic::new(t, p, rdkafka::admin::TopicReplication::Fixed(1))
            })
            .collect();
    let created = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(admin.create_topics(&topics, &rdkafka::admin::AdminOptions::new()))
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    // tansu 0.6's memory engine answers a fetch only at the first offset
    // of a stored batch (and counts batches as its high watermark), so a
    // restore that seeks into a batch would read nothing: the input goes in
    // one message a batch. eddy's own output is read from the beginning.
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        exactly_once_through_sigkills(&brokers, &producer)
    }));
    let _ = broker.kill();
    let _ = broker.wait();
    if let Err(panic) = result {
        let log = std::fs::read_to_string(dir.path().join("tansu.log")).unwrap_or_default();
        eprintln!("tansu's log:\n{}", &log[log.len().saturating_sub(4000)..]);
        std::panic::resume_unwind(panic);
    }
}

/// Readings through the window job into a file and back to Kafka, once
/// uninterrupted and once killed at spread points; `brokers` has the topics
/// `readings` (3 partitions), `whole.stats` and `site.stats` (2 each).
fn exactly_once_through_sigkills(brokers: &str, producer: &BaseProducer) {
    let brokers = brokers.to_owned();
    let input = readings(9, 1200);
    produce(producer, "readings", &input);
    let expected = expected(&input);

    // Uninterrupted.
    let whole = tempfile::tempdir().unwrap();
    let w = whole.path();
    let timing = "bounded_out_of_orderness_ms = 2000";
    std::fs::write(
        w.join("p.toml"),
        job(
            timing,
            &brokers,
            "readings",
            &brokers,
            r#"topic = "whole.{output}""#,
        ),
    )
    .unwrap();
    let mut running = Running::spawn(w);
    run_to_end(w, &mut running, expected.len(), 0);
    let results = local(w);
    assert_eq!(results.len(), expected.len(), "one result a window");
    assert!(
        results.iter().all(|r| r["output"] == "stats"),
        "nothing late"
    );
    assert_windows(&windows(&results), &expected, "uninterrupted, file");
    let topic = consume_all(&brokers, "whole.stats", 2);
    assert_eq!(topic.len(), expected.len());
    let on_topic: Vec<serde_json::Value> = topic.iter().map(|(_, j)| j.clone()).collect();
    assert_windows(&windows(&on_topic), &expected, "uninterrupted, topic");
    for (id, json) in &topic {
        assert_eq!(
            json["id"].as_str(),
            Some(id.as_str()),
            "the header is the id"
        );
    }

    // Killed at random moments while it consumes, started again each time.
    let crashed = tempfile::tempdir().unwrap();
    let c = crashed.path();
    std::fs::write(
        c.join("p.toml"),
        job(
            timing,
            &brokers,
            "readings",
            &brokers,
            r#"topic = "site.{output}""#,
        ),
    )
    .unwrap();
    // Kill k comes when the file has passed a random point of the k-th
    // stretch of the output: spread over the input, none at the same place.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let stretch = expected.len() / (KILLS + 2);
    let mut progress = Vec::new();
    for k in 0..KILLS {
        let mut running = Running::spawn(c);
        let target = stretch * (k + 1) + rng.below(stretch as u64) as usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        while local(c).len() < target {
            assert!(Instant::now() < deadline, "no progress\n{}", log(c));
            std::thread::sleep(Duration::from_millis(2));
        }
        running.kill();
        progress.push(local(c).len());
    }
    assert!(
        progress.iter().filter(|n| **n < expected.len()).count() >= KILLS / 2,
        "most kills came while the input was being read: {progress:?} of {}",
        expected.len()
    );
    let runs = restored(c);
    let mut running = Running::spawn(c);
    run_to_end(c, &mut running, expected.len(), runs);
    let results = local(c);
    let late = results.iter().filter(|r| r["output"] != "stats").count();
    assert_eq!(late, 0, "records came late after restores\n{}", log(c));
    let ids: HashSet<&str> = results.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids.len(),
        results.len(),
        "no repeat in the file\n{}",
        log(c)
    );
    assert_windows(
        &windows(&results),
        &expected,
        &format!("killed, file\n{}", log(c)),
    );

    let topic = consume_all(&brokers, "site.stats", 2);
    let mut seen = HashSet::new();
    let unique: Vec<serde_json::Value> = topic
        .iter()
        .filter(|(id, _)| seen.insert(id.clone()))
        .map(|(_, j)| j.clone())
        .collect();
    let repeats = topic.len() - unique.len();
    assert!(repeats <= KILLS * BATCH, "{repeats} repeats");
    assert_windows(&windows(&unique), &expected, "killed, topic");
}

/// Readings of one key on one partition, every 100 ms for `seconds`.
fn series(partition: i32, key: &str, seconds: i64) -> Vec<Reading> {
    (0..seconds * 10)
        .map(|i| (partition, key.to_owned(), START + i * 100, 20 + i % 7))
        .collect()
}

/// The windows that fire by watermark `watermark` (a 1 s window fires once
/// the watermark reaches its last millisecond).
fn fired(readings: &[Reading], watermark: i64) -> Windows {
    let mut all = expected(readings);
    all.retain(|(_, start), _| start + 999 <= watermark);
    all
}

#[test]
fn partitions_keep_their_own_watermarks_an_idle_one_holds_none_back_and_the_uplink_rides_out_an_outage()
 {
    // Two clusters: the readings' and the uplink's, which is down at first.
    let input = MockCluster::new(1).unwrap();
    input.create_topic("lines", 2, 1).unwrap();
    let uplink = MockCluster::new(1).unwrap();
    uplink.create_topic("out.stats", 1, 1).unwrap();
    uplink.broker_down(1).unwrap();
    // Partition 0 has half a minute of readings of `a` and partition 1 ten
    // seconds of `b` before eddy starts. Partition 0 is written first: eddy
    // reads much of it before partition 1, whose records a watermark over
    // the whole source would call late.
    let a = series(0, "a", 60);
    let b = series(1, "b", 10);
    let producer = producer(&input);
    produce(&producer, "lines", &a[..300]);
    producer
        .send(
            BaseRecord::<str, str>::to("lines")
                .partition(0)
                .key("a")
                .payload("{not json"),
        )
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    produce(&producer, "lines", &b);

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("p.toml"),
        job(
            "bounded_out_of_orderness_ms = 500\nidle_timeout_ms = 1000",
            &input.bootstrap_servers(),
            "lines",
            &uplink.bootstrap_servers(),
            "topic = \"out.{output}\"\nack_timeout_ms = 2000",
        ),
    )
    .unwrap();
    let running = Running::spawn(d);
    // Both partitions hold the watermark: `b`'s windows fire up to its
    // watermark, and `a`'s as far.
    let held = START + 9_900 - 500 - 1;
    let mut first = fired(&b, held);
    first.extend(fired(&a[..300], held));
    eventually(
        60,
        || format!("{} of {} windows\n{}", local(d).len(), first.len(), log(d)),
        || local(d).len() >= first.len(),
    );
    // Then partition 1 falls silent while `a`'s readings keep coming on
    // partition 0: after a second partition 1 is idle, the watermark is
    // partition 0's alone, and `a`'s windows fire up to its end (and
    // `b`'s last one).
    std::thread::sleep(Duration::from_millis(1500));
    for chunk in a[300..].chunks(30) {
        produce(&producer, "lines", chunk);
        std::thread::sleep(Duration::from_millis(200));
    }
    let watermark = START + 59_900 - 500 - 1;
    let mut want = fired(&b, watermark);
    want.extend(fired(&a, watermark));
    eventually(
        60,
        || format!("{} of {} windows\n{}", local(d).len(), want.len(), log(d)),
        || local(d).len() >= want.len(),
    );
    let results = local(d);
    assert!(
        results.iter().all(|r| r["output"] == "stats"),
        "no record was late: {:?}",
        results.iter().find(|r| r["output"] != "stats")
    );
    assert_windows(&windows(&results), &want, "file");
    // The unreadable payload is dead-lettered with its place.
    let dead = crate::support::json_lines(&d.join("dead.jsonl"));
    let rejected = &dead[0]["rejected"][0];
    assert!(
        rejected["origin"]
            .as_str()
            .unwrap()
            .contains("(topic lines, partition 0, offset 300)"),
        "{dead:?}"
    );
    assert_eq!(rejected["input"], "{not json");

    // The uplink is down: its results wait in the outbox.
    let uplink_status = |d: &Path| {
        crate::support::status(d)["sinks"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "uplink").cloned())
            .unwrap_or_default()
    };
    eventually(
        30,
        || uplink_status(d).to_string(),
        || {
            let s = uplink_status(d);
            s["held"].as_u64() == Some(want.len() as u64) && s["state"] == "retrying"
        },
    );
    uplink.broker_up(1).unwrap();
    eventually(
        60,
        || uplink_status(d).to_string(),
        || uplink_status(d)["held"].as_u64() == Some(0),
    );
    running.stop(d);
    let topic = consume_all(&uplink.bootstrap_servers(), "out.stats", 1);
    let on_topic: Vec<serde_json::Value> = topic.into_iter().map(|(_, j)| j).collect();
    assert_eq!(on_topic.len(), want.len(), "each result once");
    assert_windows(&windows(&on_topic), &want, "topic");
    // In order: one partition, a key's windows by time.
    let starts: Vec<i64> = on_topic
        .iter()
        .filter(|r| r["key"] == "a")
        .map(|r| r["fields"]["window_start"].as_i64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
}

#[test]
fn kafka_settings_that_cannot_work_are_refused_at_their_place() {
    for (table, place, says) in [
        (
            "[sources.r.kafka]\nbrokers = [\"127.0.0.1:9092\"]\ntopics = [\"bad topic\"]\n",
            "p.toml:5:11",
            "is not a Kafka topic",
        ),
        (
            "[sources.r.kafka]\nbrokers = [\"127.0.0.1:9092\"]\ntopics = [\"t\"]\nproperties = { \"enable.auto.commit\" = \"true\" }\n",
            "p.toml:6:14",
            "set by eddy",
        ),
        (
            "[sources.r.kafka]\nbrokers = [\"127.0.0.1\"]\ntopics = [\"t\"]\n",
            "p.toml:4:11",
            "is not `host:port`",
        ),
        (
            "[sources.r.kafka]\nbrokers = [\"127.0.0.1:9092\"]\ntopics = [\"t\"]\nproperties = { \"no.such.thing\" = \"1\" }\n",
            "p.toml:6:14",
            "no.such.thing",
        ),
    ] {
        let text = format!(
            "[pipeline]\nname = \"p\"\n{table}[sinks.o]\ninputs = [\"r\"]\n[sinks.o.stdout]\n"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), &text).unwrap();
        let out = crate::support::run(&["check", "p.toml"], dir.path());
        let err = crate::support::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{text}\n{err}");
        assert!(err.contains(place) && err.contains(says), "{text}\n{err}");
    }
    let sink = "[pipeline]\nname = \"p\"\n[sources.s.sim]\nrooms = [{ name = \"r\" }]\n\
                [sinks.k]\ninputs = [\"s\"]\n[sinks.k.kafka]\nbrokers = [\"127.0.0.1:9092\"]\n\
                topic = \"t.{key}\"\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), sink).unwrap();
    let out = crate::support::run(&["check", "p.toml"], dir.path());
    let err = crate::support::stderr(&out);
    assert!(
        err.contains("p.toml:9:9") && err.contains("message key"),
        "{err}"
    );
}

/// librdkafka's clients in process `pid`: each has one main thread.
fn kafka_clients(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|name| name.trim() == "rdk:main")
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn sinks_to_one_cluster_with_the_same_settings_share_one_producer() {
    let cluster = MockCluster::new(1).unwrap();
    for topic in ["out.a", "out.b", "out.c"] {
        cluster.create_topic(topic, 1, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sink = |name: &str, extra: &str| {
        format!(
            "[sinks.{name}]\ninputs = [\"ups\"]\n[sinks.{name}.kafka]\nbrokers = [\"{brokers}\"]\n\
             topic = \"out.{name}\"\n{extra}\n"
        )
    };
    std::fs::write(
        d.join("p.toml"),
        format!(
            "[pipeline]\nname = \"site\"\nshutdown_timeout_ms = 20000\n[checkpoint]\nenabled = false\n\
             [sources.ups.sim]\ninterval_ms = 100\nduration_ms = 6000\n\
             ups = [{{ name = \"ups-1\", strings = 1, cells_per_string = 4 }}]\n{}{}{}",
            sink("a", ""),
            sink("b", ""),
            sink("c", "linger_ms = 50"),
        ),
    )
    .unwrap();
    let running = Running::spawn(d);
    let pid = running.0.as_ref().unwrap().id();
    let delivered = |name: &str| {
        status(d)["sinks"]
            .as_array()
            .and_then(|sinks| sinks.iter().find(|s| s["name"] == name))
            .and_then(|s| s["written"].as_u64())
    };
    eventually(
        30,
        || format!("every sink delivered\n{}", log(d)),
        || ["a", "b", "c"].iter().all(|n| delivered(n) > Some(0)),
    );
    // `a` and `b` share a producer; `c`, whose settings differ, has its own.
    assert_eq!(kafka_clients(pid), 2, "{}", log(d));
    // The readings end: each topic has them all.
    running.stop(d);
    let a = consume_all(&brokers, "out.a", 1);
    assert!(!a.is_empty());
    assert_eq!(a.len(), consume_all(&brokers, "out.b", 1).len());
    assert_eq!(a.len(), consume_all(&brokers, "out.c", 1).len());
}
