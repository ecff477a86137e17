//! Producing batches, on the async runtime.

use std::collections::VecDeque;
use std::time::Duration;

use eddy_driver::BoxFuture;
use eddy_sink::{Message, OwnedOut, Refused, SinkError, SinkTask, TopicTemplate};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord, Producer};

use super::config::MessageKey;
use super::producers;

/// How long a sink waits before trying again when the producer it shares
/// has a full queue and none of it is the sink's own.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(20);

/// How long the cluster has to answer when the sink connects.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Produces batches of results, in order, and returns once every in-sync
/// replica has each (`acks=all`).
pub struct KafkaSinkTask {
    config: ClientConfig,
    peer: String,
    topic: TopicTemplate,
    pipeline: String,
    key: MessageKey,
    ack_timeout: Duration,
    /// Shared with the other sinks of the same cluster and settings.
    producer: Option<producers::Shared>,
    /// Reused buffers.
    message: Message,
}

impl KafkaSinkTask {
    pub(crate) fn new(
        config: ClientConfig,
        peer: String,
        topic: TopicTemplate,
        pipeline: String,
        key: MessageKey,
        ack_timeout: Duration,
    ) -> Self {
        KafkaSinkTask {
            config,
            peer,
            topic,
            pipeline,
            key,
            ack_timeout,
            producer: None,
            message: Message::default(),
        }
    }

    fn unavailable(&self, e: impl ToString) -> SinkError {
        SinkError::unavailable(&self.peer, e)
    }

    async fn open(&mut self) -> Result<(), SinkError> {
        let producer = match &self.producer {
            Some(p) => p.clone(),
            None => {
                producers::shared(&self.config).map_err(|e| SinkError::Config(e.to_string()))?
            }
        };
        // The cluster answers: metadata comes back.
        let probe = producer.clone();
        let timeout = CONNECT_TIMEOUT.min(self.ack_timeout);
        tokio::task::spawn_blocking(move || probe.client().fetch_metadata(None, timeout))
            .await
            .map_err(|e| self.unavailable(e))?
            .map_err(|e| self.unavailable(e))?;
        // One producer for the sink's life: its idempotence state (producer
        // id, sequence numbers) is what keeps retried sends single. Sinks
        // sharing it send to their own topics; order holds per partition.
        self.producer = Some(producer);
        Ok(())
    }

    async fn produce(&mut self, batch: &[OwnedOut]) -> Result<Refused, SinkError> {
        let Some(producer) = self.producer.clone() else {
            return Err(self.unavailable("not connected"));
        };
        let mut refused = Refused::new();
        let mut pending: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();
        for (i, out) in batch.iter().enumerate() {
            if let Err(why) = self.message.render(&self.topic, &self.pipeline, out) {
                refused.push((i, why));
                continue;
            }
            let full_since = std::time::Instant::now();
            loop {
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "result_id",
                        value: Some(out.id.as_str()),
                    })
                    .insert(Header {
                        key: "output",
                        value: Some(&*out.output),
                    });
                let record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&self.message.topic)
                    .payload(&self.message.payload[..])
                    .headers(headers);
                let record = match self.key {
                    MessageKey::Record => record.key(&*out.record.key),
                    MessageKey::ResultId => record.key(out.id.as_str()),
                    MessageKey::None => record,
                };
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push_back((i, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // The client's queue is full: wait for the oldest of
                        // ours, or, with none (another sink sharing the
                        // producer filled it), a moment, until the
                        // acknowledgement timeout says the cluster is gone.
                        match pending.pop_front() {
                            Some((j, oldest)) => self.delivered(j, oldest, &mut refused).await?,
                            None if full_since.elapsed() < self.ack_timeout => {
                                tokio::time::sleep(QUEUE_FULL_WAIT).await;
                            }
                            None => {
                                return Err(self.unavailable("the producer's queue stays full"));
                            }
                        }
                    }
                    Err((e, _)) if permanent(&e) => {
                        refused.push((i, e.to_string()));
                        break;
                    }
                    Err((e, _)) => return Err(self.unavailable(e)),
                }
            }
        }
        while let Some((i, delivery)) = pending.pop_front() {
            self.delivered(i, delivery, &mut refused).await?;
        }
        refused.sort_by_key(|(i, _)| *i);
        Ok(refused)
    }

    /// Waits for one result's acknowledgement.
    async fn delivered(
        &self,
        i: usize,
        delivery: DeliveryFuture,
        refused: &mut Refused,
    ) -> Result<(), SinkError> {
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) if permanent(&e) => {
                refused.push((i, e.to_string()));
                Ok(())
            }
            Ok(Err((e, _))) => Err(self.unavailable(e)),
            Err(_) => Err(self.unavailable("the producer went away")),
        }
    }
}

/// Errors no retry can mend: the result goes to the dead-letter log.
fn permanent(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::TopicAuthorizationFailed
        )
    )
}

impl SinkTask for KafkaSinkTask {
    fn connect(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(self.open())
    }

    fn deliver<'a>(
        &'a mut self,
        batch: &'a [OwnedOut],
    ) -> BoxFuture<'a, Result<Refused, SinkError>> {
        Box::pin(self.produce(batch))
    }
}
