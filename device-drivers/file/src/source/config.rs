//! What a pipeline writes in a `[sources.NAME.file]` table.

use std::collections::BTreeMap;
use std::path::PathBuf;

use eddy_codec::{CsvOptions, Decoding, Format, TimeFormat};
use eddy_driver::{Context, DriverError, Invalid, Kind, Source, SourceConfig, Spanned};
use serde::Deserialize;

use super::FileDriver;

/// A file to read records from, once, in file order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// The file, relative to the pipeline file.
    pub path: Spanned<PathBuf>,
    /// `json` (JSON lines; `jsonl` says the same) or `csv` (with a header
    /// row, unless `csv.columns` names the columns). Default: from the
    /// extension, `.csv` is CSV and anything else JSON lines.
    pub format: Option<FileFormat>,
    /// The member or column holding the record key.
    #[serde(default = "eddy_codec::default_key_field")]
    pub key_field: String,
    /// The member or column holding the event time; empty for the time the
    /// line was read.
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

/// How a file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// One JSON value per line.
    #[serde(alias = "jsonl")]
    Json,
    /// Comma-separated values.
    Csv,
}

impl Kind for FileSourceConfig {
    const NAME: &'static str = "file";
    const ABOUT: &'static str =
        "records from a file of JSON lines or CSV, read once in file order; ends at its end";
}

impl FileSourceConfig {
    /// The format, from the settings or the extension.
    pub fn format(&self) -> Format {
        let format = self.format.unwrap_or_else(|| {
            match self.path.get_ref().extension().and_then(|e| e.to_str()) {
                Some(e) if e.eq_ignore_ascii_case("csv") => FileFormat::Csv,
                _ => FileFormat::Json,
            }
        });
        match format {
            FileFormat::Json => Format::Json,
            FileFormat::Csv => Format::Csv,
        }
    }

    /// What the codec needs.
    pub fn decoding(&self) -> Decoding {
        Decoding::with(
            self.format(),
            &self.key_field,
            &self.time_field,
            self.time_format,
            self.csv.as_ref().map(|c| c.get_ref()),
        )
        .picking(&self.json_fields)
    }
}

impl SourceConfig for FileSourceConfig {
    fn validate(&self, _cx: &Context<'_>) -> Result<(), Invalid> {
        if self.path.get_ref().as_os_str().is_empty() {
            return Err(Invalid::at(&self.path, "expected a file path"));
        }
        if let Some(csv) = &self.csv {
            csv.get_ref()
                .check_columns(&self.key_field, &self.time_field)
                .map_err(|e| Invalid::at(csv, e))?;
        }
        self.decoding().validate().map_err(Invalid::new)
    }

    fn open(&self, cx: &Context<'_>) -> Result<Source, DriverError> {
        let path = cx.resolve(self.path.get_ref());
        Ok(Source::Polled(Box::new(FileDriver::open(
            &path,
            self.decoding(),
        )?)))
    }

    fn rewindable(&self) -> bool {
        true
    }
}
