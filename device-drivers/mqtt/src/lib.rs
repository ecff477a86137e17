//! MQTT for eddy, through rumqttc (MQTT 3.1.1 and 5, TLS with rustls).
//!
//! [`MqttSourceConfig`] is the `mqtt` source: subscriptions whose
//! messages become records (JSON, CSV or raw payloads through eddy's
//! record codec; the key and string fields from topic levels), with QoS 1
//! messages acknowledged only once the pipeline has them safe.
//!
//! [`MqttSinkConfig`] is the `mqtt` sink: each result is published as JSON
//! to a topic made from a template, from the host's durable outbox, which
//! lets a result go only once the broker has acknowledged it (QoS 1). Its
//! connection is a sans-IO publishing session with rumqttc's packet codec
//! under a thin I/O loop: publishes leave many to a write and their
//! acknowledgements are read in bulk, so a backlog drains at the broker's
//! pace rather than one round of the client's event loop per message.
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
mod link;
mod shared;
mod sink;
mod source;

pub use broker::{BrokerConfig, BrokerRef, Protocol, TlsConfig};
pub use link::{Link, LinkEvent};
pub use shared::SharedBrokers;
pub use sink::{MqttSinkConfig, MqttSinkTask};
pub use source::{MqttSourceConfig, MqttSourceTask};
