//! The `file` sink: JSON lines appended to a file, in eddy's record format
//! (`id`, `output`, `key`, `time`, `fields`), which the file source reads back.

mod config;
mod append;

pub use config::FileSinkConfig;
pub use append::FileSink;
