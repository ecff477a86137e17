//! What a pipeline writes in a `[sinks.NAME.tcp]` table.

use std::num::NonZeroU64;
use std::time::Duration;

use eddy_driver::{Context, Invalid, Kind, Spanned};
use eddy_sink::{OpenedSink, SinkConfig, SinkError};
use serde::Deserialize;

use super::TcpSinkTask;

/// JSON lines written to a TCP server eddy connects to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSinkConfig {
    /// The server, `host:port`.
    pub address: Spanned<String>,
    /// How long a connection attempt may take, in ms.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: NonZeroU64,
    /// How long writing a batch (and, with acknowledgements, hearing back)
    /// may take, in ms, before the connection counts as lost.
    #[serde(default = "default_write_timeout_ms")]
    pub write_timeout_ms: NonZeroU64,
    /// Whether the server acknowledges: it answers each line it has taken
    /// with one line (any content), and a record leaves eddy's buffer only
    /// once acknowledged, so none is lost when the connection breaks
    /// (records sent again carry the same result id). Without, records
    /// written just before a connection breaks can be lost.
    #[serde(default)]
    pub acknowledgements: bool,
}

impl Kind for TcpSinkConfig {
    const NAME: &'static str = "tcp";
    const ABOUT: &'static str = "JSON lines written to a TCP server, optionally acknowledged; held and resent while it is down";
}

impl SinkConfig for TcpSinkConfig {
    fn validate(&self, _cx: &Context<'_>) -> Result<(), Invalid> {
        crate::address::check(self.address.get_ref()).map_err(|e| Invalid::at(&self.address, e))
    }

    fn open(&self, _cx: &Context<'_>) -> Result<OpenedSink, SinkError> {
        Ok(OpenedSink::Task(Box::new(TcpSinkTask::new(
            self.address.get_ref(),
            Duration::from_millis(self.connect_timeout_ms.get()),
            Duration::from_millis(self.write_timeout_ms.get()),
            self.acknowledgements,
        ))))
    }
}

fn default_connect_timeout_ms() -> NonZeroU64 {
    NonZeroU64::new(5000).unwrap_or(NonZeroU64::MIN)
}

fn default_write_timeout_ms() -> NonZeroU64 {
    NonZeroU64::new(10_000).unwrap_or(NonZeroU64::MIN)
}
