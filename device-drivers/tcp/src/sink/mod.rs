//! The `tcp` sink: eddy connects to a server and writes records as JSON
//! lines, in eddy's record format with result ids. While the server is
//! down, records wait in the sink's buffer, in order, and are written when
//! it is back; with `acknowledgements`, a batch leaves the buffer only once
//! the server has answered each line, so nothing is lost (at least once).

mod config;
mod task;

pub use config::TcpSinkConfig;
pub use task::TcpSinkTask;
