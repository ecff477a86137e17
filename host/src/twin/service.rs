//! The sync loop of this host's twin: a thin I/O shell around
//! [`Shadow`] on an MQTT [`Link`], which applies desired params to the
//! running pipeline and reports the host's status.

use std::sync::mpsc::Sender;
use std::time::Duration;

use eddy_driver::Doorbell;
use eddy_driver_mqtt::{Link, LinkEvent};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::config::TwinConfig;
use super::local::LocalTwins;
use super::shadow::{Action, Notice, Shadow};
use super::topics::ShadowId;
use crate::dataflow::control::{PipelineStatus, Request};

/// How long the pipeline may take to answer a request.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where the twin sync reaches the pipeline.
#[derive(Clone)]
pub struct PipelineLink {
    /// Requests to the pipeline's thread.
    pub requests: Sender<Request>,
    /// Wakes the pipeline to serve them.
    pub doorbell: Doorbell,
}

impl PipelineLink {
    fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> oneshot::Receiver<T> {
        let (reply, answer) = oneshot::channel();
        let _ = self.requests.send(make(reply));
        self.doorbell.ring();
        answer
    }
}

/// Params changes asked of the pipeline, whose answers are awaited.
type ParamsAnswers = Vec<(String, Value, oneshot::Receiver<Result<(), String>>)>;

/// Asks the pipeline to run with the desired `params` of `desired` (all
/// of them, or only the operators `only` names).
fn ask_params(
    pipeline: &PipelineLink,
    desired: &Map<String, Value>,
    only: Option<&Map<String, Value>>,
) -> ParamsAnswers {
    let Some(Value::Object(params)) = desired.get("params") else {
        return Vec::new();
    };
    params
        .iter()
        .filter(|(op, _)| only.is_none_or(|o| o.contains_key(*op)))
        .map(|(operator, value)| {
            let overrides = match value {
                Value::Object(map) => map.clone(),
                _ => Map::new(),
            };
            let answer = pipeline.ask(|reply| Request::SetParams {
                operator: operator.clone(),
                overrides,
                reply,
            });
            (operator.clone(), value.clone(), answer)
        })
        .collect()
}

/// The twin of this host, running.
pub struct TwinSync {
    shadow: Shadow,
    link: Link,
    local: LocalTwins,
    pipeline: PipelineLink,
    report_every: Duration,
    subscriptions_left: usize,
}

impl TwinSync {
    /// Makes the sync for `config`, with the twin's local copy; queues the
    /// desired params kept from the last run, so that the pipeline runs
    /// with them from its first batch. Connects once spawned.
    pub fn start(
        config: &TwinConfig,
        base_dir: &std::path::Path,
        local: LocalTwins,
        pipeline: PipelineLink,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(), eddy_driver::Invalid> {
        let id = config.shadow_id();
        let link = Link::open(&config.broker, base_dir)?;
        let saved = local.load(&id);
        let first = ask_params(&pipeline, &saved.desired, None);
        let shadow = Shadow::new(id, &config.broker.client_id, saved);
        let sync = TwinSync {
            shadow,
            link,
            local,
            pipeline,
            report_every: Duration::from_millis(config.report_interval_ms.max(100)),
            subscriptions_left: 0,
        };
        runtime.spawn(sync.run(first));
        Ok(())
    }

    fn id(&self) -> &ShadowId {
        self.shadow.id()
    }

    fn save(&self) {
        if let Err(e) = self.local.save(self.id(), self.shadow.saved()) {
            tracing::error!(twin = %self.id(), "the twin's local copy cannot be written: {e}");
        }
    }

    fn carry_out(&mut self, actions: Vec<Action>) {
        for action in actions {
            let result = match action {
                Action::Subscribe(filters) => {
                    self.subscriptions_left = filters.len();
                    self.link.subscribe(&filters)
                }
                Action::Publish { topic, payload } => self.link.publish(&topic, payload),
            };
            if let Err(e) = result {
                tracing::warn!(twin = %self.id(), "twin request not queued: {e}");
            }
        }
    }

    /// Reports changes (a patch).
    fn report(&mut self, patch: &Map<String, Value>) {
        if patch.is_empty() {
            return;
        }
        let actions = self.shadow.report(patch, now_ms());
        self.save();
        self.carry_out(actions);
    }

    /// Waits for the pipeline's answers to params changes and reports them.
    async fn answered(&mut self, answers: ParamsAnswers) {
        let mut params = Map::new();
        let mut rejected = Map::new();
        for (operator, value, answer) in answers {
            let result = match tokio::time::timeout(ANSWER_WITHIN, answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err("the pipeline has stopped".into()),
                Err(_) => Err(format!(
                    "the pipeline did not answer within {} s",
                    ANSWER_WITHIN.as_secs()
                )),
            };
            match result {
                Ok(()) => {
                    params.insert(operator.clone(), value);
                    rejected.insert(operator, Value::Null);
                }
                Err(reason) => {
                    rejected.insert(operator, json!({ "reason": reason, "value": value }));
                }
            }
        }
        let mut patch = Map::new();
        if !params.is_empty() {
            patch.insert("params".into(), Value::Object(params));
        }
        if !rejected.is_empty() {
            patch.insert("rejected".into(), json!({ "params": rejected }));
        }
        self.report(&patch);
    }

    /// The host's status as a reported patch.
    async fn status(pipeline: PipelineLink) -> Option<Map<String, Value>> {
        let answer = pipeline.ask(Request::Status);
        let status: PipelineStatus = tokio::time::timeout(ANSWER_WITHIN, answer)
            .await
            .ok()?
            .ok()?;
        let operators: Map<String, Value> = status
            .operators
            .iter()
            .map(|o| {
                (
                    o.name.clone(),
                    json!({
                        "plugin": o.plugin,
                        "version": o.version,
                        "quarantined": o.quarantined,
                    }),
                )
            })
            .collect();
        let outboxes: Map<String, Value> = status
            .sinks
            .iter()
            .filter_map(|s| {
                let outbox = s.outbox.as_ref()?;
                Some((
                    s.name.clone(),
                    json!({ "entries": outbox.entries, "bytes": outbox.bytes }),
                ))
            })
            .collect();
        let mut patch = Map::new();
        patch.insert(
            "eddy".into(),
            json!({ "version": env!("CARGO_PKG_VERSION"), "pipeline": status.pipeline }),
        );
        patch.insert("operators".into(), Value::Object(operators));
        if !outboxes.is_empty() {
            patch.insert("outbox".into(), Value::Object(outboxes));
        }
        Some(patch)
    }

    async fn run(mut self, first: ParamsAnswers) {
        self.answered(first).await;
        let mut report = tokio::time::interval(self.report_every);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut backoff = Duration::from_millis(200);
        loop {
            tokio::select! {
                event = self.link.poll() => match event {
                    Ok(event) => {
                        backoff = Duration::from_millis(200);
                        self.event(event).await;
                    }
                    Err(e) => {
                        self.shadow.disconnected();
                        tracing::warn!(twin = %self.id(), peer = self.link.peer(), "twin sync: {e}; connecting again in {} ms", backoff.as_millis());
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                },
                _ = report.tick() => {
                    if let Some(patch) = Self::status(self.pipeline.clone()).await {
                        self.report(&patch);
                    }
                }
                _ = tick.tick() => {
                    let actions = self.shadow.tick(now_ms());
                    self.carry_out(actions);
                }
            }
        }
    }

    async fn event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Connected => {
                tracing::info!(twin = %self.id(), peer = self.link.peer(), "twin sync connected");
                let actions = self.shadow.connected();
                self.carry_out(actions);
            }
            LinkEvent::Subscribed(result) => {
                if let Err(e) = result {
                    tracing::warn!(twin = %self.id(), "twin sync: {e}");
                }
                self.subscriptions_left = self.subscriptions_left.saturating_sub(1);
                if self.subscriptions_left == 0 {
                    let actions = self.shadow.subscribed(now_ms());
                    self.carry_out(actions);
                }
            }
            LinkEvent::Message { topic, payload } => {
                let Some((id, reply)) = ShadowId::parse(&topic) else {
                    return;
                };
                if &id != self.id() {
                    return;
                }
                let (actions, notices) = self.shadow.message(reply, &payload, now_ms());
                self.save();
                self.carry_out(actions);
                for notice in notices {
                    self.notice(notice).await;
                }
            }
            LinkEvent::Other => {}
        }
    }

    async fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::Desired { delta, version } => {
                tracing::info!(twin = %self.id(), version, ?delta, "desired state changed");
                let only = match delta.get("params") {
                    Some(Value::Object(ops)) => ops.clone(),
                    _ => return,
                };
                let desired = self.shadow.saved().desired.clone();
                let answers = ask_params(&self.pipeline, &desired, Some(&only));
                self.answered(answers).await;
            }
            Notice::Refused(why) => {
                tracing::warn!(twin = %self.id(), "the shadow service refused an update: {why}");
            }
            Notice::InSync { version } => {
                tracing::debug!(twin = %self.id(), version, "twin in sync");
            }
        }
    }
}

/// The wall clock in ms since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
