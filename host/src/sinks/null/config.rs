//! What a pipeline writes in a `[sinks.NAME.null]` table.

use eddy_driver::{Context, Invalid, Kind};
use eddy_sink::{OpenedSink, SinkConfig, SinkError};
use serde::Deserialize;

use super::NullSink;

/// Records counted and dropped. No settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullConfig {}

impl Kind for NullConfig {
    const NAME: &'static str = "null";
    const ABOUT: &'static str = "records counted and dropped, for benchmarks and dry runs";
}

impl SinkConfig for NullConfig {
    fn validate(&self, _cx: &Context<'_>) -> Result<(), Invalid> {
        Ok(())
    }

    fn open(&self, _cx: &Context<'_>) -> Result<OpenedSink, SinkError> {
        Ok(OpenedSink::Direct(Box::new(NullSink::default())))
    }
}
