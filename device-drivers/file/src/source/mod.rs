//! The `file` source: records from a file of JSON lines or CSV, read once in
//! file order through the record codec. It is bounded: at the end of the
//! file the source ends, and the end-of-input watermark fires every
//! remaining window. It can rewind, so a restore reads on from the
//! checkpointed byte offset and needs no journal.

mod config;
mod driver;

pub use config::{FileFormat, FileSourceConfig};
pub use driver::FileDriver;
