//! Subscribing and reading, on the async runtime.

use eddy_codec::{Decoder, Decoding, Meta};
use eddy_driver::{Batch, BoxFuture, DriverError, Rejected, SourceOutput, SourceTask, Value};

use super::topics::TopicParsing;
use crate::broker::{Broker, Reach};
use crate::client::{Connection, Event, Message, SessionOptions};
use crate::shared::{SharedBroker, SharedEvent};

/// Messages the broker may send before eddy acknowledges one.
const INFLIGHT: u16 = 1024;

/// Fewer messages than this between two pauses is a trickle (under about
/// 40 000 a second): the source pauses its reads for [`READ_LINGER`].
const TRICKLE: usize = 256;

/// How long a trickle gathers in the socket between reads: the I/O thread
/// then wakes a few hundred times a second, not once a packet. A faster
/// stream is read as it comes.
const READ_LINGER: std::time::Duration = std::time::Duration::from_millis(5);

/// How long the source reads after a pause (what gathered, and what comes
/// meanwhile) before it may pause again.
const READ_AWAKE: std::time::Duration = std::time::Duration::from_millis(1);

/// Connects, subscribes, and turns each message into records until the
/// connection fails; the host starts it again after a backoff.
pub struct MqttSourceTask {
    reach: Reach,
    topics: Vec<String>,
    qos: u8,
    session_expiry_s: Option<u32>,
    parsing: Option<TopicParsing>,
    decoding: Decoding,
    name: String,
}

impl MqttSourceTask {
    pub(crate) fn new(
        reach: Reach,
        topics: Vec<String>,
        qos: u8,
        session_expiry_s: Option<u32>,
        parsing: Option<TopicParsing>,
        decoding: Decoding,
        name: String,
    ) -> Self {
        MqttSourceTask {
            reach,
            topics,
            qos,
            session_expiry_s,
            parsing,
            decoding,
            name,
        }
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> DriverError {
        DriverError::unavailable(self.reach.peer(), e)
    }

    async fn read(&mut self, out: &mut SourceOutput) -> Result<(), DriverError> {
        match self.reach.clone() {
            Reach::Own(broker) => self.read_own(&broker, out).await,
            Reach::Shared(shared) => self.read_shared(&shared, out).await,
        }
    }

    /// Reads through a connection shared with other components.
    async fn read_shared(
        &mut self,
        shared: &SharedBroker,
        out: &mut SourceOutput,
    ) -> Result<(), DriverError> {
        let mut decoder = Decoder::new(self.decoding.clone()).map_err(DriverError::Config)?;
        let mut member = shared.join(self.qos == 1);
        tokio::time::timeout(shared.broker.connect_timeout, async {
            while !matches!(member.next().await, SharedEvent::Connected) {}
        })
        .await
        .map_err(|_| self.unavailable("no answer"))?;
        member.subscribe(&self.topics, self.qos);
        out.connected();
        loop {
            match member.next().await {
                SharedEvent::Message(message) => {
                    let mut batch = self.records(&mut decoder, &message.topic, &message.payload);
                    if let Some(token) = message.ack {
                        batch.ack = Some(Box::new(move || token.ack()));
                    }
                    out.send(batch).await?;
                }
                SharedEvent::Subscribed(Err(refused)) => {
                    return Err(DriverError::Config(format!(
                        "{}: {refused}",
                        self.reach.peer()
                    )));
                }
                SharedEvent::Down(e) => return Err(self.unavailable(e)),
                SharedEvent::Connected => member.subscribe(&self.topics, self.qos),
                SharedEvent::Subscribed(Ok(())) => {}
            }
        }
    }

    /// Reads through a connection of its own.
    async fn read_own(
        &mut self,
        broker: &Broker,
        out: &mut SourceOutput,
    ) -> Result<(), DriverError> {
        let mut decoder = Decoder::new(self.decoding.clone()).map_err(DriverError::Config)?;
        let session = SessionOptions {
            persistent: self.session_expiry_s,
            manual_acks: self.qos == 1,
            inflight: INFLIGHT,
        };
        let mut connection = Connection::new(broker, session, usize::from(INFLIGHT) * 2);
        // Acknowledgements come from the pipeline thread whenever batches
        // are safe; a task of their own queues them on the connection,
        // never dropping one (the event loop below takes them out).
        let acker = connection.acker();
        let (acks, mut safe) = tokio::sync::mpsc::unbounded_channel::<Box<Message>>();
        let _acking = AbortOnDrop(tokio::spawn(async move {
            while let Some(message) = safe.recv().await {
                if !acker.ack(&message).await {
                    return;
                }
            }
        }));
        tokio::time::timeout(broker.connect_timeout, async {
            loop {
                if let Event::ConnAck { .. } = connection.poll().await? {
                    return Ok::<(), String>(());
                }
            }
        })
        .await
        .map_err(|_| self.unavailable("no answer"))?
        .map_err(|e| self.unavailable(e))?;
        // A kept session keeps its subscriptions; subscribing again is
        // harmless and covers a broker that lost them.
        connection
            .subscribe(&self.topics, self.qos)
            .map_err(|e| self.unavailable(e))?;
        out.connected();
        // Messages handed over since the last pause (or the check that
        // found the stream too fast for one), and when that was.
        let (mut since, mut burst) = (tokio::time::Instant::now(), 0);
        loop {
            if connection.buffered() == 0 && since.elapsed() >= READ_AWAKE {
                if (1..TRICKLE).contains(&burst) {
                    tokio::time::sleep(READ_LINGER).await;
                }
                (since, burst) = (tokio::time::Instant::now(), 0);
            }
            let event = connection.poll().await.map_err(|e| self.unavailable(e))?;
            match event {
                Event::Message(message) => {
                    burst += 1;
                    let mut batch = self.records(&mut decoder, &message.topic, &message.payload);
                    if self.qos == 1 {
                        let acks = acks.clone();
                        batch.ack = Some(Box::new(move || {
                            let _ = acks.send(message);
                        }));
                    }
                    out.send(batch).await?;
                }
                Event::SubAck(_, Some(refused)) => {
                    return Err(DriverError::Config(format!("{}: {refused}", broker.peer())));
                }
                _ => {}
            }
        }
    }

    /// One message's records, or why it has none.
    fn records(&self, decoder: &mut Decoder, topic: &str, payload: &[u8]) -> Batch {
        let mut batch = Batch {
            records: Vec::new(),
            rejected: Vec::new(),
            position: None,
            ack: None,
            watermark: None,
        };
        let origin = || format!("{} (topic {topic})", self.name);
        let parsed = match &self.parsing {
            Some(parsing) => match parsing.parse(topic) {
                Some(parsed) => Some(parsed),
                None => {
                    batch.rejected.push(Rejected {
                        origin: origin(),
                        input: String::from_utf8_lossy(payload).into_owned(),
                        reason: "the topic does not match topic_parsing".into(),
                    });
                    return batch;
                }
            },
            None => None,
        };
        let key = parsed
            .as_ref()
            .and_then(|p| p.key.as_deref())
            .unwrap_or(topic);
        let meta = Meta {
            key: Some(key),
            arrival_ms: eddy_codec::now_ms(),
        };
        if let Err(errors) = decoder.decode(payload, &meta, &mut batch.records) {
            for e in errors {
                batch.rejected.push(Rejected {
                    origin: origin(),
                    input: e.input,
                    reason: e.reason,
                });
            }
        }
        if let Some(parsed) = parsed {
            for record in &mut batch.records {
                if let Some(key) = &parsed.key {
                    record.key = key.as_str().into();
                }
                for (name, value) in &parsed.fields {
                    record
                        .fields
                        .push((name.as_str().into(), Value::Str(value.as_str().into())));
                }
            }
        }
        batch
    }
}

/// Ends a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl SourceTask for MqttSourceTask {
    fn run<'a>(
        &'a mut self,
        out: &'a mut SourceOutput,
        _resume: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.read(out))
    }
}
