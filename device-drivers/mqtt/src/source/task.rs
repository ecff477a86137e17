//! Subscribing and reading, on the async runtime.

use std::sync::Arc;

use eddy_codec::{Decoder, Decoding, Meta};
use eddy_driver::{Batch, BoxFuture, DriverError, Rejected, SourceOutput, SourceTask, Value};
use tokio::sync::mpsc::UnboundedSender;

use super::topics::TopicParsing;
use crate::broker::{Broker, Reach};
use crate::client::{Connection, Event, Message, SessionOptions};
use crate::shared::{SharedBroker, SharedEvent};

/// The client's in-flight limit, which rumqttc applies to the QoS 1
/// publishes it sends (a source sends none); how many messages the broker
/// sends before eddy acknowledges one is the broker's own setting (e.g.
/// mosquitto's `max_inflight_messages`). Also sizes the request queue.
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
                    let mut batch = Batch::of(Vec::new());
                    self.records(&mut decoder, &message.topic, &message.payload, &mut batch);
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
        // The messages already read from the socket go to the pipeline as
        // one batch, handed over before the connection waits for more.
        let mut gathered = Gathered::default();
        loop {
            if connection.buffered() == 0 {
                gathered.send(out, &acks).await?;
                if since.elapsed() >= READ_AWAKE {
                    if (1..TRICKLE).contains(&burst) {
                        tokio::time::sleep(READ_LINGER).await;
                    }
                    (since, burst) = (tokio::time::Instant::now(), 0);
                }
            }
            let event = connection.poll().await.map_err(|e| self.unavailable(e))?;
            match event {
                Event::Message(message) => {
                    burst += 1;
                    let batch = &mut gathered.batch;
                    self.records(&mut decoder, &message.topic, &message.payload, batch);
                    gathered.add((self.qos == 1).then_some(message));
                    if gathered.full() {
                        gathered.send(out, &acks).await?;
                    }
                }
                Event::SubAck(_, Some(refused)) => {
                    // Messages of the subscriptions that were taken go on.
                    gathered.send(out, &acks).await?;
                    return Err(DriverError::Config(format!("{}: {refused}", broker.peer())));
                }
                _ => {}
            }
        }
    }

    /// Appends one message's records to `batch`, or why it has none.
    fn records(&self, decoder: &mut Decoder, topic: &str, payload: &[u8], batch: &mut Batch) {
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
                    return;
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
        let first = batch.records.len();
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
            // The topic's key wins over one in the payload; keys and names
            // are the decoder's interned copies, as the payload's are.
            let key = parsed.key.as_deref().map(|k| decoder.intern_key(k));
            let fields: Vec<_> = parsed
                .fields
                .iter()
                .map(|(name, value)| (decoder.intern_name(name), decoder.intern_key(value)))
                .collect();
            for record in &mut batch.records[first..] {
                if let Some(key) = &key
                    && !Arc::ptr_eq(&record.key, key)
                {
                    record.key = key.clone();
                }
                for (name, value) in &fields {
                    record
                        .fields
                        .push((name.clone(), Value::Str(value.clone())));
                }
            }
        }
    }
}

/// Messages gathered into one batch are handed over once it holds this
/// many records or messages (the pipeline's default batch size), even if
/// more have been read. (rumqttc reads about ten packets from the socket at
/// a time, so a batch is mostly what one read brought.)
const GATHER: usize = 1024;

/// Messages read but not handed over yet, as one batch, with the QoS 1
/// messages to acknowledge once it is safe.
struct Gathered {
    batch: Batch,
    messages: usize,
    #[expect(
        clippy::vec_box,
        reason = "messages come from the connection boxed and go to the acknowledging task boxed"
    )]
    to_ack: Vec<Box<Message>>,
}

impl Default for Gathered {
    fn default() -> Self {
        Gathered {
            batch: Batch::of(Vec::new()),
            messages: 0,
            to_ack: Vec::new(),
        }
    }
}

impl Gathered {
    /// Whether it is to be handed over now, whatever is still to read.
    fn full(&self) -> bool {
        self.batch.records.len() >= GATHER || self.messages >= GATHER
    }

    /// Counts one message whose records were appended to `batch` (and
    /// keeps the message, to acknowledge).
    fn add(&mut self, ack: Option<Box<Message>>) {
        self.messages += 1;
        self.to_ack.extend(ack);
    }

    /// Hands what it holds to the pipeline, if anything.
    async fn send(
        &mut self,
        out: &mut SourceOutput,
        acks: &UnboundedSender<Box<Message>>,
    ) -> Result<(), DriverError> {
        out.send(self.take(acks)).await
    }

    /// What it holds, as one batch whose acknowledgement queues every
    /// gathered message on `acks`, in the order read; it is empty after.
    fn take(&mut self, acks: &UnboundedSender<Box<Message>>) -> Batch {
        let mut batch = std::mem::replace(&mut self.batch, Batch::of(Vec::new()));
        self.messages = 0;
        if !self.to_ack.is_empty() {
            let messages = std::mem::take(&mut self.to_ack);
            let acks = acks.clone();
            batch.ack = Some(Box::new(move || {
                for message in messages {
                    let _ = acks.send(message);
                }
            }));
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

#[cfg(test)]
mod tests {
    use eddy_driver::Record;

    use super::*;

    #[test]
    fn messages_gathered_make_one_batch_acknowledged_message_by_message_in_order() {
        let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel();
        let mut gathered = Gathered::default();
        let rejected = Rejected {
            origin: "sensors (topic t/b)".into(),
            input: "not json".into(),
            reason: "bad".into(),
        };
        gathered
            .batch
            .records
            .extend([Record::new("a", 1), Record::new("a", 2)]);
        gathered.add(Some(Box::new(Message::received("t/a", "1", 1))));
        gathered.batch.rejected.push(rejected.clone());
        gathered.add(Some(Box::new(Message::received("t/b", "2", 2))));
        gathered.batch.records.push(Record::new("c", 3));
        gathered.add(Some(Box::new(Message::received("t/c", "3", 3))));
        let batch = gathered.take(&acks);
        let keys: Vec<(&str, i64)> = batch.records.iter().map(|r| (&*r.key, r.time)).collect();
        assert_eq!(keys, [("a", 1), ("a", 2), ("c", 3)]);
        assert_eq!(batch.rejected, [rejected]);
        assert!(
            acked.try_recv().is_err(),
            "nothing is acknowledged before the batch is safe"
        );
        (batch.ack.expect("the batch acknowledges its messages"))();
        let topics: Vec<String> = std::iter::from_fn(|| acked.try_recv().ok())
            .map(|m| m.topic.clone())
            .collect();
        assert_eq!(topics, ["t/a", "t/b", "t/c"]);
        // Taken, it is empty: the next batch has nothing to send.
        let next = gathered.take(&acks);
        assert!(next.records.is_empty() && next.rejected.is_empty() && next.ack.is_none());
        // At QoS 0 nothing is acknowledged.
        gathered.batch.records.push(Record::new("d", 4));
        gathered.add(None);
        assert!(gathered.take(&acks).ack.is_none());
    }

    #[test]
    fn a_gathered_batch_is_full_at_so_many_records_or_messages() {
        let mut gathered = Gathered::default();
        for _ in 0..GATHER - 1 {
            gathered.add(None);
        }
        assert!(!gathered.full());
        gathered.add(None);
        assert!(gathered.full(), "messages without records count too");
        let (acks, _acked) = tokio::sync::mpsc::unbounded_channel();
        gathered.take(&acks);
        assert!(!gathered.full());
        gathered
            .batch
            .records
            .extend(vec![Record::new("k", 0); GATHER]);
        gathered.add(None);
        assert!(gathered.full(), "one message of as many records");
    }
}
