//! Entries of the ingest journal: what a source read, as it read it.

use serde::{Deserialize, Serialize};

/// One poll of one source: its records, and where the driver stood after them.
///
/// `R` is `&[Record]` when writing and `Vec<Record>` when reading back.
#[derive(Debug, Serialize, Deserialize)]
pub struct JournalEntry<R> {
    /// The source's name.
    pub source: String,
    /// The records, in the order the driver gave them.
    pub records: R,
    /// The driver's position after them, if it has positions.
    pub position: Option<Vec<u8>>,
    /// Whether the source ended with this poll.
    pub ended: bool,
}
