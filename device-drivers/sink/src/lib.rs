//! The sink contract: where a pipeline's results go.
//!
//! A sink kind lives in a folder of its own (a crate beside this one for a
//! protocol family, or a folder of the host for the built-in ones). Its
//! settings type is what a pipeline file's `[sinks.NAME.KIND]` table
//! deserializes into; it implements [`eddy_driver::Kind`] (the table's
//! name) and [`SinkConfig`]: validate without touching the outside world
//! (`eddy check`), then open (`eddy run`). An opened sink ([`OpenedSink`])
//! is either
//!
//! - a [`Sink`] the pipeline thread writes to directly (standard output, a
//!   file), or
//! - a [`SinkTask`] that delivers batches on the async runtime (a network
//!   peer), while the host keeps its records in a bounded buffer, in order,
//!   with an explicit, counted policy for when it is full;
//! - a [`SinkTask`] delivering to a broker (MQTT, Kafka) from the host's
//!   durable outbox, which keeps results on disk until the broker has
//!   acknowledged them.
//!
//! Errors say what to do with the records ([`SinkError`]): keep and retry,
//! dead-letter, fail the sink, or end the run. The host owns retries and
//! backoff; a sink never loops on errors itself.
//!
//! [`AppendFile`] is what sinks writing local files share: a file opened on
//! first write (so `eddy check` creates nothing), whose length a checkpoint
//! records and a restore cuts back to.
//!
//! ```
//! use eddy_sink::{Out, Sink, SinkError};
//!
//! /// Counts what it is given.
//! #[derive(Default)]
//! struct Count(u64);
//!
//! impl Sink for Count {
//!     fn write(&mut self, _out: &Out<'_>) -> Result<(), SinkError> {
//!         self.0 += 1;
//!         Ok(())
//!     }
//!     fn flush(&mut self) -> Result<(), SinkError> {
//!         Ok(())
//!     }
//! }
//! ```

#![warn(missing_docs, unreachable_pub)]

mod append_file;
mod config;
mod error;
mod sink;
mod topic;

pub use append_file::AppendFile;
pub use config::{OpenedSink, SinkConfig};
pub use error::SinkError;
pub use sink::{Out, OwnedOut, Refused, Sink, SinkTask};
pub use topic::{Message, TopicTemplate};
