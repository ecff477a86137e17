//! The structs a pipeline file deserializes into. Their doc comments are the
//! reference of the format.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

/// A whole pipeline file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Settings of the pipeline as a whole.
    #[serde(default)]
    pub pipeline: PipelineSection,
    /// Defaults for every operator's plugin.
    #[serde(default)]
    pub plugins: PluginDefaults,
    /// Named sources.
    #[serde(default)]
    pub sources: BTreeMap<String, Spanned<SourceConfig>>,
    /// Named operators.
    #[serde(default)]
    pub operators: BTreeMap<String, Spanned<OperatorConfig>>,
    /// Named sinks.
    #[serde(default)]
    pub sinks: BTreeMap<String, Spanned<SinkConfig>>,
}

/// The `[pipeline]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// The pipeline's name, in logs and dead letters. Default: the file's stem.
    pub name: Option<String>,
    /// The most records read from a source at once, and handed to a plugin in one call.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Where failed batches, late records nobody routes, and their reasons are written, as JSON lines.
    #[serde(default = "default_dead_letter_path")]
    pub dead_letter_path: PathBuf,
}

impl Default for PipelineSection {
    fn default() -> Self {
        PipelineSection {
            name: None,
            batch_size: default_batch_size(),
            dead_letter_path: default_dead_letter_path(),
        }
    }
}

/// The `[plugins]` table: limits every operator gets unless it says otherwise.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginDefaults {
    /// CPU time one plugin call may take, in ms.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// The most linear memory a plugin may have, in bytes.
    #[serde(default = "default_memory_limit_bytes")]
    pub memory_limit_bytes: u64,
    /// The most a plugin may emit in one call, in encoded bytes.
    #[serde(default = "default_output_limit_bytes")]
    pub output_limit_bytes: u64,
    /// Wait before restarting a failed plugin, in ms; doubles with each failure in a row.
    #[serde(default = "default_restart_backoff_ms")]
    pub restart_backoff_ms: u64,
    /// The longest wait between restarts, in ms.
    #[serde(default = "default_max_restart_backoff_ms")]
    pub max_restart_backoff_ms: u64,
}

impl Default for PluginDefaults {
    fn default() -> Self {
        PluginDefaults {
            deadline_ms: default_deadline_ms(),
            memory_limit_bytes: default_memory_limit_bytes(),
            output_limit_bytes: default_output_limit_bytes(),
            restart_backoff_ms: default_restart_backoff_ms(),
            max_restart_backoff_ms: default_max_restart_backoff_ms(),
        }
    }
}

/// A `[sources.NAME]` table: one driver table, and event-time settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// How far out of order records may arrive, in ms. The source's watermark
    /// is the largest event time seen, minus this, minus 1 ms (Flink's
    /// `BoundedOutOfOrderness`); 0 suits sources whose times only increase.
    #[serde(default)]
    pub bounded_out_of_orderness_ms: u64,
    /// After this long without records (wall clock, ms), the source stops
    /// holding back the watermark of what it feeds, until it has records
    /// again (Flink's `withIdleness`). Default: never idle.
    pub idle_timeout_ms: Option<u64>,
    /// Simulated devices (`[sources.NAME.sim]`).
    #[cfg(feature = "sim")]
    pub sim: Option<Spanned<eddy_driver_sim::SimConfig>>,
    /// A file of JSON lines or CSV (`[sources.NAME.file]`).
    pub file: Option<Spanned<crate::sources::file::FileConfig>>,
}

/// An `[operators.NAME]` table: a plugin and what it is fed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Sources and operators whose output this operator takes.
    pub inputs: Vec<Spanned<String>>,
    /// The plugin's `.wasm` file.
    pub plugin: Spanned<PathBuf>,
    /// Params handed to the plugin, which deserializes them into its own type.
    #[serde(default)]
    pub params: toml::Table,
    /// A field whose value becomes the record's key (state and windows are per
    /// key). Default: the key the record came with.
    pub key_by: Option<String>,
    /// The window a `window` plugin aggregates over.
    pub window: Option<Spanned<WindowConfig>>,
    /// How long a fired event-time window is kept for late records, in ms
    /// (Flink's `allowedLateness`). A record within it fires the window again
    /// as an update; a record later than it goes to the `late` output.
    #[serde(default)]
    pub allowed_lateness_ms: u64,
    /// Overrides `[plugins] deadline_ms`.
    pub deadline_ms: Option<u64>,
    /// Overrides `[plugins] memory_limit_bytes`.
    pub memory_limit_bytes: Option<u64>,
    /// Overrides `[plugins] output_limit_bytes`.
    pub output_limit_bytes: Option<u64>,
}

/// Which windows records are grouped into.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowConfig {
    /// Fixed-size, non-overlapping windows aligned to the epoch plus an offset.
    Tumbling(TumblingConfig),
    /// Fixed-size windows that start every `slide_ms`, so they overlap.
    Sliding(SlidingConfig),
    /// Per key, a window that closes after `gap_ms` without records.
    Session(SessionConfig),
    /// Windows of a number of records per key, regardless of time.
    Count(CountConfig),
}

/// Which clock time windows run on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowTime {
    /// The records' own times and the watermark (Flink's event time).
    #[default]
    Event,
    /// The host's wall clock when records arrive, for sources without timestamps.
    Processing,
}

/// `window.tumbling`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TumblingConfig {
    /// Window length, in ms.
    pub size_ms: u64,
    /// Shift of the window boundaries from the epoch, in ms.
    #[serde(default)]
    pub offset_ms: i64,
    /// Event or processing time.
    #[serde(default)]
    pub time: WindowTime,
}

/// `window.sliding`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlidingConfig {
    /// Window length, in ms.
    pub size_ms: u64,
    /// Distance between window starts, in ms.
    pub slide_ms: u64,
    /// Shift of the window boundaries from the epoch, in ms.
    #[serde(default)]
    pub offset_ms: i64,
    /// Event or processing time.
    #[serde(default)]
    pub time: WindowTime,
}

/// `window.session`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Inactivity that ends a session, in ms.
    pub gap_ms: u64,
    /// Event or processing time.
    #[serde(default)]
    pub time: WindowTime,
}

/// `window.count`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountConfig {
    /// Records per window.
    pub size: u64,
    /// Records between firings; default `size` (tumbling).
    pub slide: Option<u64>,
}

/// A `[sinks.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Where records go.
    #[serde(rename = "type")]
    pub kind: SinkType,
    /// Sources and operators whose output it takes.
    pub inputs: Vec<Spanned<String>>,
    /// For `file`: the file records are appended to.
    pub path: Option<Spanned<PathBuf>>,
}

/// Kinds of sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkType {
    /// JSON lines on standard output.
    Stdout,
    /// JSON lines appended to `path`.
    File,
    /// Counted and dropped (for benchmarks).
    Null,
    /// The pipeline's dead-letter log (`[pipeline] dead_letter_path`), with
    /// the output each record came from as the reason.
    DeadLetter,
}

fn default_batch_size() -> usize {
    1024
}
fn default_dead_letter_path() -> PathBuf {
    "dead-letter.jsonl".into()
}
fn default_deadline_ms() -> u64 {
    100
}
fn default_memory_limit_bytes() -> u64 {
    64 << 20
}
fn default_output_limit_bytes() -> u64 {
    64 << 20
}
fn default_restart_backoff_ms() -> u64 {
    100
}
fn default_max_restart_backoff_ms() -> u64 {
    30_000
}
