//! What a pipeline writes in a `[sources.NAME.mqtt]` table.

use eddy_codec::{CsvOptions, Decoding, Format, TimeFormat};
use eddy_driver::{Context, DriverError, Invalid, Kind, Source, SourceConfig, Spanned};
use serde::Deserialize;
use std::collections::BTreeMap;

use super::task::MqttSourceTask;
use super::topics::TopicParsing;
use crate::broker::{BrokerRef, reach};

/// Messages of MQTT subscriptions as records: payloads read as JSON, CSV
/// or raw bytes (as the `tcp` source reads lines), the key and string
/// fields from topic levels. With QoS 1 and a persistent session, what is
/// published while eddy is down is delivered when it connects again, and
/// a message is acknowledged only once the pipeline's journal (or, without
/// one, a checkpoint) holds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSourceConfig {
    /// The broker: a table of its own, or the name of a `[brokers.NAME]`
    /// table whose connection it shares (whose `session_expiry_s` then
    /// applies, not this table's).
    pub broker: Spanned<BrokerRef>,
    /// Topic filters to subscribe to, wildcards allowed.
    pub topics: Vec<Spanned<String>>,
    /// 0 or 1 (default): with 1 the broker sends each message until it is
    /// acknowledged.
    #[serde(default = "default_qos")]
    pub qos: Spanned<u8>,
    /// How long the broker keeps the session (subscriptions and messages
    /// for it) while eddy is away, in seconds; 0 starts clean each time
    /// (default 86400, a day).
    #[serde(default = "default_session_expiry_s")]
    pub session_expiry_s: u32,
    /// Topic levels to key and fields, e.g. `"site/+site/rack/+rack/+sensor"`:
    /// `+name` levels become string fields, or the key (`key_levels`);
    /// messages on topics that do not match are dead-lettered.
    pub topic_parsing: Option<Spanned<String>>,
    /// The named levels that make the key, joined by `/` (default: the key
    /// comes from `key_field` in the payload, else the topic).
    #[serde(default)]
    pub key_levels: Vec<String>,
    /// `json` (default), `csv` or `raw`.
    #[serde(default = "default_format")]
    pub format: Format,
    /// The payload member or column holding the key (used when the topic
    /// does not give it); without it the topic is the key.
    #[serde(default = "eddy_codec::default_key_field")]
    pub key_field: String,
    /// The member or column holding the event time; empty (default) for
    /// the time the message arrived.
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

fn default_qos() -> Spanned<u8> {
    Spanned::new(0..0, 1)
}

fn default_session_expiry_s() -> u32 {
    86_400
}

fn default_format() -> Format {
    Format::Json
}

impl Kind for MqttSourceConfig {
    const NAME: &'static str = "mqtt";
    const ABOUT: &'static str = "MQTT subscriptions (3.1.1 or 5, TLS) as records: JSON, CSV or raw payloads, key and fields from topic levels; QoS 1 acknowledged once journaled";
}

impl MqttSourceConfig {
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

    fn task(&self, cx: &Context<'_>) -> Result<MqttSourceTask, Invalid> {
        let broker = reach(&self.broker, cx)?;
        if self.topics.is_empty() {
            return Err(Invalid::new("topics names at least one topic filter"));
        }
        for topic in &self.topics {
            check_filter(topic.get_ref()).map_err(|e| Invalid::at(topic, e))?;
        }
        if *self.qos.get_ref() > 1 {
            return Err(Invalid::at(&self.qos, "qos is 0 or 1"));
        }
        let parsing = match &self.topic_parsing {
            Some(pattern) => Some(
                TopicParsing::new(pattern.get_ref(), &self.key_levels)
                    .map_err(|e| Invalid::at(pattern, e))?,
            ),
            None if !self.key_levels.is_empty() => {
                return Err(Invalid::new(
                    "key_levels names levels of topic_parsing, which is not given",
                ));
            }
            None => None,
        };
        let decoding = self.decoding();
        decoding.validate().map_err(Invalid::new)?;
        Ok(MqttSourceTask::new(
            broker,
            self.topics.iter().map(|t| t.get_ref().clone()).collect(),
            *self.qos.get_ref(),
            (self.session_expiry_s > 0).then_some(self.session_expiry_s),
            parsing,
            decoding,
            cx.name.to_owned(),
        ))
    }
}

/// Checks a topic filter: `+` takes a whole level, `#` the last.
fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("a topic filter is not empty".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let bad = (level.contains('+') && *level != "+")
            || (level.contains('#') && (*level != "#" || i + 1 != levels.len()));
        if bad {
            return Err(format!(
                "`{filter}`: + stands for a whole level, # for the last ones"
            ));
        }
    }
    Ok(())
}

impl SourceConfig for MqttSourceConfig {
    fn validate(&self, cx: &Context<'_>) -> Result<(), Invalid> {
        self.task(cx).map(drop)
    }

    fn open(&self, cx: &Context<'_>) -> Result<Source, DriverError> {
        let task = self.task(cx).map_err(|e| DriverError::Config(e.message))?;
        Ok(Source::Task(Box::new(task)))
    }
}
