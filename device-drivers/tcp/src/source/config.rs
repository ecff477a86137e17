//! What a pipeline writes in a `[sources.NAME.tcp]` table.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
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
    pub connect_timeout_ms: NonZeroU64,
    /// After this long without a byte from the server, in ms, the
    /// connection counts as lost and is made again. Default: wait forever.
    pub read_timeout_ms: Option<NonZeroU64>,
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
    pub csv: Option<Spanned<CsvOptions>>,
    /// JSON: fields picked by JSON Pointer, e.g. `{ temperature_c =
    /// "/env/temp" }`; the record's fields are then these alone.
    /// `key_field` and `time_field` starting with `/` are pointers too.
    #[serde(default)]
    pub json_fields: BTreeMap<String, String>,
}

impl Kind for TcpSourceConfig {
    const NAME: &'static str = "tcp";
    const ABOUT: &'static str = "records read from a TCP server as JSON, CSV or raw lines; reconnects after the server goes away";
}

impl TcpSourceConfig {
    /// What the codec needs.
    pub fn decoding(&self) -> Decoding {
        Decoding::with(
            self.format,
            &self.key_field,
            &self.time_field,
            self.time_format,
            self.csv.as_ref().map(|c| c.get_ref()),
        )
        .picking(&self.json_fields)
    }
}

impl SourceConfig for TcpSourceConfig {
    fn validate(&self, _cx: &Context<'_>) -> Result<(), Invalid> {
        crate::address::check(self.address.get_ref()).map_err(|e| Invalid::at(&self.address, e))?;
        if let Some(csv) = &self.csv {
            csv.get_ref()
                .check_columns(&self.key_field, &self.time_field)
                .map_err(|e| Invalid::at(csv, e))?;
        }
        self.decoding().validate().map_err(Invalid::new)
    }

    fn open(&self, cx: &Context<'_>) -> Result<Source, DriverError> {
        Ok(Source::Task(Box::new(TcpSourceTask {
            address: self.address.get_ref().clone(),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms.get()),
            read_timeout: self
                .read_timeout_ms
                .map(|ms| Duration::from_millis(ms.get())),
            decoding: self.decoding(),
            origin: format!("{} (tcp://{})", cx.name, self.address.get_ref()),
        })))
    }
}

fn default_connect_timeout_ms() -> NonZeroU64 {
    NonZeroU64::new(5000).unwrap_or(NonZeroU64::MIN)
}

fn default_format() -> Format {
    Format::Json
}
