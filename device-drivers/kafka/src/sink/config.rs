//! What a pipeline writes in a `[sinks.NAME.kafka]` table.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy_driver::{Context, Invalid, Kind, Spanned};
use eddy_sink::{OpenedSink, SinkConfig, SinkError, TopicTemplate};
use serde::Deserialize;

use super::task::KafkaSinkTask;
use crate::client::{Cluster, KafkaSasl, KafkaTls};

/// Results produced to Kafka as JSON (the result id, output, key, time and
/// fields), with the result id also in the header `result_id` and the node
/// output in `output`. An idempotent producer with `acks=all`: a result
/// leaves the host's durable outbox (the sink table's `outbox = { … }`) once
/// every in-sync replica has it, in order within a partition, so an outage
/// or a crash loses none; a crash may send again the batch in flight, which
/// consumers drop by id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, `host:port` each.
    pub brokers: Spanned<Vec<String>>,
    /// The client id the brokers see (default `eddy-PIPELINE-NAME`).
    pub client_id: Option<String>,
    /// More librdkafka properties, passed as they are: TLS, SASL,
    /// `batch.size`, … Those the guarantees rest on (`acks`,
    /// `enable.idempotence`, `max.in.flight.requests.per.connection`,
    /// `message.timeout.ms`, `compression.type`, `linger.ms`) are refused:
    /// use the sink's own settings.
    #[serde(default = "crate::client::no_properties")]
    pub properties: Spanned<BTreeMap<String, String>>,
    /// TLS to the brokers: `{ ca_file, cert_file, key_file,
    /// verify_hostname }` (librdkafka with OpenSSL, built in).
    pub tls: Option<Spanned<KafkaTls>>,
    /// SASL login: `{ mechanism, username, password_file }`; with `tls`,
    /// SASL over TLS, as cloud Kafka services ask.
    pub sasl: Option<Spanned<KafkaSasl>>,
    /// The topic of each result: a template with `{output}` and
    /// `{pipeline}`, e.g. `"site-7.{output}"`.
    pub topic: Spanned<String>,
    /// The message key: `record` (default: the record's key, so a key's
    /// results share a partition, in order), `result_id`, or `none`.
    #[serde(default)]
    pub key: MessageKey,
    /// `none`, `gzip`, `snappy`, `lz4` (default: cheap on a gateway's CPU,
    /// and the uplink is often thin) or `zstd`.
    #[serde(default)]
    pub compression: Compression,
    /// How long results may wait to fill a request, in ms (default 5).
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// How long a result may wait for its acknowledgement, in ms, before
    /// the cluster counts as unreachable and the batch is tried again
    /// later (default 30000).
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
}

/// What a message's key is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKey {
    /// The record's key: Kafka's partitioner (murmur2, as Java clients)
    /// sends a key's results to one partition.
    #[default]
    Record,
    /// The result id.
    ResultId,
    /// No key: results spread over partitions.
    None,
}

/// Compression codecs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// None.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    #[default]
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

fn default_linger_ms() -> u64 {
    5
}

fn default_ack_timeout_ms() -> u64 {
    30_000
}

impl Kind for KafkaSinkConfig {
    const NAME: &'static str = "kafka";
    const ABOUT: &'static str = "results produced to Kafka from a durable outbox: idempotent, acks=all, in order per key, compressed";
}

/// Properties the sink sets itself.
const RESERVED: &[&str] = &[
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "compression.type",
    "compression.codec",
    "linger.ms",
    "queue.buffering.max.ms",
    "partitioner",
    "transactional.id",
];

impl KafkaSinkConfig {
    fn task(&self, cx: &Context<'_>) -> Result<KafkaSinkTask, Invalid> {
        let cluster = Cluster {
            brokers: &self.brokers,
            client_id: self.client_id.as_deref(),
            properties: &self.properties,
            tls: self.tls.as_ref(),
            sasl: self.sasl.as_ref(),
            base_dir: cx.base_dir,
        };
        cluster.check(RESERVED)?;
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let topic = TopicTemplate::parse(self.topic.get_ref(), legal)
            .map_err(|e| Invalid::at(&self.topic, e))?;
        if topic.uses_key() {
            return Err(Invalid::at(
                &self.topic,
                "a Kafka topic is made from {output} and {pipeline}; keys go in the message key",
            ));
        }
        if !self.topic.get_ref().contains('{') {
            crate::source::check_topic(self.topic.get_ref())
                .map_err(|e| Invalid::at(&self.topic, e))?;
        }
        let ack_timeout = Duration::from_millis(self.ack_timeout_ms.max(1));
        let mut config = cluster.client_config(cx.pipeline, cx.name)?;
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("compression.type", self.compression.name())
            .set("linger.ms", self.linger_ms.to_string())
            .set("message.timeout.ms", ack_timeout.as_millis().to_string())
            // The partitioner of Java clients: a key lands where Kafka
            // Streams or a Java producer would put it.
            .set("partitioner", "murmur2_random");
        config
            .create_native_config()
            .map_err(|e| Invalid::at(&self.properties, e.to_string()))?;
        Ok(KafkaSinkTask::new(
            config,
            cluster.peer(),
            topic,
            cx.pipeline.to_owned(),
            self.key,
            ack_timeout,
        ))
    }
}

impl SinkConfig for KafkaSinkConfig {
    fn validate(&self, cx: &Context<'_>) -> Result<(), Invalid> {
        self.task(cx).map(drop)
    }

    fn open(&self, cx: &Context<'_>) -> Result<OpenedSink, SinkError> {
        let task = self.task(cx).map_err(|e| SinkError::Config(e.message))?;
        Ok(OpenedSink::Outbox(Box::new(task)))
    }
}
