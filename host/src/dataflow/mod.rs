//! The dataflow engine: a pipeline's DAG, run on one dedicated thread.
//!
//! Records flow as [`Element`]s, interleaved with event-time watermarks.
//! Each source advances its watermark after every record
//! ([`BoundedOutOfOrderness`]), so results never depend on how input is cut
//! into batches. An operator's watermark is the minimum over its inputs and
//! never goes back. Window operators ([`window`]) buffer each key's records
//! per window and fire a window once the watermark reaches its last
//! millisecond; records for windows that already fired are late and go to
//! the operator's `late` output. Process operators see records as they come,
//! and their event-time timers fire as the watermark passes them. A bounded
//! source that ends sends the end-of-input watermark (`i64::MAX`), which fires
//! every remaining window and timer.
//!
//! Plugin calls happen on the pipeline's thread (never on an async runtime's
//! workers), one call per batch.

mod build;
mod committer;
pub mod control;
mod durable;
mod element;
mod graph;
mod harness;
mod limits;
mod operator;
pub(crate) mod result_id;
pub mod snapshot;
mod watermark;
pub mod window;

pub use build::BuildError;
pub use durable::{CheckpointStats, Recovery};
pub use element::Element;
pub use graph::{Graph, RunControl, RunError, RunSummary};
pub use harness::Harness;
pub use watermark::BoundedOutOfOrderness;

pub(crate) use operator::wall_clock_ms;
