//! What a pipeline writes in a `[sinks.NAME.file]` table.

use std::path::PathBuf;

use eddy_driver::{Context, Invalid, Kind, Spanned};
use eddy_sink::{OpenedSink, SinkConfig, SinkError};
use serde::Deserialize;

use super::FileSink;

/// A file records are appended to as JSON lines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The file, relative to the pipeline file; created (with its folder)
    /// at the first record.
    pub path: Spanned<PathBuf>,
}

impl Kind for FileSinkConfig {
    const NAME: &'static str = "file";
    const ABOUT: &'static str =
        "JSON lines appended to a file, cut back to the checkpointed length after a crash";
}

impl SinkConfig for FileSinkConfig {
    fn validate(&self, _cx: &Context<'_>) -> Result<(), Invalid> {
        if self.path.get_ref().as_os_str().is_empty() {
            return Err(Invalid::at(&self.path, "expected a file path"));
        }
        Ok(())
    }

    fn open(&self, cx: &Context<'_>) -> Result<OpenedSink, SinkError> {
        Ok(OpenedSink::Direct(Box::new(FileSink::new(
            &cx.resolve(self.path.get_ref()),
        ))))
    }
}
