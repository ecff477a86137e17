//! The `null` sink: counts records and drops them.

use std::io;

use eddy_abi::Record;

use super::Sink;

/// Counts records and drops them; for benchmarks and dry runs.
#[derive(Debug, Default)]
pub struct NullSink {
    /// Records seen.
    pub records: u64,
}

impl Sink for NullSink {
    fn write(&mut self, _output: &str, _id: &str, _record: &Record) -> io::Result<()> {
        self.records += 1;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
