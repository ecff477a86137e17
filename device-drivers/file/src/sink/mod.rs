//! The `file` sink: JSON lines appended to a file, in eddy's record format
//! (`id`, `output`, `key`, `time`, `fields`), which the file source reads back.

mod append;
mod config;

pub use append::FileSink;
pub use config::FileSinkConfig;
