//! `[sources.NAME]` and `[sinks.NAME]` tables: settings every source or sink
//! has, and exactly one kind sub-table (`[sources.NAME.file]`) whose settings
//! its kind's own type reads, looked up in the [registry](crate::registry).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use toml::Spanned;

use super::pipeline::JournalMode;
use crate::registry::{self, KindInfo};

/// A component's kind sub-table, read into its kind's settings type.
pub struct Component<T: ?Sized> {
    /// The kind: the sub-table's name.
    pub kind: &'static str,
    /// Where the sub-table is in the file.
    pub span: Range<usize>,
    /// Its settings.
    pub settings: Arc<T>,
}

impl<T: ?Sized> Component<T> {
    /// A kind's settings and where they were read.
    pub fn new(kind: &'static str, span: Range<usize>, settings: Arc<T>) -> Self {
        Component {
            kind,
            span,
            settings,
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Component<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("kind", &self.kind)
            .field("settings", &self.settings)
            .finish()
    }
}

/// How a component retries a peer that failed: exponential backoff from
/// `retry_initial_backoff_ms`, doubling up to `retry_max_backoff_ms` (which
/// also caps the first wait), each wait shortened by a random part of up to
/// half (jitter), so that many gateways do not come back at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// The first wait after a failure, in ms.
    pub initial_backoff_ms: u64,
    /// The longest wait, in ms.
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
        }
    }
}

/// A `[sources.NAME]` table.
#[derive(Debug)]
pub struct SourceTable {
    /// How far out of order records may arrive, in ms
    /// (`bounded_out_of_orderness_ms`). The source's watermark is the
    /// largest event time seen, minus this, minus 1 ms (Flink's
    /// `BoundedOutOfOrderness`); 0 suits sources whose times only increase.
    pub bounded_out_of_orderness_ms: u64,
    /// After this long without records (wall clock, ms), the source stops
    /// holding back the watermark of what it feeds, until it has records
    /// again (Flink's `withIdleness`); that includes a source whose peer is
    /// down. Without it, a silent or disconnected source holds event time
    /// back, so that no result is computed without its data.
    pub idle_timeout_ms: Option<u64>,
    /// The ingest journal (`off`, `buffered`, `sync`). Default: `off` for
    /// sources that can rewind, `buffered` for live ones.
    pub journal: Option<JournalMode>,
    /// Backoff after the source's peer fails (`retry_initial_backoff_ms`,
    /// default 500; `retry_max_backoff_ms`, default 30000).
    pub retry: RetryConfig,
    /// The kind sub-table: `[sources.NAME.sim]`, `[sources.NAME.file]`, …
    pub kind: Component<dyn eddy_driver::SourceConfig>,
}

/// What a sink does when its buffer is full (its peer down or slow for long).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Drop the oldest record held to make room, and count it: the newest
    /// data gets through when the peer comes back.
    #[default]
    DropOldest,
    /// Drop the new record, and count it.
    DropNewest,
    /// Stop reading sources until there is room (back-pressure): nothing
    /// is dropped, but the whole pipeline waits for this sink.
    Block,
}

/// `buffer = { … }` of a sink: what it holds while its peer is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// The most records held, in order, waiting for the peer.
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    /// What happens when that many are held.
    #[serde(default)]
    pub when_full: WhenFull,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_records: default_max_records(),
            when_full: WhenFull::default(),
        }
    }
}

fn default_max_records() -> usize {
    100_000
}

/// `outbox = { … }` of a sink that delivers to a broker (`mqtt`, `kafka`):
/// the durable outbox in the state store its results wait in until the
/// broker has acknowledged them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The most bytes the waiting results may take on disk (default 256 MiB).
    #[serde(default = "default_outbox_max_bytes")]
    pub max_bytes: u64,
    /// A result older than this is dropped unsent, and counted (default 7
    /// days; 0 keeps results however old).
    #[serde(default = "default_outbox_max_age_ms")]
    pub max_age_ms: u64,
    /// What happens when `max_bytes` is reached: `drop_oldest` (the oldest
    /// result of the lowest priority goes), `drop_newest`, or `block`
    /// (the pipeline reads no sources until there is room).
    #[serde(default)]
    pub when_full: WhenFull,
    /// Inputs whose results go first, highest priority first (e.g.
    /// `["alerts"]`): after an outage they are sent before the backlog of
    /// the others. In order within a priority; inputs not listed come last.
    #[serde(default)]
    pub priorities: Vec<String>,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_bytes: default_outbox_max_bytes(),
            max_age_ms: default_outbox_max_age_ms(),
            when_full: WhenFull::default(),
            priorities: Vec::new(),
        }
    }
}

fn default_outbox_max_bytes() -> u64 {
    256 << 20
}

fn default_outbox_max_age_ms() -> u64 {
    7 * 24 * 3600 * 1000
}

/// A `[sinks.NAME]` table.
#[derive(Debug)]
pub struct SinkTable {
    /// Sources and operators whose output it takes (`inputs`).
    pub inputs: Vec<Spanned<String>>,
    /// What it holds while its peer is down, and what happens when that is
    /// full (`buffer = { max_records = 100000, when_full = "drop_oldest" }`).
    pub buffer: BufferConfig,
    /// For a sink delivering to a broker: its durable outbox (`outbox =
    /// { max_bytes, max_age_ms, when_full, priorities }`).
    pub outbox: OutboxConfig,
    /// Backoff after the sink's peer fails (`retry_initial_backoff_ms`,
    /// default 500; `retry_max_backoff_ms`, default 30000).
    pub retry: RetryConfig,
    /// The kind sub-table: `[sinks.NAME.stdout]`, `[sinks.NAME.file]`, …
    pub kind: Component<dyn eddy_sink::SinkConfig>,
}

const SOURCE_KEYS: &[&str] = &[
    "bounded_out_of_orderness_ms",
    "idle_timeout_ms",
    "journal",
    "retry_initial_backoff_ms",
    "retry_max_backoff_ms",
];

const SINK_KEYS: &[&str] = &[
    "inputs",
    "buffer",
    "outbox",
    "retry_initial_backoff_ms",
    "retry_max_backoff_ms",
];

/// A key of a component table: one of its own settings, or a kind.
enum Key {
    Setting(&'static str),
    Kind(&'static str),
}

/// Reads a key; refuses unknown keys and a second kind, at the key's place.
struct KeySeed<'a> {
    what: &'static str,
    settings: &'static [&'static str],
    kinds: &'static [KindInfo],
    seen_kind: Option<&'a str>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        let name = String::deserialize(d)?;
        if let Some(&s) = self.settings.iter().find(|s| **s == name) {
            return Ok(Key::Setting(s));
        }
        if let Some(kind) = self.kinds.iter().find(|k| k.name == name) {
            if let Some(first) = self.seen_kind {
                return Err(de::Error::custom(format_args!(
                    "a {} has exactly one kind table, and this one has `{first}` already; `{}` cannot be a second",
                    self.what, kind.name
                )));
            }
            return Ok(Key::Kind(kind.name));
        }
        if name == "type" && self.what == "sink" {
            return Err(de::Error::custom(format_args!(
                "`type` is not a sink setting: name the kind by a sub-table, e.g. [sinks.NAME.stdout] (kinds: {})",
                registry::names(self.kinds)
            )));
        }
        let settings: Vec<String> = self.settings.iter().map(|s| format!("`{s}`")).collect();
        Err(de::Error::custom(format_args!(
            "unknown field `{name}`, expected one of {}, or a {} kind: {}",
            settings.join(", "),
            self.what,
            registry::names(self.kinds)
        )))
    }
}

fn missing_kind<E: de::Error>(what: &str, kinds: &[KindInfo]) -> E {
    let example = kinds.first().map_or("KIND", |k| k.name);
    E::custom(format_args!(
        "a {what} needs a kind table, one of {} (e.g. [{what}s.NAME.{example}])",
        registry::names(kinds)
    ))
}

impl<'de> Deserialize<'de> for SourceTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SourceTable;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a source table")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SourceTable, A::Error> {
                let mut bounded = 0;
                let mut idle = None;
                let mut journal = None;
                let mut retry = RetryConfig::default();
                let mut kind = None;
                loop {
                    let seed = KeySeed {
                        what: "source",
                        settings: SOURCE_KEYS,
                        kinds: registry::SOURCE_KINDS,
                        seen_kind: kind.as_ref().map(|k: &Component<_>| k.kind),
                    };
                    match map.next_key_seed(seed)? {
                        None => break,
                        Some(Key::Setting("bounded_out_of_orderness_ms")) => {
                            bounded = map.next_value()?
                        }
                        Some(Key::Setting("idle_timeout_ms")) => idle = Some(map.next_value()?),
                        Some(Key::Setting("journal")) => journal = Some(map.next_value()?),
                        Some(Key::Setting("retry_initial_backoff_ms")) => {
                            retry.initial_backoff_ms = map.next_value()?
                        }
                        Some(Key::Setting(_)) => retry.max_backoff_ms = map.next_value()?,
                        Some(Key::Kind(name)) => match registry::next_source(name, &mut map) {
                            Some(component) => kind = Some(component?),
                            None => unreachable!("the key seed only passes registered kinds"),
                        },
                    }
                }
                Ok(SourceTable {
                    bounded_out_of_orderness_ms: bounded,
                    idle_timeout_ms: idle,
                    journal,
                    retry,
                    kind: kind.ok_or_else(|| missing_kind("source", registry::SOURCE_KINDS))?,
                })
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for SinkTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SinkTable;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sink table")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SinkTable, A::Error> {
                let mut inputs = None;
                let mut buffer = BufferConfig::default();
                let mut outbox = OutboxConfig::default();
                let mut retry = RetryConfig::default();
                let mut kind = None;
                loop {
                    let seed = KeySeed {
                        what: "sink",
                        settings: SINK_KEYS,
                        kinds: registry::SINK_KINDS,
                        seen_kind: kind.as_ref().map(|k: &Component<_>| k.kind),
                    };
                    match map.next_key_seed(seed)? {
                        None => break,
                        Some(Key::Setting("inputs")) => inputs = Some(map.next_value()?),
                        Some(Key::Setting("buffer")) => buffer = map.next_value()?,
                        Some(Key::Setting("outbox")) => outbox = map.next_value()?,
                        Some(Key::Setting("retry_initial_backoff_ms")) => {
                            retry.initial_backoff_ms = map.next_value()?
                        }
                        Some(Key::Setting(_)) => retry.max_backoff_ms = map.next_value()?,
                        Some(Key::Kind(name)) => match registry::next_sink(name, &mut map) {
                            Some(component) => kind = Some(component?),
                            None => unreachable!("the key seed only passes registered kinds"),
                        },
                    }
                }
                Ok(SinkTable {
                    inputs: inputs.ok_or_else(|| de::Error::missing_field("inputs"))?,
                    buffer,
                    outbox,
                    retry,
                    kind: kind.ok_or_else(|| missing_kind("sink", registry::SINK_KINDS))?,
                })
            }
        }
        d.deserialize_map(V)
    }
}
