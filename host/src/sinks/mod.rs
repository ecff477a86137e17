//! Sinks: where a pipeline's results go.
//!
//! Each sink kind lives in its own module; [`build`] is the one place that
//! maps a `[sinks.NAME]` table to one. The dead-letter log ([`DeadLetter`]) is
//! not configured as a sink: every pipeline has one.

mod append_file;
mod dead_letter;
mod file;
mod memory;
mod null;
mod stdout;

use std::io;

use eddy_abi::Record;

pub use dead_letter::{DeadLetter, DeadLetterInput};
pub use file::FileSink;
pub use memory::MemorySink;
pub use null::NullSink;
pub use stdout::StdoutSink;

use crate::config::SinkType;

/// A destination for records.
pub trait Sink: Send {
    /// Writes one record that came from the node output `output`, with its
    /// result id (see `eddy_abi`'s "Result ids").
    fn write(&mut self, output: &str, id: &str, record: &Record) -> io::Result<()>;
    /// Makes everything written so far durable or visible.
    fn flush(&mut self) -> io::Result<()>;

    /// At a checkpoint: makes everything written so far durable and returns
    /// the position after it (a file's length, an outbox's sequence number),
    /// or `None` for a sink that cannot go back (stdout). The outbox of the
    /// uplink implements this, so that checkpoints commit its position too.
    fn commit(&mut self) -> io::Result<Option<u64>> {
        self.flush()?;
        Ok(None)
    }

    /// After a crash: drops what was written after `position`, which
    /// [`Sink::commit`] returned, because replay writes it again.
    fn rewind(&mut self, _position: u64) -> io::Result<()> {
        Ok(())
    }
}

/// Where a configured sink writes.
pub enum SinkTarget {
    /// A sink of its own.
    Writer(Box<dyn Sink>),
    /// The pipeline's dead-letter log, shared with failed batches.
    DeadLetter,
}

/// Builds the sink a config asks for; `path` is already resolved.
pub fn build(kind: SinkType, path: Option<&std::path::Path>) -> io::Result<SinkTarget> {
    Ok(SinkTarget::Writer(match (kind, path) {
        (SinkType::Stdout, _) => Box::new(StdoutSink::new()),
        (SinkType::File, Some(path)) => Box::new(FileSink::new(path)),
        (SinkType::File, None) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a file sink needs a path",
            ));
        }
        (SinkType::Null, _) => Box::new(NullSink::default()),
        (SinkType::DeadLetter, _) => return Ok(SinkTarget::DeadLetter),
    }))
}

/// Writes a record as one JSON line.
pub(crate) fn write_json_line(
    out: &mut impl io::Write,
    output: &str,
    id: &str,
    record: &Record,
) -> io::Result<()> {
    serde_json::to_writer(
        &mut *out,
        &crate::json::JsonRecord {
            record,
            output: Some(output),
            id: Some(id),
        },
    )?;
    out.write_all(b"\n")
}
