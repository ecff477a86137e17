//! What a pipeline writes in a `[sinks.NAME.stdout]` table.

use eddy_driver::{Context, Invalid, Kind};
use eddy_sink::{OpenedSink, SinkConfig, SinkError};
use serde::Deserialize;

use super::StdoutSink;

/// Records as JSON lines on standard output. No settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {}

impl Kind for StdoutConfig {
    const NAME: &'static str = "stdout";
    const ABOUT: &'static str =
        "JSON lines on standard output; the run ends when its reader goes away";
}

impl SinkConfig for StdoutConfig {
    fn validate(&self, _cx: &Context<'_>) -> Result<(), Invalid> {
        Ok(())
    }

    fn open(&self, _cx: &Context<'_>) -> Result<OpenedSink, SinkError> {
        Ok(OpenedSink::Direct(Box::new(StdoutSink::new())))
    }
}
