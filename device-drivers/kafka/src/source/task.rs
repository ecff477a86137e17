//! Assigning partitions and reading them, on the async runtime.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_codec::{Decoder, Decoding, Meta};
use eddy_driver::{Batch, BoxFuture, DriverError, SourceOutput, SourceTask, Watermarks};
use futures_util::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::config::Start;
use super::partitions::Partitions;
use crate::client::Quiet;

/// The consumer, with eddy's client context.
type Client = StreamConsumer<Quiet>;

/// Messages decoded into one batch at most.
const BATCH_MESSAGES: usize = 512;
/// How often idleness, new partitions and commits are looked at.
const TICK: Duration = Duration::from_millis(200);
/// How often the offsets of checkpointed input are committed to the group.
const COMMIT_EVERY: Duration = Duration::from_secs(5);
/// How long a metadata or offset request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads every partition of its topics from where its checkpoint was;
/// the host starts it again after a failure, and it goes on from where it
/// got to.
pub struct KafkaSourceTask {
    config: ClientConfig,
    peer: String,
    topics: Vec<String>,
    start: Start,
    discovery: Option<Duration>,
    decoding: Decoding,
    name: String,
    /// Where it is in each partition; survives failures of a run.
    partitions: Partitions,
    /// The offsets the pipeline made safe, to commit to the group.
    safe: Arc<Mutex<Option<TopicPartitionList>>>,
}

impl KafkaSourceTask {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: ClientConfig,
        peer: String,
        topics: Vec<String>,
        start: Start,
        discovery: Option<Duration>,
        watermarks: Watermarks,
        decoding: Decoding,
        name: String,
    ) -> Self {
        KafkaSourceTask {
            config,
            peer,
            topics,
            start,
            discovery,
            decoding,
            name,
            partitions: Partitions::new(
                watermarks.bounded_out_of_orderness_ms,
                watermarks.idle_timeout_ms.map(Duration::from_millis),
            ),
            safe: Arc::new(Mutex::new(None)),
        }
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> DriverError {
        DriverError::unavailable(&self.peer, e)
    }

    /// Runs a blocking librdkafka call off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        consumer: &Arc<Client>,
        call: impl FnOnce(&Client) -> Result<T, rdkafka::error::KafkaError> + Send + 'static,
    ) -> Result<T, DriverError> {
        let consumer = consumer.clone();
        tokio::task::spawn_blocking(move || call(&consumer))
            .await
            .map_err(|e| self.unavailable(e))?
            .map_err(|e| self.unavailable(e))
    }

    /// Finds the topics' partitions and where to start those not known
    /// yet; returns whether there were new ones.
    async fn discover(&mut self, consumer: &Arc<Client>) -> Result<bool, DriverError> {
        let mut found = Vec::new();
        for topic in &self.topics {
            let name = topic.clone();
            let metadata = self
                .blocking(consumer, move |c| {
                    c.fetch_metadata(Some(&name), REQUEST_TIMEOUT)
                })
                .await?;
            let Some(described) = metadata.topics().first() else {
                return Err(self.unavailable(format!("no metadata for topic `{topic}`")));
            };
            if let Some(error) = described.error() {
                return Err(self.unavailable(format!("topic `{topic}`: {error:?}")));
            }
            for partition in described.partitions() {
                if !self.partitions.contains(topic, partition.id()) {
                    found.push((topic.clone(), partition.id()));
                }
            }
        }
        if found.is_empty() {
            return Ok(false);
        }
        let committed = if self.start == Start::Committed {
            let mut list = TopicPartitionList::new();
            for (topic, partition) in &found {
                list.add_partition(topic, *partition);
            }
            let list = self
                .blocking(consumer, move |c| {
                    c.committed_offsets(list, REQUEST_TIMEOUT)
                })
                .await?;
            Some(list)
        } else {
            None
        };
        let now = Instant::now();
        for (topic, partition) in found {
            let from_group = committed
                .as_ref()
                .and_then(|l| l.find_partition(&topic, partition))
                .and_then(|e| match e.offset() {
                    Offset::Offset(n) => Some(n),
                    _ => None,
                });
            let next = match from_group {
                Some(n) => n,
                None => {
                    let (t, p) = (topic.clone(), partition);
                    let (low, high) = self
                        .blocking(consumer, move |c| {
                            c.fetch_watermarks(&t, p, REQUEST_TIMEOUT)
                        })
                        .await?;
                    if self.start == Start::Latest {
                        high
                    } else {
                        low
                    }
                }
            };
            self.partitions.assign(&topic, partition, next, now);
        }
        Ok(true)
    }

    fn assign(&self, consumer: &Client) -> Result<(), DriverError> {
        let mut list = TopicPartitionList::new();
        for (topic, partition, next) in self.partitions.offsets() {
            list.add_partition_offset(topic, partition, Offset::Offset(next))
                .map_err(|e| self.unavailable(e))?;
        }
        consumer.assign(&list).map_err(|e| self.unavailable(e))
    }

    async fn read(
        &mut self,
        out: &mut SourceOutput,
        resume: Option<&[u8]>,
    ) -> Result<(), DriverError> {
        if let Some(position) = resume {
            self.partitions
                .restore(position, Instant::now())
                .map_err(DriverError::Config)?;
        }
        let mut decoder = Decoder::new(self.decoding.clone()).map_err(DriverError::Config)?;
        let consumer: Arc<Client> = Arc::new(
            self.config
                .create_with_context(Quiet)
                .map_err(|e| DriverError::Config(e.to_string()))?,
        );
        self.discover(&consumer).await?;
        self.assign(&consumer)?;
        out.connected();
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut discovered_at = Instant::now();
        let mut committed_at = Instant::now();
        let mut sent_watermark = None;
        loop {
            let mut batch = Batch::of(Vec::new());
            tokio::select! {
                first = consumer.recv() => {
                    let first = first.map_err(|e| self.unavailable(e))?;
                    self.take(&mut decoder, &first, &mut batch);
                    drop(first);
                    // Whatever else is here already joins the batch.
                    while batch.records.len() < BATCH_MESSAGES {
                        match consumer.recv().now_or_never() {
                            Some(Ok(message)) => self.take(&mut decoder, &message, &mut batch),
                            Some(Err(e)) => return Err(self.unavailable(e)),
                            None => break,
                        }
                    }
                }
                _ = ticks.tick() => {
                    if self.discovery.is_some_and(|every| discovered_at.elapsed() >= every) {
                        discovered_at = Instant::now();
                        if self.discover(&consumer).await? {
                            self.assign(&consumer)?;
                        }
                    }
                    if committed_at.elapsed() >= COMMIT_EVERY {
                        committed_at = Instant::now();
                        let safe = self.safe.lock().ok().and_then(|mut s| s.take());
                        if let Some(list) = safe {
                            // For monitoring only: a failed commit costs nothing.
                            let _ = consumer.commit(&list, CommitMode::Async);
                        }
                    }
                }
            }
            let watermark = self.partitions.watermark(Instant::now());
            let read = !batch.records.is_empty() || !batch.rejected.is_empty();
            if !read && (watermark.is_none() || watermark == sent_watermark) {
                continue;
            }
            if let Some(w) = watermark {
                sent_watermark = Some(w);
            }
            // Every batch says where the watermark is (`MIN` while it is
            // unknown, the last one while every partition is idle), so the
            // host never derives one from the records' times instead.
            batch.watermark = Some(sent_watermark.unwrap_or(i64::MIN));
            if read {
                batch.position = Some(self.partitions.position());
                let mut list = TopicPartitionList::new();
                for (topic, partition, next) in self.partitions.offsets() {
                    let _ = list.add_partition_offset(topic, partition, Offset::Offset(next));
                }
                let safe = self.safe.clone();
                batch.ack = Some(Box::new(move || {
                    if let Ok(mut slot) = safe.lock() {
                        *slot = Some(list);
                    }
                }));
            }
            out.send(batch).await?;
        }
    }

    /// One message's records into the batch, or why it has none.
    fn take(&mut self, decoder: &mut Decoder, message: &BorrowedMessage<'_>, batch: &mut Batch) {
        let topic = message.topic();
        let key = message
            .key()
            .map(String::from_utf8_lossy)
            .unwrap_or(std::borrow::Cow::Borrowed(topic));
        let meta = Meta {
            key: Some(&key),
            arrival_ms: message
                .timestamp()
                .to_millis()
                .unwrap_or_else(eddy_codec::now_ms),
        };
        let first = batch.records.len();
        let payload = message.payload().unwrap_or_default();
        if let Err(errors) = decoder.decode(payload, &meta, &mut batch.records) {
            for e in errors {
                batch.rejected.push(eddy_driver::Rejected {
                    origin: format!(
                        "{} (topic {topic}, partition {}, offset {})",
                        self.name,
                        message.partition(),
                        message.offset()
                    ),
                    input: e.input,
                    reason: e.reason,
                });
            }
        }
        self.partitions.read(
            topic,
            message.partition(),
            message.offset(),
            batch.records[first..].iter().map(|r| r.time),
            Instant::now(),
        );
    }
}

impl SourceTask for KafkaSourceTask {
    fn run<'a>(
        &'a mut self,
        out: &'a mut SourceOutput,
        resume: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(self.read(out, resume))
    }
}
