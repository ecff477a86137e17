//! What a pipeline writes in a `[sources.NAME.tcp]` table.

use std::time::Duration;

use eddy_codec::{CsvOptions, Decoding, Format, TimeFormat};
use eddy_driver::{Context, DriverError, Invalid, Kind, Source, SourceConfig, Spanned};
use serde::Deserialize;

use super::TcpSourceTask;

/// Records read from a TCP server eddy connects to: JSON lines, CSV lines,
/// or raw lines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSourceConfig {
    /// The server, `host:port`.
    pub address: Spanned<String>,
    /// How long a connection attempt may take, in ms.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// After this long without a byte from the server, in ms, the
    /// connection counts as lost and is made again. Default: wait forever.
    pub read_timeout_ms: Option<u64>,
    /// `json` (one JSON value per line), `csv` (the first line of each
    /// connection is the header, unless `csv.columns` names the columns) or
    /// `raw` (each line as a bytes field).
    #[serde(default = "default_format")]
    pub format: Format,
    /// The member or column holding the record key.
    #[serde(default = "eddy_codec::default_key_field")]
    pub key_field: String,
    /// The member or column holding the event time; empty for the time the
    /// line arrived.
    #[serde(default = "eddy_codec::default_time_field")]
    pub time_field: String,
    /// How times are written: `unix_ms`, `unix_s`, `unix_us`, `unix_ns` or `rfc3339`.
    #[serde(default)]
    pub time_format: TimeFormat,
    /// CSV options: `delimiter`, `columns`, `comment`.
    #[serde(default)]
    pub csv: CsvOptions,
}

impl Kind for TcpSourceConfig {
    const NAME: &'static str = "tcp";
    const ABOUT: &'static str = "records read from a TCP server as JSON, CSV or raw lines; reconnects after the server goes away";
}

impl TcpSourceConfig {
    /// What the codec needs.
    pub fn decoding(&self) -> Decoding {
        let mut decoding = Decoding::new(self.format, &self.key_field, &self.time_field);
        decoding.time_format = self.time_format;
        decoding.csv = self.csv.clone();
        decoding
    }
}

impl SourceConfig for TcpSourceConfig {
    fn validate(&self, _cx: &Context<'_>) -> Result<(), Invalid> {
        crate::address::check(self.address.get_ref()).map_err(|e| Invalid::at(&self.address, e))?;
        if self.connect_timeout_ms == 0 || self.read_timeout_ms == Some(0) {
            return Err(Invalid::new(
                "connect_timeout_ms and read_timeout_ms must be at least 1",
            ));
        }
        self.decoding().validate().map_err(Invalid::new)
    }

    fn open(&self, cx: &Context<'_>) -> Result<Source, DriverError> {
        Ok(Source::Task(Box::new(TcpSourceTask {
            address: self.address.get_ref().clone(),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            read_timeout: self.read_timeout_ms.map(Duration::from_millis),
            decoding: self.decoding(),
            origin: format!("{} (tcp://{})", cx.name, self.address.get_ref()),
        })))
    }
}

fn default_connect_timeout_ms() -> u64 {
    5000
}

fn default_format() -> Format {
    Format::Json
}
