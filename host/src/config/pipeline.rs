//! The structs a pipeline file deserializes into. Their doc comments are the
//! reference of the format.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::component::{SinkTable, SourceTable};

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
    /// When the pipeline's state is made durable.
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    /// Named sources.
    #[serde(default)]
    pub sources: BTreeMap<String, Spanned<SourceTable>>,
    /// Named operators.
    #[serde(default)]
    pub operators: BTreeMap<String, Spanned<OperatorConfig>>,
    /// Named sinks.
    #[serde(default)]
    pub sinks: BTreeMap<String, Spanned<SinkTable>>,
    /// The local HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Which plugin signatures this host accepts.
    #[serde(default)]
    pub trust: TrustConfig,
    /// This host's device twin, synced with a Device Shadow service.
    pub twin: Option<Spanned<crate::twin::TwinConfig>>,
    /// Brokers whose one connection the components that name them share
    /// (`broker = "NAME"` in an `mqtt` source or sink, or `[twin]`).
    #[cfg(feature = "mqtt")]
    #[serde(default)]
    pub brokers: BTreeMap<String, Spanned<eddy_driver_mqtt::BrokerConfig>>,
}

/// The `[api]` table: the local HTTP API that `eddy status` and
/// `eddy plugin swap` talk to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Whether to serve it.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The address to listen on; `EDDY_API_LISTEN` overrides it. Port 0
    /// picks a free port; the address in use is written to `api.json` in the
    /// state directory, where the `eddy` commands find it.
    #[serde(default = "default_api_listen")]
    pub listen: String,
    /// A file holding the bearer token clients must send. Default:
    /// `EDDY_API_TOKEN`, or else a random token written to `api.token` in
    /// the state directory (readable by its owner only).
    pub token_file: Option<Spanned<PathBuf>>,
    /// How long a swap request waits for the new version's probation, in ms,
    /// before answering `on_probation`. The verdict stands either way: a
    /// version that passes is kept for restarts, one that fails is rolled back.
    #[serde(default = "default_swap_wait_ms")]
    pub swap_wait_ms: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            listen: default_api_listen(),
            token_file: None,
            swap_wait_ms: default_swap_wait_ms(),
        }
    }
}

/// The `[trust]` table: with keys listed, only plugins signed by one of them
/// load (bundles made by `eddy plugin sign`); anything unsigned or altered is
/// refused, naming the reason.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// Public key files written by `eddy keys gen`.
    #[serde(default)]
    pub keys: Vec<Spanned<PathBuf>>,
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
    /// When input arrives at an idle pipeline, how long it waits for more
    /// before processing, in ms (as Flink's buffer timeout or Kafka's
    /// `linger.ms`): a trickle of messages is then processed in batches,
    /// not one wake-up each, at that much more latency. Timers, retries and
    /// a stop are not delayed. 0 processes each arrival at once.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Where failed batches, late records nobody routes, and their reasons are written, as JSON lines.
    #[serde(default = "default_dead_letter_path")]
    pub dead_letter_path: PathBuf,
    /// The most the dead-letter log grows to, in MiB. Past it, dead letters
    /// are counted (`eddy status`, `eddy_dead_letters_unwritten_total`) but
    /// not written, so that a flood of late or unreadable input (a device
    /// whose clock was reset, a replayed source) cannot fill the disk the
    /// checkpoints need. 0: no limit.
    #[serde(default = "default_dead_letter_max_mib")]
    pub dead_letter_max_mib: u64,
    /// When the run ends, how long sinks whose peer is down or slow get to
    /// deliver what they hold, in ms; what is still held then is lost (and logged).
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
}

impl Default for PipelineSection {
    fn default() -> Self {
        PipelineSection {
            name: None,
            batch_size: default_batch_size(),
            linger_ms: default_linger_ms(),
            dead_letter_path: default_dead_letter_path(),
            dead_letter_max_mib: default_dead_letter_max_mib(),
            shutdown_timeout_ms: default_shutdown_timeout_ms(),
        }
    }
}

/// The `[checkpoint]` table.
///
/// Checkpoints are on by default: every `interval_ms` the whole state of the
/// pipeline (operator state, windows, timers, watermarks, source and sink
/// positions) is committed to the host's state store, and after a crash the
/// pipeline carries on from the last one.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Whether to take checkpoints and restore from them.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Time between checkpoints, in ms (wall clock).
    #[serde(default = "default_checkpoint_interval_ms")]
    pub interval_ms: u64,
    /// How many checkpoints to keep: a damaged newest one falls back to the
    /// one before, so keep at least 2.
    #[serde(default = "default_retain")]
    pub retain: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            enabled: true,
            interval_ms: default_checkpoint_interval_ms(),
            retain: default_retain(),
        }
    }
}

/// What a source's ingest journal does, per `[sources.NAME] journal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalMode {
    /// No journal. A source that can rewind (a file, Kafka, a simulation
    /// with a start time) is read again from its checkpointed position after
    /// a crash: nothing is lost. A live source (devices, a simulation on the
    /// wall clock) loses what it delivered since the last checkpoint.
    Off,
    /// Each batch is appended to the journal as it is read, and the journal
    /// reaches disk with the store's periodic flush (every 500 ms): a crash
    /// of the process or of the machine loses at most the last 500 ms of
    /// input. The default for live sources.
    Buffered,
    /// Each batch is appended and flushed to disk before it is processed:
    /// nothing a source delivered is lost, at the cost of one disk sync per batch.
    Sync,
}

/// The `[plugins]` table: limits every operator gets unless it says otherwise.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginDefaults {
    /// CPU time one plugin call may take, in ms.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// The most linear memory a plugin may have, in bytes (at most 4 GiB,
    /// all that a 32-bit WebAssembly memory addresses).
    #[serde(
        default = "default_memory_limit_bytes",
        deserialize_with = "super::bounded::memory_bytes"
    )]
    pub memory_limit_bytes: u64,
    /// The most the records (and accumulators) a plugin emits in one call
    /// may take in the host, in bytes as the host holds them (a record
    /// takes about 110 bytes plus 40 per field plus its strings and bytes).
    #[serde(default = "default_output_limit_bytes")]
    pub output_limit_bytes: u64,
    /// The most records a plugin may emit in one call.
    #[serde(default = "default_emit_limit_records")]
    pub emit_limit_records: u64,
    /// The most keyed state the host holds for a plugin, in bytes: each
    /// value's key and bytes and 96 bytes for its slot.
    #[serde(default = "default_state_limit_bytes")]
    pub state_limit_bytes: u64,
    /// The most keyed-state values the host holds for a plugin.
    #[serde(default = "default_state_limit_keys")]
    pub state_limit_keys: u64,
    /// The most timers a plugin may have set at once.
    #[serde(default = "default_timer_limit")]
    pub timer_limit: u64,
    /// The most elements a plugin's tables may have (at most 10,000,000).
    #[serde(
        default = "default_table_limit_elements",
        deserialize_with = "super::bounded::table_elements"
    )]
    pub table_limit_elements: u64,
    /// The largest plugin `.wasm` the host compiles, in bytes.
    #[serde(default = "default_module_limit_bytes")]
    pub module_limit_bytes: u64,
    /// The largest function body in a plugin the host compiles, in bytes
    /// (compile time and memory grow with it).
    #[serde(default = "default_function_limit_bytes")]
    pub function_limit_bytes: u64,
    /// The longest compiling one plugin may take, in ms; then it is refused.
    #[serde(default = "default_compile_timeout_ms")]
    pub compile_timeout_ms: u64,
    /// The most memory compiling one plugin may use, in bytes (the compiler
    /// runs in a child process with this address-space limit).
    #[serde(default = "default_compile_memory_limit_bytes")]
    pub compile_memory_limit_bytes: u64,
    /// How plugin memory is allocated: `auto` (a pool of slots when it fits
    /// the address space, else on demand), `pooling` or `on_demand`.
    #[serde(default)]
    pub allocation: crate::plugin::AllocationChoice,
    /// Wait before restarting a failed plugin, in ms; doubles with each failure in a row.
    #[serde(default = "default_restart_backoff_ms")]
    pub restart_backoff_ms: u64,
    /// The longest wait between restarts, in ms.
    #[serde(default = "default_max_restart_backoff_ms")]
    pub max_restart_backoff_ms: u64,
    /// A plugin that fails this many times within `quarantine_window_ms` is
    /// quarantined: no longer called, its input dead-lettered, until it is
    /// swapped or reset. 0 never quarantines.
    #[serde(default = "default_quarantine_failures")]
    pub quarantine_failures: u32,
    /// The span failures are counted over, in ms.
    #[serde(default = "default_quarantine_window_ms")]
    pub quarantine_window_ms: u64,
    /// Calls a newly swapped-in plugin version must get through before the
    /// version it replaced is let go; a failure before that rolls the swap back.
    #[serde(default = "default_probation_calls")]
    pub probation_calls: u32,
}

impl Default for PluginDefaults {
    fn default() -> Self {
        PluginDefaults {
            deadline_ms: default_deadline_ms(),
            memory_limit_bytes: default_memory_limit_bytes(),
            output_limit_bytes: default_output_limit_bytes(),
            emit_limit_records: default_emit_limit_records(),
            state_limit_bytes: default_state_limit_bytes(),
            state_limit_keys: default_state_limit_keys(),
            timer_limit: default_timer_limit(),
            table_limit_elements: default_table_limit_elements(),
            module_limit_bytes: default_module_limit_bytes(),
            function_limit_bytes: default_function_limit_bytes(),
            compile_timeout_ms: default_compile_timeout_ms(),
            compile_memory_limit_bytes: default_compile_memory_limit_bytes(),
            allocation: crate::plugin::AllocationChoice::default(),
            restart_backoff_ms: default_restart_backoff_ms(),
            max_restart_backoff_ms: default_max_restart_backoff_ms(),
            quarantine_failures: default_quarantine_failures(),
            quarantine_window_ms: default_quarantine_window_ms(),
            probation_calls: default_probation_calls(),
        }
    }
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
    #[serde(default, deserialize_with = "super::bounded::option_memory_bytes")]
    pub memory_limit_bytes: Option<u64>,
    /// Overrides `[plugins] output_limit_bytes`.
    pub output_limit_bytes: Option<u64>,
    /// Overrides `[plugins] emit_limit_records`.
    pub emit_limit_records: Option<u64>,
    /// Overrides `[plugins] state_limit_bytes`.
    pub state_limit_bytes: Option<u64>,
    /// Overrides `[plugins] state_limit_keys`.
    pub state_limit_keys: Option<u64>,
    /// Overrides `[plugins] timer_limit`.
    pub timer_limit: Option<u64>,
    /// Overrides `[plugins] table_limit_elements`.
    #[serde(default, deserialize_with = "super::bounded::option_table_elements")]
    pub table_limit_elements: Option<u64>,
    /// Overrides `[plugins] module_limit_bytes`.
    pub module_limit_bytes: Option<u64>,
    /// Overrides `[plugins] function_limit_bytes`.
    pub function_limit_bytes: Option<u64>,
    /// Overrides `[plugins] compile_timeout_ms`.
    pub compile_timeout_ms: Option<u64>,
    /// Overrides `[plugins] compile_memory_limit_bytes`.
    pub compile_memory_limit_bytes: Option<u64>,
    /// Keyed-state values not written for this long (in event time, ms)
    /// expire: for keys that stop reporting. Default: never.
    pub state_ttl_ms: Option<u64>,
    /// What to do when the plugin's `state_version` differs from the one its
    /// checkpointed state was written with.
    #[serde(default)]
    pub state_version_mismatch: StateVersionMismatch,
    /// What the operator's plugin may touch. Without this table it is granted
    /// what its manifest declares; with it, a plugin that declares or imports
    /// more than granted is refused when the pipeline loads.
    pub grants: Option<Spanned<Grants>>,
}

/// `[operators.NAME.grants]`: what a plugin may touch, in the terms of the
/// manifest's capabilities: `state = [...]`, `side_outputs = [...]`, `timers`.
pub type Grants = eddy_abi::Capabilities;

/// `state_version_mismatch`: a new plugin version that cannot read old state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateVersionMismatch {
    /// Refuse to start, naming both versions.
    #[default]
    Refuse,
    /// Start the operator with empty state (its windows and keyed state are dropped).
    Reset,
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

fn default_true() -> bool {
    true
}
fn default_checkpoint_interval_ms() -> u64 {
    1000
}
fn default_retain() -> usize {
    2
}
fn default_batch_size() -> usize {
    1024
}
fn default_linger_ms() -> u64 {
    5
}
fn default_dead_letter_max_mib() -> u64 {
    256
}
fn default_dead_letter_path() -> PathBuf {
    "dead-letter.jsonl".into()
}
fn default_shutdown_timeout_ms() -> u64 {
    5000
}
fn default_deadline_ms() -> u64 {
    100
}
fn default_memory_limit_bytes() -> u64 {
    64 << 20
}
fn default_output_limit_bytes() -> u64 {
    crate::plugin::PluginCaps::default().output_bytes as u64
}
fn default_emit_limit_records() -> u64 {
    crate::plugin::PluginCaps::default().emit_records as u64
}
fn default_state_limit_bytes() -> u64 {
    crate::plugin::PluginCaps::default().state_bytes as u64
}
fn default_state_limit_keys() -> u64 {
    crate::plugin::PluginCaps::default().state_keys as u64
}
fn default_timer_limit() -> u64 {
    crate::plugin::PluginCaps::default().timers as u64
}
fn default_table_limit_elements() -> u64 {
    crate::plugin::PluginCaps::default().table_elements as u64
}
fn default_module_limit_bytes() -> u64 {
    crate::plugin::CompileLimits::default().module_bytes as u64
}
fn default_function_limit_bytes() -> u64 {
    crate::plugin::CompileLimits::default().function_bytes as u64
}
fn default_compile_timeout_ms() -> u64 {
    crate::plugin::CompileLimits::default().timeout.as_millis() as u64
}
fn default_compile_memory_limit_bytes() -> u64 {
    crate::plugin::CompileLimits::default().memory_bytes
}
fn default_restart_backoff_ms() -> u64 {
    100
}
fn default_max_restart_backoff_ms() -> u64 {
    30_000
}
fn default_quarantine_failures() -> u32 {
    10
}
fn default_quarantine_window_ms() -> u64 {
    300_000
}
fn default_probation_calls() -> u32 {
    3
}
fn default_swap_wait_ms() -> u64 {
    60_000
}
fn default_api_listen() -> String {
    "127.0.0.1:7411".into()
}
