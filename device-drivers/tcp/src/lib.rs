//! TCP: the `tcp` source and the `tcp` sink, both clients of a server.
//!
//! Both run as tasks on the host's async runtime, in the handle-and-event-
//! loop shape of every network component: the host starts them, and after
//! a failure (refused, timed out, closed) waits out a backoff and starts
//! them again, showing them as `retrying` in `eddy status` meanwhile. The
//! source ([`TcpSourceConfig`]) reads lines through the record codec and
//! hands records over a bounded channel, so a lagging pipeline slows the
//! reading down rather than losing anything. The sink ([`TcpSinkConfig`])
//! writes JSON lines; with acknowledgements a record leaves eddy only once
//! the server has answered for it.
//!
//! ```toml
//! [sources.plant]
//! idle_timeout_ms = 30_000          # while the server is down, event time goes on
//! [sources.plant.tcp]
//! address = "10.0.0.5:9000"
//! format = "csv"
//!
//! [sinks.collector]
//! inputs = ["stats"]
//! buffer = { max_records = 50_000, when_full = "drop_oldest" }
//! [sinks.collector.tcp]
//! address = "collector.site:9100"
//! acknowledgements = true
//! ```

#![warn(missing_docs, unreachable_pub)]

mod address;
pub mod sink;
pub mod source;

pub use sink::{TcpSinkConfig, TcpSinkTask};
pub use source::{TcpSourceConfig, TcpSourceTask};
