//! What a pipeline writes in a `[sinks.NAME.dead_letter]` table.

use eddy_driver::{Context, Invalid, Kind};
use eddy_sink::{OpenedSink, SinkConfig, SinkError};
use serde::Deserialize;

use super::{DeadLetter, DeadLetterSink};

/// Records routed to the pipeline's dead-letter log, with the output they
/// came from as the reason. No settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {}

impl Kind for DeadLetterConfig {
    const NAME: &'static str = "dead_letter";
    const ABOUT: &'static str =
        "records routed to the pipeline's dead-letter log, with the output they came from";
}

impl SinkConfig for DeadLetterConfig {
    fn validate(&self, _cx: &Context<'_>) -> Result<(), Invalid> {
        Ok(())
    }

    fn open(&self, cx: &Context<'_>) -> Result<OpenedSink, SinkError> {
        let log = cx.services.get::<DeadLetter>().ok_or_else(|| {
            SinkError::Config("this pipeline has no dead-letter log to write to".into())
        })?;
        Ok(OpenedSink::Direct(Box::new(DeadLetterSink::new(
            cx.name,
            (*log).clone(),
        ))))
    }
}
