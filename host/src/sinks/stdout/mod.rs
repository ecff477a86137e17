//! The `stdout` sink: JSON lines on standard output, as the file sink
//! writes them. When the reader of standard output goes away (`eddy run …
//! | head`), the run ends, as a Unix tool's would.

mod config;
mod sink;

pub use config::StdoutConfig;
pub use sink::StdoutSink;
