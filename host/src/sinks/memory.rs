//! A sink that keeps records in memory, for tests and for embedding eddy as
//! a library. Not a kind a pipeline file can name.

use std::sync::{Arc, Mutex, PoisonError};

use eddy_abi::Record;
use eddy_sink::{Out, Sink, SinkError};

/// Keeps every record with the output it came from. Clones share the records,
/// so a clone kept outside a graph sees what the graph wrote.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    records: Arc<Mutex<Vec<(String, Record)>>>,
}

impl MemorySink {
    /// The records written so far, as `(output, record)`.
    pub fn records(&self) -> Vec<(String, Record)> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Sink for MemorySink {
    fn write(&mut self, out: &Out<'_>) -> Result<(), SinkError> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((out.output.to_owned(), out.record.clone()));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
