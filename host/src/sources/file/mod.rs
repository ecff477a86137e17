//! The `file` source: records from a file of JSON lines or CSV, read once in
//! file order. It is bounded: when the file is read, the source ends and the
//! end-of-input watermark fires every remaining window.

mod config;
mod driver;

pub use config::{FileConfig, FileFormat};
pub use driver::FileDriver;
