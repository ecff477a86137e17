//! Counting and dropping.

use eddy_sink::{Out, Sink, SinkError};

/// Counts records and drops them.
#[derive(Debug, Default)]
pub struct NullSink {
    /// Records seen.
    pub records: u64,
}

impl Sink for NullSink {
    fn write(&mut self, _out: &Out<'_>) -> Result<(), SinkError> {
        self.records += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
