//! What a pipeline writes in a `[sources.NAME.kafka]` table.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy_codec::{CsvOptions, Decoding, Format, TimeFormat};
use eddy_driver::{Context, DriverError, Invalid, Kind, Source, SourceConfig, Spanned};
use serde::Deserialize;

use super::task::KafkaSourceTask;
use crate::client::{Cluster, KafkaSasl, KafkaTls};

/// Records from Kafka topics, as Flink's Kafka source reads them: every
/// partition of the topics is assigned to this source (no consumer-group
/// rebalancing), its offsets are part of eddy's checkpoints and sought on
/// restore, so a crash gives the results of a run without one; the group's
/// committed offsets follow checkpoints, for monitoring only. Each partition
/// keeps its own watermark (the source table's `bounded_out_of_orderness_ms`),
/// the source's is their minimum, and a partition without messages for the
/// source table's `idle_timeout_ms` does not hold it back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap brokers, `host:port` each.
    pub brokers: Spanned<Vec<String>>,
    /// The client id the brokers see (default `eddy-PIPELINE-NAME`).
    pub client_id: Option<String>,
    /// More librdkafka properties, passed as they are: TLS
    /// (`security.protocol`, `ssl.ca.location`), SASL, timeouts. Those the
    /// source sets itself (`group.id`, `enable.auto.commit`,
    /// `enable.auto.offset.store`, `enable.partition.eof`,
    /// `isolation.level`) are refused: use `group_id`.
    #[serde(default = "crate::client::no_properties")]
    pub properties: Spanned<BTreeMap<String, String>>,
    /// TLS to the brokers: `{ ca_file, cert_file, key_file,
    /// verify_hostname }` (librdkafka with OpenSSL, built in).
    pub tls: Option<Spanned<KafkaTls>>,
    /// SASL login: `{ mechanism, username, password_file }`; with `tls`,
    /// SASL over TLS, as cloud Kafka services ask.
    pub sasl: Option<Spanned<KafkaSasl>>,
    /// Topics to read, all their partitions.
    pub topics: Vec<Spanned<String>>,
    /// The consumer group offsets are committed to after each checkpoint,
    /// for lag monitoring (default `eddy.PIPELINE.NAME`); eddy reads from
    /// its checkpoints, not from these.
    pub group_id: Option<String>,
    /// Where to start a partition no checkpoint knows: `earliest` (default),
    /// `latest`, or `committed` (the group's offset, else the earliest).
    #[serde(default)]
    pub start: Start,
    /// How often to look for new partitions, in ms (default 60000; 0 never).
    #[serde(default = "default_discovery_ms")]
    pub partition_discovery_ms: u64,
    /// `json` (default), `csv` or `raw`.
    #[serde(default = "default_format")]
    pub format: Format,
    /// The payload member or column holding the key; without it, the
    /// message key, else the topic.
    #[serde(default = "eddy_codec::default_key_field")]
    pub key_field: String,
    /// The member or column holding the event time; empty (default) for
    /// the message's timestamp.
    #[serde(default)]
    pub time_field: String,
    /// How times are written: `unix_ms`, `unix_s`, `unix_us`, `unix_ns` or `rfc3339`.
    #[serde(default)]
    pub time_format: TimeFormat,
    /// CSV options: `delimiter`, `columns`, `comment`.
    pub csv: Option<Spanned<CsvOptions>>,
    /// JSON: fields picked by JSON Pointer, e.g. `{ temperature_c =
    /// "/env/temp" }`; the record's fields are then these alone.
    /// `key_field` and `time_field` starting with `/` are pointers too.
    #[serde(default)]
    pub json_fields: BTreeMap<String, String>,
}

/// Where a partition no checkpoint knows is read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// Its first message still kept.
    #[default]
    Earliest,
    /// What comes after eddy starts.
    Latest,
    /// The consumer group's committed offset, else the earliest.
    Committed,
}

fn default_discovery_ms() -> u64 {
    60_000
}

fn default_format() -> Format {
    Format::Json
}

impl Kind for KafkaSourceConfig {
    const NAME: &'static str = "kafka";
    const ABOUT: &'static str = "Kafka topics as records: offsets in eddy's checkpoints (exactly-once), watermarks per partition, JSON, CSV or raw";
}

/// Properties the source sets itself.
const RESERVED: &[&str] = &[
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "isolation.level",
];

/// Kafka's rule for topic names.
pub(crate) fn check_topic(topic: &str) -> Result<(), String> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.is_empty()
        || topic.len() > 249
        || !topic.chars().all(legal)
        || topic == "."
        || topic == ".."
    {
        return Err(format!(
            "`{topic}` is not a Kafka topic (1 to 249 of a-z A-Z 0-9 . _ -)"
        ));
    }
    Ok(())
}

impl KafkaSourceConfig {
    fn decoding(&self) -> Decoding {
        Decoding::with(
            self.format,
            &self.key_field,
            &self.time_field,
            self.time_format,
            self.csv.as_ref().map(|c| c.get_ref()),
        )
        .picking(&self.json_fields)
    }

    fn cluster<'a>(&'a self, base_dir: &'a std::path::Path) -> Cluster<'a> {
        Cluster {
            brokers: &self.brokers,
            client_id: self.client_id.as_deref(),
            properties: &self.properties,
            tls: self.tls.as_ref(),
            sasl: self.sasl.as_ref(),
            base_dir,
        }
    }

    fn task(&self, cx: &Context<'_>) -> Result<KafkaSourceTask, Invalid> {
        let cluster = self.cluster(cx.base_dir);
        cluster.check(RESERVED)?;
        if self.topics.is_empty() {
            return Err(Invalid::new("topics names at least one topic"));
        }
        for topic in &self.topics {
            check_topic(topic.get_ref()).map_err(|e| Invalid::at(topic, e))?;
        }
        let decoding = self.decoding();
        decoding.validate().map_err(Invalid::new)?;
        let mut config = cluster.client_config(cx.pipeline, cx.name)?;
        config
            .set(
                "group.id",
                self.group_id
                    .clone()
                    .unwrap_or_else(|| format!("eddy.{}.{}", cx.pipeline, cx.name)),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            // Only what producers committed: a transaction aborted upstream
            // is no input.
            .set("isolation.level", "read_committed")
            // An offset a checkpoint holds but the broker deleted since
            // (retention) reads from the earliest kept.
            .set("auto.offset.reset", "earliest");
        config
            .create_native_config()
            .map_err(|e| Invalid::at(&self.properties, e.to_string()))?;
        Ok(KafkaSourceTask::new(
            config,
            cluster.peer(),
            self.topics.iter().map(|t| t.get_ref().clone()).collect(),
            self.start,
            (self.partition_discovery_ms > 0)
                .then(|| Duration::from_millis(self.partition_discovery_ms)),
            cx.watermarks,
            decoding,
            cx.name.to_owned(),
        ))
    }
}

impl SourceConfig for KafkaSourceConfig {
    fn validate(&self, cx: &Context<'_>) -> Result<(), Invalid> {
        self.task(cx).map(drop)
    }

    fn open(&self, cx: &Context<'_>) -> Result<Source, DriverError> {
        let task = self.task(cx).map_err(|e| DriverError::Config(e.message))?;
        Ok(Source::Task(Box::new(task)))
    }

    fn rewindable(&self) -> bool {
        true
    }
}
