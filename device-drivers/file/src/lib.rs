//! Files: the `file` source and the `file` sink.
//!
//! The source ([`FileSourceConfig`], `[sources.NAME.file]`) reads a file of
//! JSON lines or CSV once, in file order, through the record codec, and
//! ends at its end; it can rewind to a checkpointed byte offset. The sink
//! ([`FileSinkConfig`], `[sinks.NAME.file]`) appends JSON lines in eddy's
//! record format, which the source reads back as the same records.
//!
//! ```toml
//! [sources.readings.file]
//! path = "readings.csv"
//! key_field = "device"
//! time_field = "ts"
//! time_format = "rfc3339"
//!
//! [sinks.results.file]
//! inputs = ["stats"]
//! path = "out/results.jsonl"
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod sink;
pub mod source;

pub use sink::{FileSink, FileSinkConfig};
pub use source::{FileDriver, FileSourceConfig};
