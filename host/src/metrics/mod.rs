//! The process's metrics, for `GET /metrics`: recorded from the first
//! moment, rendered in Prometheus's text format.
//!
//! The Prometheus recorder's clock calibrates itself when it is built: a
//! busy loop of a millisecond on a quiet machine, up to 200 ms when its
//! thread is preempted (on a 2-core gateway starting a pipeline, often). A
//! pipeline does not wait for it: a [`deferred`] recorder is installed at
//! once and keeps what is recorded meanwhile, in order, until the built
//! recorder takes it over.

mod deferred;

use std::sync::Arc;
use std::time::Duration;

use deferred::{Deferred, Installed};
use metrics_exporter_prometheus::PrometheusBuilder;

/// How long a render waits for the recorder to be built: longer than the
/// calibration may take.
const BUILD_WAIT: Duration = Duration::from_secs(1);

/// The nice value of the thread that builds the recorder: it is not on the
/// way to the first result, and yields to what is.
const BUILD_NICE: i32 = 10;

/// What the process's recorder recorded, rendered for `GET /metrics`.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<Deferred>,
}

impl Metrics {
    /// Installs the process's recorder and builds the Prometheus recorder
    /// it hands over to on a thread of its own (here, if that thread cannot
    /// start); `None`, with a warning, if another recorder was installed
    /// first.
    pub fn install() -> Option<Metrics> {
        let recorder = Arc::new(Deferred::default());
        if let Err(e) = metrics::set_global_recorder(Installed(recorder.clone())) {
            tracing::warn!("no metrics: {e}");
            return None;
        }
        let building = recorder.clone();
        let spawned = std::thread::Builder::new()
            .name("eddy-metrics".into())
            .spawn(move || {
                crate::runtime::lower_thread_priority(BUILD_NICE);
                building.take_over(PrometheusBuilder::new().build_recorder());
            });
        if let Err(e) = spawned {
            tracing::warn!("the metrics recorder is built before the pipeline starts: {e}");
            recorder.take_over(PrometheusBuilder::new().build_recorder());
        }
        Some(Metrics { recorder })
    }

    /// The metrics in Prometheus's text format, once the recorder is built
    /// (it waits up to a second for it); `None` if it is not.
    pub async fn render(&self) -> Option<String> {
        let deadline = tokio::time::Instant::now() + BUILD_WAIT;
        loop {
            if let Some(handle) = self.recorder.handle() {
                handle.run_upkeep();
                return Some(handle.render());
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
