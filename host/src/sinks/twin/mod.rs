//! The `twin` sink: the latest values of each device, reported on the
//! device's twin (a shadow per record key), at most every
//! `min_interval_ms`. Needs the pipeline's `[twin]` table.

use std::sync::Arc;

use eddy_driver::{Context, Invalid, Kind, Value};
use eddy_sink::{OpenedSink, Out, Sink, SinkConfig, SinkError};
use serde::Deserialize;
use serde_json::Map;

use crate::twin::reports::TwinReports;

/// Reports the latest values of its inputs on each device's twin, under
/// the output's name (`"stats": {"temperature_max": 41.5}`), with
/// `last_seen` (the latest record's time).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwinSinkConfig {
    /// The fields reported; default: every field.
    #[serde(default)]
    pub fields: Vec<String>,
    /// A device's twin is updated at most this often, in ms (default 5000).
    #[serde(default = "default_min_interval_ms")]
    pub min_interval_ms: u64,
}

fn default_min_interval_ms() -> u64 {
    5_000
}

impl Kind for TwinSinkConfig {
    const NAME: &'static str = "twin";
    const ABOUT: &'static str =
        "the latest values of each device reported on its device twin (needs [twin])";
}

impl SinkConfig for TwinSinkConfig {
    fn validate(&self, _cx: &Context<'_>) -> Result<(), Invalid> {
        Ok(())
    }

    fn open(&self, cx: &Context<'_>) -> Result<OpenedSink, SinkError> {
        let reports = cx.services.get::<TwinReports>().ok_or_else(|| {
            SinkError::Config("a twin sink needs the pipeline's [twin] table".into())
        })?;
        reports.report_every(self.min_interval_ms);
        Ok(OpenedSink::Direct(Box::new(TwinSink {
            fields: self.fields.clone(),
            reports,
        })))
    }
}

/// Notes the latest values for the twin sync.
struct TwinSink {
    fields: Vec<String>,
    reports: Arc<TwinReports>,
}

impl Sink for TwinSink {
    fn write(&mut self, out: &Out<'_>) -> Result<(), SinkError> {
        let record = out.record;
        let mut fields = Map::new();
        for (name, value) in &record.fields {
            if !self.fields.is_empty() && !self.fields.iter().any(|f| **f == **name) {
                continue;
            }
            let json = match value {
                Value::F64(f) => serde_json::Number::from_f64(*f).map(serde_json::Value::Number),
                Value::I64(i) => Some(serde_json::Value::from(*i)),
                Value::Bool(b) => Some(serde_json::Value::Bool(*b)),
                Value::Str(s) => Some(serde_json::Value::from(&**s)),
                Value::Bytes(_) => None,
            };
            if let Some(json) = json {
                fields.insert(name.to_string(), json);
            }
        }
        if !fields.is_empty() {
            self.reports
                .note(&record.key, out.output, fields, record.time);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
