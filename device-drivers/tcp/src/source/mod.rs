//! The `tcp` source: eddy connects to a server and reads records from it,
//! one per line (JSON, CSV or raw), through the record codec. A live
//! source: it cannot go back, so the ingest journal keeps what it read. When
//! the connection fails or the server closes it, the host connects again
//! after a backoff, and the source shows as `retrying` meanwhile.

mod config;
mod task;

pub use config::TcpSourceConfig;
pub use task::TcpSourceTask;
