//! Kafka for eddy, through rdkafka (librdkafka built from source).
//!
//! [`KafkaSourceConfig`] is the `kafka` source: every partition of its
//! topics, with offsets kept in eddy's checkpoints (and sought on restore)
//! rather than committed by the client, so a crash replays exactly what the
//! checkpoint had not covered; watermarks per partition, as Flink's Kafka
//! source keeps them.
//!
//! [`KafkaSinkConfig`] is the `kafka` sink: each result produced as JSON by
//! an idempotent producer with `acks=all`, from the host's durable outbox,
//! which lets a result go only once the cluster has it.
//!
//! ```toml
//! [sources.readings]
//! bounded_out_of_orderness_ms = 2000
//! idle_timeout_ms = 30000
//! [sources.readings.kafka]
//! brokers = ["10.0.0.5:9092"]
//! topics = ["site-7.readings"]
//!
//! [sinks.uplink]
//! inputs = ["alerts", "stats"]
//! outbox = { max_bytes = 1_000_000_000, priorities = ["alerts"] }
//! [sinks.uplink.kafka]
//! brokers = ["central.example:9092"]
//! topic = "site-7.{output}"
//! ```

#![warn(missing_docs, unreachable_pub)]

mod client;
mod sink;
mod source;

pub use client::{KafkaSasl, KafkaTls, SaslMechanism};
pub use sink::{Compression, KafkaSinkConfig, KafkaSinkTask, MessageKey};
pub use source::{KafkaSourceConfig, KafkaSourceTask, Start};
