//! What a Kafka client is told: the brokers, a client id, and librdkafka
//! properties passed through.

use std::collections::BTreeMap;

use eddy_driver::{Invalid, Spanned};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

/// The cluster and how to reach it, as the source's and the sink's tables
/// give it (`brokers`, `client_id`, `properties`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cluster<'a> {
    /// Bootstrap brokers, `host:port` each.
    pub(crate) brokers: &'a Spanned<Vec<String>>,
    /// The client id the brokers see (default `eddy-PIPELINE-NAME`).
    pub(crate) client_id: Option<&'a str>,
    /// More librdkafka properties, passed as they are.
    pub(crate) properties: &'a Spanned<BTreeMap<String, String>>,
}

impl Cluster<'_> {
    /// Checks the settings; `reserved` names the properties eddy sets
    /// itself for this kind.
    pub(crate) fn check(&self, reserved: &[&str]) -> Result<(), Invalid> {
        let brokers = self.brokers.get_ref();
        if brokers.is_empty() {
            return Err(Invalid::at(
                self.brokers,
                "brokers names at least one `host:port`",
            ));
        }
        for broker in brokers {
            let port = broker
                .rsplit_once(':')
                .map(|(host, port)| (host, port.parse::<u16>()));
            if !matches!(port, Some((host, Ok(_))) if !host.is_empty()) {
                return Err(Invalid::at(
                    self.brokers,
                    format!("`{broker}` is not `host:port`"),
                ));
            }
        }
        for name in self.properties.get_ref().keys() {
            if name.is_empty() {
                return Err(Invalid::at(self.properties, "a property has a name"));
            }
            if reserved.contains(&name.as_str()) || MANAGED.contains(&name.as_str()) {
                return Err(Invalid::at(
                    self.properties,
                    format!("`{name}` is set by eddy (its delivery guarantees rest on it)"),
                ));
            }
        }
        // librdkafka checks names and values as they are set on its
        // configuration object, without making a client (which would
        // connect).
        self.client_config("check", "check")
            .create_native_config()
            .map(drop)
            .map_err(|e| Invalid::at(self.properties, e.to_string()))
    }

    /// The client's settings, before the kind's own.
    pub(crate) fn client_config(&self, pipeline: &str, name: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.brokers.get_ref().join(","));
        config.set(
            "client.id",
            self.client_id
                .map_or_else(|| format!("eddy-{pipeline}-{name}"), str::to_owned),
        );
        config.set_log_level(rdkafka::config::RDKafkaLogLevel::Error);
        for (key, value) in self.properties.get_ref() {
            config.set(key, value);
        }
        config
    }

    /// The brokers, for messages.
    pub(crate) fn peer(&self) -> String {
        self.brokers.get_ref().join(",")
    }
}

/// Properties eddy sets for every client.
const MANAGED: &[&str] = &["bootstrap.servers", "metadata.broker.list"];

/// No properties, for a table without them.
pub(crate) fn no_properties() -> Spanned<BTreeMap<String, String>> {
    Spanned::new(0..0, BTreeMap::new())
}

/// What eddy's Kafka clients do with librdkafka's logs and errors: log them
/// at debug level. A broker that cannot be reached shows in the component's
/// health (`retrying`, with the reason) through the call that failed, not
/// as a stream of errors each time librdkafka tries again.
pub(crate) struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        tracing::debug!(target: "librdkafka", ?level, facility, "{message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for Quiet {}
