//! Latest values for device twins: `twin` sinks note them as results pass,
//! the twin sync takes them at the sinks' pace.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};

/// Reported changes waiting for the sync, by device (record key).
#[derive(Debug)]
pub struct TwinReports {
    latest: Mutex<BTreeMap<String, Map<String, Value>>>,
    /// The shortest `min_interval_ms` of the twin sinks.
    every_ms: AtomicU64,
}

impl Default for TwinReports {
    fn default() -> Self {
        TwinReports {
            latest: Mutex::default(),
            every_ms: AtomicU64::new(u64::MAX),
        }
    }
}

impl TwinReports {
    /// A sink reports at most every `ms`.
    pub fn report_every(&self, ms: u64) {
        self.every_ms.fetch_min(ms.max(1), Ordering::Relaxed);
    }

    /// How often the sync takes reports; `None` without a twin sink.
    pub fn interval(&self) -> Option<Duration> {
        match self.every_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// The latest `fields` of `output` for `device`, seen at `time`.
    pub fn note(&self, device: &str, output: &str, fields: Map<String, Value>, time: i64) {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let patch = latest.entry(device.to_owned()).or_default();
        match patch.get_mut(output) {
            Some(Value::Object(old)) => old.extend(fields),
            _ => {
                patch.insert(output.to_owned(), Value::Object(fields));
            }
        }
        let newer = patch
            .get("last_seen")
            .and_then(Value::as_i64)
            .is_none_or(|t| t < time);
        if newer {
            patch.insert("last_seen".into(), Value::from(time));
        }
    }

    /// Everything noted since the last call.
    pub fn take(&self) -> BTreeMap<String, Map<String, Value>> {
        std::mem::take(&mut *self.latest.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
