//! What a pipeline writes in a `[sources.NAME.file]` table.

use std::path::PathBuf;

use serde::Deserialize;

/// A file to read records from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file, relative to the pipeline file.
    pub path: PathBuf,
    /// Its format. Default: from the extension (`.csv` is CSV, anything else JSON lines).
    pub format: Option<FileFormat>,
    /// The member or column holding the record key.
    #[serde(default = "default_key_field")]
    pub key_field: String,
    /// The member or column holding the event time, in ms since the Unix epoch.
    #[serde(default = "default_time_field")]
    pub time_field: String,
}

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// One JSON object per line. Members other than the key and time become
    /// fields; a `fields` object's members do too, so eddy's own JSON-lines
    /// output can be read back.
    Jsonl,
    /// Comma-separated values with a header row naming the columns.
    Csv,
}

impl FileConfig {
    /// The format, from the config or the extension.
    pub fn format(&self) -> FileFormat {
        self.format
            .unwrap_or_else(|| match self.path.extension().and_then(|e| e.to_str()) {
                Some(e) if e.eq_ignore_ascii_case("csv") => FileFormat::Csv,
                _ => FileFormat::Jsonl,
            })
    }
}

fn default_key_field() -> String {
    "key".into()
}

fn default_time_field() -> String {
    "time".into()
}
