//! What a pipeline writes in a `[sinks.NAME.mqtt]` table.

use std::time::Duration;

use eddy_driver::{Context, Invalid, Kind, Spanned};
use eddy_sink::{OpenedSink, SinkConfig, SinkError, TopicTemplate};
use serde::Deserialize;

use super::MqttSinkTask;
use crate::broker::{BrokerRef, reach};

/// Results published to an MQTT broker as JSON (the result id, output,
/// key, time and fields; with MQTT 5 the id is also the user property
/// `result_id`). They wait in the host's durable outbox (the sink table's
/// `outbox = { … }`) until the broker has acknowledged them (QoS 1
/// PUBACK), so an outage or a crash loses none.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSinkConfig {
    /// The broker: a table of its own (a connection of its own, which
    /// publishes pipelined: the fastest drain), or the name of a
    /// `[brokers.NAME]` table whose connection it shares (publishes go
    /// through the shared client, slower than a connection of its own: for
    /// a service that allows one connection per device).
    pub broker: Spanned<BrokerRef>,
    /// The topic of each result: a template with `{output}`, `{key}` and
    /// `{pipeline}`, e.g. `"sites/site-7/{output}/{key}"`.
    pub topic: Spanned<String>,
    /// 1 (default: the broker acknowledges each result, which then leaves
    /// the outbox) or 0 (sent once, not acknowledged: a result in flight
    /// when the connection breaks is lost).
    #[serde(default = "default_qos")]
    pub qos: Spanned<u8>,
    /// Whether the broker keeps the last result of each topic for new
    /// subscribers.
    #[serde(default)]
    pub retain: bool,
    /// How long a batch may wait for its acknowledgements, in ms, before
    /// the connection counts as lost (default 10000).
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
}

fn default_qos() -> Spanned<u8> {
    Spanned::new(0..0, 1)
}

fn default_ack_timeout_ms() -> u64 {
    10_000
}

impl Kind for MqttSinkConfig {
    const NAME: &'static str = "mqtt";
    const ABOUT: &'static str = "results published to an MQTT broker (3.1.1 or 5, TLS) from a durable outbox, acknowledged, in order";
}

impl MqttSinkConfig {
    fn task(&self, cx: &Context<'_>) -> Result<MqttSinkTask, Invalid> {
        let broker = reach(&self.broker, cx)?;
        let topic = TopicTemplate::parse(self.topic.get_ref(), |c| !matches!(c, '+' | '#' | '\0'))
            .map_err(|e| Invalid::at(&self.topic, e))?;
        if *self.qos.get_ref() > 1 {
            return Err(Invalid::at(
                &self.qos,
                "qos is 0 or 1 (the outbox already removes repeats by result id)",
            ));
        }
        Ok(MqttSinkTask::new(
            broker,
            topic,
            cx.pipeline.to_owned(),
            *self.qos.get_ref(),
            self.retain,
            Duration::from_millis(self.ack_timeout_ms.max(1)),
        ))
    }
}

impl SinkConfig for MqttSinkConfig {
    fn validate(&self, cx: &Context<'_>) -> Result<(), Invalid> {
        self.task(cx).map(drop)
    }

    fn open(&self, cx: &Context<'_>) -> Result<OpenedSink, SinkError> {
        let task = self.task(cx).map_err(|e| SinkError::Config(e.message))?;
        Ok(OpenedSink::Outbox(Box::new(task)))
    }
}
