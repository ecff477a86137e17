//! The `memory` sink: records kept in memory, for tests and embedding.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use eddy_abi::Record;

use super::Sink;

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
    fn write(&mut self, output: &str, _id: &str, record: &Record) -> io::Result<()> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((output.to_owned(), record.clone()));
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
