//! Durable state: checkpoints (manifests in sled, the operators' state in a
//! file per checkpoint), and the ingest journal in files.
//!
//! A running pipeline takes a checkpoint every `[checkpoint] interval_ms`,
//! between two steps of its loop, when no record is in flight: each sink
//! makes what it wrote durable and says where it stands (a file's length);
//! each operator's whole state (keyed state, timers, open windows and
//! accumulators, watermarks, the plugin's own memory snapshot, the counters
//! result ids are built from) is snapshotted; each source says where it is.
//! The snapshot shares the operators' keyed state and windows (copy on
//! write, shard by shard), so taking it costs the pipeline about nothing;
//! a thread of its own then serializes each operator's state into one blob,
//! streamed into the checkpoint's state file ([`PipelineStore::state_file`])
//! as it is encoded, and [`PipelineStore::commit`] syncs it and writes, last,
//! the [`Manifest`] naming the blobs with their CRCs, while the pipeline
//! goes on. One checkpoint
//! is written at a time; what it covers (acknowledgements to sources' peers,
//! journal entries not appended yet) is let go only once it is durable.
//!
//! On start the newest checkpoint that reads back whole is restored (a torn
//! or damaged one is skipped, with a warning). Each operator's state is
//! decoded as its file is read ([`PipelineStore::decode_latest`]), and
//! checked against its manifest once read, so a restore holds the state
//! once, not its bytes besides: operators get their state,
//! sinks that can go back truncate what they wrote after it, sources that can
//! rewind seek to their position, and entries of the ingest journal written
//! after it are replayed. Because the engine is deterministic, the replay
//! produces the same results with the same ids (see `eddy_abi`'s "Result
//! ids"); a consumer drops the ones it already has.

pub(crate) mod compaction;
mod journal;
mod journal_log;
mod manifest;
mod state_files;
mod store;
mod streamed;
mod writeback;
mod writer;

pub use journal::JournalEntry;
#[cfg(test)]
pub(crate) use journal_log::JOURNAL_DIR;
pub use manifest::{Manifest, OperatorCheckpoint, SinkCheckpoint, SourceCheckpoint};
pub use state_files::StateFileWriter;
#[cfg(test)]
pub(crate) use store::OUTBOX_DIR;
pub use store::{
    BlobDecoder, Damaged, Decoded, JournalGroup, LoadError, Loaded, PART_BYTES, PipelineStore,
    RestoreError, StateStore, StoreError,
};
pub use streamed::DecodeError;
pub(crate) use streamed::{StreamError, decode_from, encode_to};
pub use writer::JournalWriter;
