//! Publishing batches, on the async runtime: the thin I/O loop around a
//! [`PublishSession`], which writes many publishes at once and reads their
//! acknowledgements in bulk.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use eddy_driver::BoxFuture;
use eddy_sink::{Message, OwnedOut, Refused, SinkError, SinkTask, TopicTemplate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::session::{Hello, Incoming, PublishSession};
use super::stream::Stream;
use crate::broker::{Broker, Reach};
use crate::client::Outgoing;
use crate::shared::{Failed, Member, SharedBroker, SharedEvent};

/// QoS 1 publishes in flight at once (fewer if the broker says so).
const INFLIGHT: u16 = 1024;

/// Bytes of publishes gathered before they are written.
const SEND_CHUNK: usize = 128 * 1024;

/// Publishes batches of results, in order, and returns once the broker
/// has acknowledged each (QoS 1) or each has gone out (QoS 0).
pub struct MqttSinkTask {
    broker: Broker,
    /// The connection shared with other components, if the sink names one.
    shared: Option<Arc<SharedBroker>>,
    topic: TopicTemplate,
    pipeline: String,
    qos: u8,
    retain: bool,
    ack_timeout: Duration,
    live: Option<Live>,
    /// Its place on the shared connection, once connected.
    member: Option<Member>,
    /// Reused buffers.
    message: Message,
}

/// An open connection.
struct Live {
    stream: Stream,
    session: PublishSession,
    /// When bytes last went to the broker.
    last_sent: Instant,
    /// A ping awaiting its answer, since then.
    ping_sent: Option<Instant>,
}

impl Live {
    /// Sends what the session queued. Cancel-safe: bytes not written stay
    /// queued.
    async fn send(&mut self) -> Result<(), String> {
        while !self.session.out.is_empty() {
            let n = self
                .stream
                .write_buf(&mut self.session.out)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the connection takes no more bytes".into());
            }
        }
        self.stream.flush().await.map_err(|e| e.to_string())?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Reads what the broker sent into the session. Cancel-safe.
    async fn receive(&mut self) -> Result<(), String> {
        let n = self
            .stream
            .read_buf(&mut self.session.received)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the broker closed the connection".into());
        }
        self.stream.quick_ack();
        // Anything from the broker answers a ping.
        self.ping_sent = None;
        Ok(())
    }

    /// Keeps an idle connection alive with pings; returns only when it is
    /// gone.
    async fn keep_alive(&mut self, interval: Duration) -> String {
        loop {
            let due = match self.ping_sent {
                Some(sent) => sent + interval,
                None => self.last_sent + interval / 2,
            };
            tokio::select! {
                // What the broker sent first: an answer to a ping that came
                // while publishing is read before the ping is judged late.
                biased;
                received = self.receive() => {
                    if let Err(e) = received {
                        return e;
                    }
                    loop {
                        match self.session.read() {
                            Ok(Some(_)) => continue,
                            Ok(None) => break,
                            Err(e) => return e,
                        }
                    }
                }
                () = tokio::time::sleep_until(due) => {
                    if self.ping_sent.is_some() {
                        return format!("no answer to a ping within {} s", interval.as_secs());
                    }
                    self.session.ping();
                    if let Err(e) = self.send().await {
                        return e;
                    }
                    self.ping_sent = Some(Instant::now());
                }
            }
        }
    }
}

impl MqttSinkTask {
    pub(crate) fn new(
        reach: Reach,
        topic: TopicTemplate,
        pipeline: String,
        qos: u8,
        retain: bool,
        ack_timeout: Duration,
    ) -> Self {
        let (broker, shared) = match reach {
            Reach::Own(broker) => (broker, None),
            Reach::Shared(shared) => (shared.broker.clone(), Some(shared)),
        };
        MqttSinkTask {
            broker,
            shared,
            topic,
            pipeline,
            qos,
            retain,
            ack_timeout,
            live: None,
            member: None,
            message: Message::default(),
        }
    }

    fn unavailable(&mut self, message: impl ToString) -> SinkError {
        self.live = None;
        self.member = None;
        let peer = match &self.shared {
            Some(shared) => shared.peer(),
            None => self.broker.peer(),
        };
        SinkError::unavailable(peer, message)
    }

    async fn connect_live(&self) -> Result<Live, String> {
        let stream = Stream::open(&self.broker).await?;
        let mut session = PublishSession::new(self.broker.protocol, INFLIGHT);
        session.connect(&Hello {
            client_id: &self.broker.client_id,
            keep_alive_s: u16::try_from(self.broker.keep_alive.as_secs()).unwrap_or(u16::MAX),
            credentials: self
                .broker
                .credentials
                .as_ref()
                .map(|(user, password)| (user.as_str(), password.as_str())),
        });
        let mut live = Live {
            stream,
            session,
            last_sent: Instant::now(),
            ping_sent: None,
        };
        live.stream.quick_ack();
        live.send().await?;
        loop {
            while let Some(incoming) = live.session.read()? {
                if incoming == Incoming::ConnAck {
                    return Ok(live);
                }
            }
            live.receive().await?;
        }
    }

    async fn open(&mut self) -> Result<(), SinkError> {
        self.live = None;
        if let Some(shared) = self.shared.clone() {
            return self.join(&shared).await;
        }
        match tokio::time::timeout(self.broker.connect_timeout, self.connect_live()).await {
            Ok(Ok(live)) => {
                self.live = Some(live);
                Ok(())
            }
            Ok(Err(e)) => Err(self.unavailable(e)),
            Err(_) => Err(self.unavailable(format!(
                "no answer within {} ms",
                self.broker.connect_timeout.as_millis()
            ))),
        }
    }

    /// Takes its place on the shared connection, once that is up.
    async fn join(&mut self, shared: &SharedBroker) -> Result<(), SinkError> {
        let mut member = shared.join(false);
        let up = tokio::time::timeout(self.broker.connect_timeout, async {
            while !matches!(member.next().await, SharedEvent::Connected) {}
        })
        .await;
        if up.is_err() {
            return Err(self.unavailable(format!(
                "no answer within {} ms",
                self.broker.connect_timeout.as_millis()
            )));
        }
        self.member = Some(member);
        Ok(())
    }

    /// Publishes through the shared connection: all of the batch queued,
    /// then each acknowledgement awaited.
    async fn publish_shared(&mut self, batch: &[OwnedOut]) -> Result<Refused, SinkError> {
        let Some(member) = self.member.take() else {
            return Err(self.unavailable("not connected"));
        };
        let mut refused = Refused::new();
        let mut answers = Vec::with_capacity(batch.len());
        for (i, out) in batch.iter().enumerate() {
            if let Err(why) = self.message.render(&self.topic, &self.pipeline, out) {
                refused.push((i, why));
                continue;
            }
            let answer = member.publish(Outgoing {
                topic: self.message.topic.clone(),
                payload: self.message.payload.clone(),
                qos: self.qos,
                retain: self.retain,
                content_type: Some("application/json".into()),
                user_properties: vec![("result_id".into(), out.id.clone())],
            });
            answers.push((i, answer));
        }
        let deadline = Instant::now() + self.ack_timeout;
        for (i, answer) in answers {
            match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(Failed::Refused(why)))) => refused.push((i, why)),
                Ok(Ok(Err(Failed::Lost(why)))) => return Err(self.unavailable(why)),
                Ok(Err(_)) => return Err(self.unavailable("the shared connection stopped")),
                Err(_) => {
                    return Err(self.unavailable(format!(
                        "no acknowledgement within {} ms",
                        self.ack_timeout.as_millis()
                    )));
                }
            }
        }
        self.member = Some(member);
        Ok(refused)
    }

    async fn publish(&mut self, batch: &[OwnedOut]) -> Result<Refused, SinkError> {
        if self.shared.is_some() {
            return self.publish_shared(batch).await;
        }
        let Some(mut live) = self.live.take() else {
            return Err(self.unavailable("not connected"));
        };
        match self.publish_on(&mut live, batch).await {
            Ok(refused) => {
                self.live = Some(live);
                Ok(refused)
            }
            Err(e) => Err(self.unavailable(e)),
        }
    }

    async fn publish_on(&mut self, live: &mut Live, batch: &[OwnedOut]) -> Result<Refused, String> {
        let mut queued = 0;
        let mut done = 0;
        // Each QoS 1 publish awaiting its acknowledgement: its index.
        let mut index_of: HashMap<u16, usize> = HashMap::new();
        let mut refused = Refused::new();
        while done < batch.len() {
            // Fill the window once half of it is free, in large writes.
            let fill = live.session.wants_more();
            while fill
                && queued < batch.len()
                && (self.qos == 0 || live.session.has_room())
                && live.session.out.len() < SEND_CHUNK
            {
                let out = &batch[queued];
                let published = self
                    .message
                    .render(&self.topic, &self.pipeline, out)
                    .and_then(|()| {
                        live.session
                            .publish(
                                &self.message.topic,
                                &self.message.payload,
                                self.qos,
                                self.retain,
                                &out.id,
                            )
                            .map_err(|e| e.to_string())
                    });
                match published {
                    Ok(pkid) if self.qos > 0 => {
                        index_of.insert(pkid, queued);
                    }
                    Ok(_) => done += 1,
                    Err(why) => {
                        refused.push((queued, why));
                        done += 1;
                    }
                }
                queued += 1;
            }
            if !live.session.out.is_empty() {
                tokio::time::timeout(self.ack_timeout, live.send())
                    .await
                    .map_err(|_| {
                        format!(
                            "the broker took no bytes within {} ms",
                            self.ack_timeout.as_millis()
                        )
                    })??;
            }
            if done == batch.len() {
                break;
            }
            if queued < batch.len() && live.session.wants_more() {
                continue;
            }
            tokio::time::timeout(self.ack_timeout, live.receive())
                .await
                .map_err(|_| {
                    format!(
                        "no acknowledgement within {} ms ({} awaited)",
                        self.ack_timeout.as_millis(),
                        live.session.in_flight()
                    )
                })??;
            while let Some(incoming) = live.session.read()? {
                if let Incoming::PubAck { pkid, refused: why } = incoming
                    && let Some(index) = index_of.remove(&pkid)
                {
                    if let Some(why) = why {
                        refused.push((index, why));
                    }
                    done += 1;
                }
            }
        }
        Ok(refused)
    }

    async fn idle_until_gone(&mut self) -> Result<(), SinkError> {
        if let Some(member) = self.member.as_mut() {
            // The shared connection keeps itself alive; its loss ends the
            // wait.
            let why = loop {
                if let SharedEvent::Down(why) = member.next().await {
                    break why;
                }
            };
            return Err(self.unavailable(why));
        }
        let interval = self.broker.keep_alive;
        let Some(live) = self.live.as_mut() else {
            return std::future::pending().await;
        };
        let why = live.keep_alive(interval).await;
        Err(self.unavailable(why))
    }
}

impl SinkTask for MqttSinkTask {
    fn connect(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(self.open())
    }

    fn deliver<'a>(
        &'a mut self,
        batch: &'a [OwnedOut],
    ) -> BoxFuture<'a, Result<Refused, SinkError>> {
        Box::pin(self.publish(batch))
    }

    fn idle(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(self.idle_until_gone())
    }
}
