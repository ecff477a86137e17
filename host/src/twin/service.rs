//! The sync loop of the twins: a thin I/O shell around one [`Shadow`] per
//! thing on an MQTT [`Link`]. The host's twin takes desired params for
//! running plugins and reports the host's status; each device's twin
//! takes desired point values, written to the device by the source that
//! reads it, and reports its connection and the latest values `twin` sinks
//! note.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use eddy_driver::{DeviceWriters, Doorbell, WriteValue};
use eddy_driver_mqtt::{Link, LinkEvent};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::commands::{TwinCommand, TwinView};
use super::config::TwinConfig;
use super::document::thing_name;
use super::local::LocalTwins;
use super::reports::TwinReports;
use super::shadow::{Action, Notice, Saved, Shadow};
use super::topics::ShadowId;
use crate::dataflow::control::{PipelineStatus, Request};

/// Sections a classic shadow keeps when it outgrows the limit: what the
/// desired state acts on and how it went.
const KEEP_IN_CLASSIC: &[&str] = &[
    "params",
    "points",
    "rejected",
    "connection",
    "eddy",
    "last_seen",
];

/// How long the pipeline or a device may take to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A write that failed for a reason that may pass is tried again this
/// much later, for as long as the desired value stands.
pub const WRITE_RETRY: Duration = Duration::from_secs(5);

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

/// What the twins share with the pipeline's components: the device
/// writes sources serve, and the values `twin` sinks note. The runtime
/// hands both to the graph before it opens.
#[derive(Clone, Default)]
pub struct TwinServices {
    /// Writes to devices, by record key.
    pub writers: Arc<DeviceWriters>,
    /// Latest values for device twins.
    pub reports: Arc<TwinReports>,
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

/// A desired JSON value as a point value.
fn write_value(value: &Value) -> Option<WriteValue> {
    match value {
        Value::Bool(b) => Some(WriteValue::Bool(*b)),
        Value::Number(n) => n.as_f64().map(WriteValue::Number),
        Value::String(s) => Some(WriteValue::Text(s.clone())),
        _ => None,
    }
}

/// A point value as JSON.
fn json_value(value: &WriteValue) -> Value {
    match value {
        WriteValue::Bool(b) => Value::Bool(*b),
        WriteValue::Number(n) => json!(n),
        WriteValue::Text(t) => Value::String(t.clone()),
    }
}

/// `{section: {name: value}}`.
fn nested(section: &str, name: &str, value: Value) -> Map<String, Value> {
    let mut inner = Map::new();
    inner.insert(name.to_owned(), value);
    let mut outer = Map::new();
    outer.insert(section.to_owned(), Value::Object(inner));
    outer
}

/// The twins of this host and its devices, running.
pub struct TwinSync {
    host: ShadowId,
    shadows: BTreeMap<ShadowId, Shadow>,
    link: Link,
    client: String,
    device_prefix: String,
    local: LocalTwins,
    pipeline: PipelineLink,
    services: TwinServices,
    report_every: Duration,
    /// Subscriptions asked for, in order, and how many answers each awaits.
    subscribing: VecDeque<(ShadowId, usize)>,
    connected: bool,
    /// Point writes to try again, and when.
    retries: BTreeMap<(ShadowId, String), Instant>,
    /// Requests from the local API.
    commands: tokio::sync::mpsc::Receiver<TwinCommand>,
}

impl TwinSync {
    /// Makes the sync for `config` with the twins' local copies; queues
    /// the host's desired params kept from the last run, so that the
    /// pipeline runs with them from its first batch. Connects once spawned.
    pub fn start(
        config: &TwinConfig,
        link: Link,
        local: LocalTwins,
        pipeline: PipelineLink,
        services: TwinServices,
        commands: tokio::sync::mpsc::Receiver<TwinCommand>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(), eddy_driver::Invalid> {
        let host = config.shadow_id();
        let client = link.client_id().to_owned();
        let mut shadows = BTreeMap::new();
        for (name, saved) in local.all() {
            let id = match name.split_once('/') {
                Some((thing, shadow)) => ShadowId::named(thing, shadow),
                None => ShadowId::classic(name),
            };
            if saved.device.is_some() && id != host {
                shadows.insert(id.clone(), Shadow::new(id, &client, saved));
            }
        }
        let saved = local.load(&host);
        let first = ask_params(&pipeline, &saved.desired, None);
        shadows.insert(host.clone(), Shadow::new(host.clone(), &client, saved));
        let sync = TwinSync {
            host,
            shadows,
            link,
            client,
            device_prefix: config.device_prefix(),
            local,
            pipeline,
            services,
            report_every: Duration::from_millis(config.report_interval_ms.max(100)),
            subscribing: VecDeque::new(),
            connected: false,
            retries: BTreeMap::new(),
            commands,
        };
        runtime.spawn(sync.run(first));
        Ok(())
    }

    fn save(&self, id: &ShadowId) {
        if let Some(shadow) = self.shadows.get(id)
            && let Err(e) = self.local.save(id, shadow.saved())
        {
            tracing::error!(twin = %id, "the twin's local copy cannot be written: {e}");
        }
    }

    fn carry_out(&mut self, id: &ShadowId, actions: Vec<Action>) {
        for action in actions {
            let result = match action {
                Action::Subscribe(filters) => {
                    self.subscribing.push_back((id.clone(), filters.len()));
                    self.link.subscribe(&filters)
                }
                Action::Publish { topic, payload } => self.link.publish(&topic, payload),
            };
            if let Err(e) = result {
                tracing::warn!(twin = %id, "twin request not queued: {e}");
            }
        }
    }

    /// The twin of device `key`, made (and subscribed, when connected) if
    /// it is new.
    fn device(&mut self, key: &str) -> ShadowId {
        let id = ShadowId::classic(thing_name(&self.device_prefix, key));
        if !self.shadows.contains_key(&id) {
            let saved = Saved {
                device: Some(key.to_owned()),
                ..self.local.load(&id)
            };
            let mut shadow = Shadow::new(id.clone(), &self.client, saved);
            let actions = if self.connected {
                shadow.connected()
            } else {
                Vec::new()
            };
            self.shadows.insert(id.clone(), shadow);
            self.save(&id);
            self.carry_out(&id, actions);
        }
        id
    }

    /// Reports changes (a patch) on the twin `id`. A classic shadow that
    /// would outgrow the service's limit moves whole sections (a sink's
    /// output, say) into named shadows of their own, which then take that
    /// section's later changes.
    fn report(&mut self, id: &ShadowId, patch: &Map<String, Value>) {
        if patch.is_empty() {
            return;
        }
        if id.name.is_none() {
            let patch = self.split(id, patch);
            self.report_one(id, &patch);
        } else {
            self.report_one(id, patch);
        }
    }

    /// The named shadow holding section `section` of the classic `id`.
    fn section_shadow(id: &ShadowId, section: &str) -> ShadowId {
        let mut name = thing_name("", section);
        name.truncate(super::document::MAX_SHADOW_NAME_BYTES);
        ShadowId::named(id.thing.clone(), name)
    }

    /// Sends the sections of `patch` that live in named shadows there, and
    /// moves out those that no longer fit; returns what stays for `id`.
    fn split(&mut self, id: &ShadowId, patch: &Map<String, Value>) -> Map<String, Value> {
        let mut stays = Map::new();
        for (section, value) in patch {
            let named = Self::section_shadow(id, section);
            if self.shadows.contains_key(&named) {
                let mut one = Map::new();
                one.insert(section.clone(), value.clone());
                self.report_one(&named, &one);
            } else {
                stays.insert(section.clone(), value.clone());
            }
        }
        let Some(shadow) = self.shadows.get(id) else {
            return stays;
        };
        let (desired, mut reported) = shadow.local();
        super::document::merge(&mut reported, &stays);
        let moving = super::document::sections_to_move(&desired, &reported, KEEP_IN_CLASSIC);
        let device = shadow.saved().device.clone();
        for section in moving {
            let named = Self::section_shadow(id, &section);
            tracing::info!(twin = %id, section, shadow = ?named.name, "the twin outgrows one shadow: a section moves to a named shadow");
            let saved = Saved {
                device: device.clone(),
                ..self.local.load(&named)
            };
            let mut fresh = Shadow::new(named.clone(), &self.client, saved);
            let actions = if self.connected {
                fresh.connected()
            } else {
                Vec::new()
            };
            self.shadows.insert(named.clone(), fresh);
            self.carry_out(&named, actions);
            let mut one = Map::new();
            one.insert(
                section.clone(),
                reported.get(&section).cloned().unwrap_or_default(),
            );
            self.report_one(&named, &one);
            stays.insert(section, Value::Null);
        }
        stays
    }

    fn report_one(&mut self, id: &ShadowId, patch: &Map<String, Value>) {
        let Some(shadow) = self.shadows.get_mut(id) else {
            return;
        };
        let before = shadow.saved().pending.clone();
        let actions = shadow.report(patch, now_ms());
        // Most reports repeat what is held: write the copy only on a change.
        if shadow.saved().pending != before || !actions.is_empty() {
            self.save(id);
        }
        self.carry_out(id, actions);
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
        let host = self.host.clone();
        self.report(&host, &patch);
    }

    /// Writes the desired value of `point` to the device of twin `id`, and
    /// reports what the device reads back or why it was not written.
    async fn write_point(&mut self, id: &ShadowId, point: &str) {
        let Some(shadow) = self.shadows.get(id) else {
            return;
        };
        let Some(device) = shadow.saved().device.clone() else {
            return;
        };
        let Some(wanted) = shadow
            .saved()
            .desired
            .get("points")
            .and_then(|p| p.get(point))
            .cloned()
        else {
            return;
        };
        self.retries.remove(&(id.clone(), point.to_owned()));
        let result = match write_value(&wanted) {
            None => Err(eddy_driver::WriteRefused::permanent(
                "a point takes a number, a boolean or a string",
            )),
            Some(value) => {
                let writers = self.services.writers.clone();
                match tokio::time::timeout(ANSWER_WITHIN, writers.write(&device, point, value))
                    .await
                {
                    Ok(result) => result,
                    Err(_) => Err(eddy_driver::WriteRefused::transient(format!(
                        "the device did not answer within {} s",
                        ANSWER_WITHIN.as_secs()
                    ))),
                }
            }
        };
        let mut patch = Map::new();
        match result {
            Ok(back) => {
                tracing::info!(twin = %id, point, ?back, "point written from desired state");
                patch.extend(nested("points", point, json_value(&back)));
                patch.extend(nested("rejected", "points", json!({ point: null })));
            }
            Err(e) => {
                tracing::warn!(twin = %id, point, "point not written: {e}");
                patch.extend(nested(
                    "rejected",
                    "points",
                    json!({ point: { "reason": e.message, "value": wanted, "retrying": e.transient } }),
                ));
                if e.transient {
                    self.retries
                        .insert((id.clone(), point.to_owned()), Instant::now() + WRITE_RETRY);
                }
            }
        }
        self.report(id, &patch);
    }

    /// Writes that failed for a passing reason, due again, while their
    /// desired value still differs from the reported one.
    async fn retry_writes(&mut self) {
        let now = Instant::now();
        let due: Vec<(ShadowId, String)> = self
            .retries
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for (id, point) in due {
            self.retries.remove(&(id.clone(), point.clone()));
            let Some(shadow) = self.shadows.get(&id) else {
                continue;
            };
            let (desired, reported) = shadow.local();
            let differs = super::document::delta(&desired, &reported)
                .and_then(|d| d.get("points").cloned())
                .is_some_and(|p| p.get(&point).is_some());
            if differs {
                self.write_point(&id, &point).await;
            }
        }
    }

    /// The host's status as a reported patch, and each device's connection.
    async fn status(pipeline: PipelineLink) -> Option<PipelineStatus> {
        let answer = pipeline.ask(Request::Status);
        tokio::time::timeout(ANSWER_WITHIN, answer).await.ok()?.ok()
    }

    fn report_status(&mut self, status: &PipelineStatus) {
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
            json!({
                "version": env!("CARGO_PKG_VERSION"),
                "pipeline": status.pipeline,
                "release": status.release,
            }),
        );
        patch.insert("operators".into(), Value::Object(operators));
        if !outboxes.is_empty() {
            patch.insert("outbox".into(), Value::Object(outboxes));
        }
        let host = self.host.clone();
        self.report(&host, &patch);
        // Each device a source reads: its connection, on its own twin.
        for source in &status.sources {
            for (device, health) in &source.health.devices {
                let id = self.device(device);
                let mut patch = Map::new();
                patch.insert(
                    "connection".into(),
                    json!({
                        "source": source.name,
                        "up": health.up,
                        "since_ms": health.since_ms,
                        "last_fault": health.last_fault,
                    }),
                );
                self.report(&id, &patch);
            }
        }
    }

    /// Latest values the twin sinks noted, onto the devices' twins.
    fn report_values(&mut self) {
        for (device, patch) in self.services.reports.take() {
            let id = self.device(&device);
            self.report(&id, &patch);
        }
    }

    async fn run(mut self, first: ParamsAnswers) {
        self.answered(first).await;
        let mut status = tokio::time::interval(self.report_every);
        status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let values_every = self
            .services
            .reports
            .interval()
            .unwrap_or(Duration::from_secs(3600));
        let mut values = tokio::time::interval(values_every);
        values.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                        self.connected = false;
                        self.subscribing.clear();
                        for shadow in self.shadows.values_mut() {
                            shadow.disconnected();
                        }
                        tracing::warn!(peer = self.link.peer(), "twin sync: {e}; connecting again in {} ms", backoff.as_millis());
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                },
                _ = status.tick() => {
                    if let Some(status) = Self::status(self.pipeline.clone()).await {
                        self.report_status(&status);
                    }
                }
                _ = values.tick() => self.report_values(),
                Some(command) = self.commands.recv() => self.command(command).await,
                _ = tick.tick() => {
                    let now = now_ms();
                    let ids: Vec<ShadowId> = self.shadows.keys().cloned().collect();
                    for id in ids {
                        if let Some(shadow) = self.shadows.get_mut(&id) {
                            let actions = shadow.tick(now);
                            self.carry_out(&id, actions);
                        }
                    }
                    self.retry_writes().await;
                }
            }
        }
    }

    fn view(&self, id: &ShadowId) -> Option<TwinView> {
        let shadow = self.shadows.get(id)?;
        let saved = shadow.saved();
        let (desired, reported) = shadow.local();
        Some(TwinView {
            thing: id.thing.clone(),
            shadow: id.name.clone(),
            device: saved.device.clone(),
            version: saved.version,
            synced: shadow.synced(),
            delta: super::document::delta(&desired, &reported),
            desired,
            reported,
            pending_reported: saved.pending.clone(),
            pending_desired: saved.pending_desired.clone(),
        })
    }

    /// The twin of `thing` (its shadow, classic or named).
    fn find(&self, thing: &str) -> Option<ShadowId> {
        self.shadows.keys().find(|id| id.thing == thing).cloned()
    }

    async fn command(&mut self, command: TwinCommand) {
        match command {
            TwinCommand::List(reply) => {
                let _ = reply.send(self.shadows.keys().map(|id| id.thing.clone()).collect());
            }
            TwinCommand::Get { thing, reply } => {
                let view = self.find(&thing).and_then(|id| self.view(&id));
                let _ = reply.send(view);
            }
            TwinCommand::SetDesired {
                thing,
                patch,
                reply,
            } => {
                let Some(id) = self.find(&thing) else {
                    let _ = reply.send(Err(format!("no twin `{thing}` here")));
                    return;
                };
                let Some(shadow) = self.shadows.get_mut(&id) else {
                    return;
                };
                let (actions, notices) = shadow.set_desired(&patch, now_ms());
                tracing::info!(twin = %id, ?patch, "desired state set on the site");
                self.save(&id);
                self.carry_out(&id, actions);
                for notice in notices {
                    self.notice(&id, notice).await;
                }
                let _ = reply.send(self.view(&id).ok_or_else(|| "gone".to_owned()));
            }
        }
    }

    async fn event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Connected => {
                tracing::info!(
                    peer = self.link.peer(),
                    twins = self.shadows.len(),
                    "twin sync connected"
                );
                self.connected = true;
                self.subscribing.clear();
                let ids: Vec<ShadowId> = self.shadows.keys().cloned().collect();
                for id in ids {
                    if let Some(shadow) = self.shadows.get_mut(&id) {
                        let actions = shadow.connected();
                        self.carry_out(&id, actions);
                    }
                }
            }
            LinkEvent::Subscribed(result) => {
                if let Err(e) = result {
                    tracing::warn!("twin sync: {e}");
                }
                let Some((id, left)) = self.subscribing.front_mut() else {
                    return;
                };
                *left = left.saturating_sub(1);
                if *left == 0 {
                    let id = id.clone();
                    self.subscribing.pop_front();
                    if let Some(shadow) = self.shadows.get_mut(&id) {
                        let actions = shadow.subscribed(now_ms());
                        self.carry_out(&id, actions);
                    }
                }
            }
            LinkEvent::Message { topic, payload } => {
                let Some((id, reply)) = ShadowId::parse(&topic) else {
                    return;
                };
                let Some(shadow) = self.shadows.get_mut(&id) else {
                    return;
                };
                let (actions, notices) = shadow.message(reply, &payload, now_ms());
                self.save(&id);
                self.carry_out(&id, actions);
                for notice in notices {
                    self.notice(&id, notice).await;
                }
            }
            LinkEvent::Other => {}
        }
    }

    async fn notice(&mut self, id: &ShadowId, notice: Notice) {
        match notice {
            Notice::Desired { delta, version } => {
                tracing::info!(twin = %id, version, ?delta, "desired state");
                if *id == self.host {
                    let only = match delta.get("params") {
                        Some(Value::Object(ops)) => ops.clone(),
                        _ => Map::new(),
                    };
                    let (desired, reported) = self.shadows[id].local();
                    // Overrides the cloud took away: the pipeline file's
                    // params again.
                    let removed: Vec<String> = match reported.get("params") {
                        Some(Value::Object(applied)) => applied
                            .keys()
                            .filter(|op| desired.get("params").and_then(|p| p.get(*op)).is_none())
                            .cloned()
                            .collect(),
                        _ => Vec::new(),
                    };
                    if only.is_empty() && removed.is_empty() {
                        return;
                    }
                    let mut answers = ask_params(&self.pipeline, &desired, Some(&only));
                    for operator in removed {
                        let answer = self.pipeline.ask(|reply| Request::SetParams {
                            operator: operator.clone(),
                            overrides: Map::new(),
                            reply,
                        });
                        answers.push((operator, Value::Null, answer));
                    }
                    self.answered(answers).await;
                } else if let Some(Value::Object(points)) = delta.get("points") {
                    for point in points.keys() {
                        self.write_point(id, point).await;
                    }
                }
            }
            Notice::Refused(why) => {
                tracing::warn!(twin = %id, "the shadow service refused an update: {why}");
            }
            Notice::InSync { version } => {
                tracing::debug!(twin = %id, version, "twin in sync");
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
