//! Opening sources, and supervising the ones that run as async tasks.

use std::sync::Arc;

use eddy_driver::{
    Context, Doorbell, Driver, DriverError, Source, SourceEvents, SourceOutput, SourceTask,
};

use super::{Backoff, Health};
use crate::config::RetryConfig;

/// Records a task may have in flight to the pipeline thread before it
/// waits (a larger batch goes alone): four batches of the default size.
const CHANNEL_RECORDS: usize = 4096;

/// What opening components needs of the runtime.
#[derive(Clone)]
pub(crate) struct IoContext {
    /// The async runtime tasks run on.
    pub(crate) runtime: tokio::runtime::Handle,
    /// Rung when a task has records for the pipeline thread.
    pub(crate) doorbell: Doorbell,
}

/// Opens a source: a polled driver as it is, a task behind a channel whose
/// I/O starts at the first poll and is supervised on the runtime. Says
/// whether the pipeline thread polls the driver itself (and so reports its
/// health).
pub(crate) fn open(
    settings: &dyn eddy_driver::SourceConfig,
    cx: &Context<'_>,
    io: Option<&IoContext>,
    health: &Arc<Health>,
    retry: RetryConfig,
) -> Result<(Box<dyn Driver>, bool), DriverError> {
    match settings.open(cx)? {
        Source::Polled(driver) => Ok((driver, true)),
        Source::Task(task) => {
            let io = io.ok_or_else(|| {
                DriverError::Config(
                    "this source needs the async runtime, which this run has not".into(),
                )
            })?;
            let runtime = io.runtime.clone();
            let supervised = health.clone();
            let start: eddy_driver::Starter = Box::new(move |out, resume| {
                runtime.spawn(supervise(task, out, resume, supervised, retry));
            });
            let events = Arc::new(Events(health.clone()));
            let driver = eddy_driver::channel(CHANNEL_RECORDS, io.doorbell.clone(), events, start);
            Ok((Box::new(driver), false))
        }
    }
}

/// Tells a task's health that it reached its peer.
struct Events(Arc<Health>);

impl SourceEvents for Events {
    fn connected(&self) {
        self.0.up();
    }

    fn device_polled(&self, device: &str, fault: Option<&str>) {
        self.0.device_polled(device, fault);
    }
}

/// Runs a task; after a failure, waits out a backoff and runs it again.
/// Ends when the task's input ends or the pipeline stops.
async fn supervise(
    mut task: Box<dyn SourceTask>,
    mut out: SourceOutput,
    resume: Option<Vec<u8>>,
    health: Arc<Health>,
    retry: RetryConfig,
) {
    let mut backoff = Backoff::new(retry);
    let mut resume = resume;
    loop {
        let sent = out.sent();
        let result = task.run(&mut out, resume.as_deref()).await;
        // After the first run the task knows where it got to.
        resume = None;
        if out.is_closed() {
            return;
        }
        match result {
            Ok(()) => {
                health.ended();
                return;
            }
            Err(e) => {
                // A connection that brought records worked: the next
                // failure waits from the start again. One that was taken and
                // dropped at once (a proxy without its backend) does not.
                if out.sent() > sent {
                    backoff.reset();
                }
                health
                    .pause(
                        &mut backoff,
                        &e.to_string(),
                        e.is_transient(),
                        e.retry_after(),
                    )
                    .await;
            }
        }
    }
}
