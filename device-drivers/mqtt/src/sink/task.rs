//! Publishing batches, on the async runtime.

use std::collections::HashMap;
use std::time::Duration;

use eddy_driver::BoxFuture;
use eddy_sink::{OwnedOut, Refused, SinkError, SinkTask, TopicTemplate};

use crate::broker::Broker;
use crate::client::{Connection, Event, SessionOptions};

/// QoS 1 publishes in flight at once.
const INFLIGHT: u16 = 1024;

/// Publishes batches of results, in order, and returns once the broker
/// has acknowledged each (QoS 1) or each has gone out (QoS 0).
pub struct MqttSinkTask {
    broker: Broker,
    topic: TopicTemplate,
    pipeline: String,
    qos: u8,
    retain: bool,
    ack_timeout: Duration,
    connection: Option<Connection>,
    /// Reused buffers.
    topic_buf: String,
    payload: Vec<u8>,
}

impl MqttSinkTask {
    pub(crate) fn new(
        broker: Broker,
        topic: TopicTemplate,
        pipeline: String,
        qos: u8,
        retain: bool,
        ack_timeout: Duration,
    ) -> Self {
        MqttSinkTask {
            broker,
            topic,
            pipeline,
            qos,
            retain,
            ack_timeout,
            connection: None,
            topic_buf: String::new(),
            payload: Vec::new(),
        }
    }

    fn unavailable(&mut self, message: impl ToString) -> SinkError {
        self.connection = None;
        SinkError::unavailable(self.broker.peer(), message)
    }

    async fn open(&mut self) -> Result<(), SinkError> {
        let session = SessionOptions {
            persistent: None,
            manual_acks: false,
            inflight: INFLIGHT,
        };
        let mut connection = Connection::new(&self.broker, session, usize::from(INFLIGHT));
        let connected = tokio::time::timeout(self.broker.connect_timeout, async {
            loop {
                match connection.poll().await? {
                    Event::ConnAck => return Ok::<(), String>(()),
                    _ => continue,
                }
            }
        })
        .await;
        match connected {
            Ok(Ok(())) => {
                self.connection = Some(connection);
                Ok(())
            }
            Ok(Err(e)) => Err(self.unavailable(e)),
            Err(_) => Err(self.unavailable(format!(
                "no answer within {} ms",
                self.broker.connect_timeout.as_millis()
            ))),
        }
    }

    async fn publish(&mut self, batch: &[OwnedOut]) -> Result<Refused, SinkError> {
        let Some(mut connection) = self.connection.take() else {
            return Err(self.unavailable("not connected"));
        };
        let result = self.publish_on(&mut connection, batch).await;
        if result.is_ok() {
            self.connection = Some(connection);
        }
        result
    }

    async fn publish_on(
        &mut self,
        connection: &mut Connection,
        batch: &[OwnedOut],
    ) -> Result<Refused, SinkError> {
        let mut queued = 0;
        // Publishes gone out, in order, by packet id: the index of each.
        let mut sent = 0;
        let mut by_pkid: HashMap<u16, usize> = HashMap::new();
        let mut done = 0;
        let mut refused = Refused::new();
        while done < batch.len() {
            // Queue as many as the client takes; it sends them in order.
            while queued < batch.len() {
                let out = &batch[queued];
                self.topic.render(
                    &self.pipeline,
                    &out.output,
                    &out.record.key,
                    &mut self.topic_buf,
                );
                if let Err(e) = eddy_codec::write_json_message(
                    &mut self.payload,
                    Some(&out.output),
                    Some(&out.id),
                    &out.record,
                ) {
                    refused.push((queued, e.to_string()));
                    done += 1;
                    queued += 1;
                    continue;
                }
                let payload = self.payload.clone();
                if connection
                    .try_publish(&self.topic_buf, self.qos, self.retain, payload, &out.id)
                    .is_err()
                {
                    break;
                }
                queued += 1;
            }
            let event = tokio::time::timeout(self.ack_timeout, connection.poll()).await;
            let event = match event {
                Ok(Ok(event)) => event,
                Ok(Err(e)) => return Err(self.unavailable(e)),
                Err(_) => {
                    return Err(self.unavailable(format!(
                        "no acknowledgement within {} ms",
                        self.ack_timeout.as_millis()
                    )));
                }
            };
            match event {
                Event::Sent(pkid) => {
                    // Skip the indices of results refused before sending.
                    while refused.iter().any(|(i, _)| *i == sent) {
                        sent += 1;
                    }
                    if self.qos == 0 {
                        done += 1;
                    } else {
                        by_pkid.insert(pkid, sent);
                    }
                    sent += 1;
                }
                Event::PubAck { pkid, refused: why } => {
                    if let Some(index) = by_pkid.remove(&pkid) {
                        if let Some(why) = why {
                            refused.push((index, why));
                        }
                        done += 1;
                    }
                }
                _ => {}
            }
        }
        Ok(refused)
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
}
