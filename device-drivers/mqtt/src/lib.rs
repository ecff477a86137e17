//! MQTT for eddy, through rumqttc (MQTT 3.1.1 and 5, TLS with rustls).
//!
//! [`MqttSinkConfig`] is the `mqtt` sink: each result is published as JSON
//! to a topic made from a template, from the host's durable outbox, which
//! lets a result go only once the broker has acknowledged it (QoS 1).
//!
//! ```toml
//! [sinks.uplink]
//! inputs = ["alerts", "stats"]
//! outbox = { max_bytes = 1_000_000_000, when_full = "drop_oldest", priorities = ["alerts"] }
//! [sinks.uplink.mqtt]
//! topic = "sites/site-7/{output}/{key}"
//! broker = { url = "mqtts://broker.example:8883", client_id = "site-7-results", tls = { ca_file = "ca.pem" } }
//! ```

#![warn(missing_docs, unreachable_pub)]

mod broker;
mod client;
mod sink;
mod topic;

pub use broker::{BrokerConfig, Protocol, TlsConfig};
pub use sink::{MqttSinkConfig, MqttSinkTask};
