//! One connection to a broker through rumqttc, whichever protocol version:
//! the few operations eddy's components use, and the events they wait for.

use bytes::Bytes;
use rumqttc::QoS;
use rumqttc::v5;

use crate::broker::{Broker, Protocol};

/// How a component's session behaves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionOptions {
    /// Keep the session (subscriptions, messages queued for it) across
    /// connections, for this many seconds after one ends (MQTT 5; MQTT
    /// 3.1.1 keeps it until the client connects with a clean session).
    pub(crate) persistent: Option<u32>,
    /// Acknowledge received messages only when told to.
    pub(crate) manual_acks: bool,
    /// QoS 1 messages in flight at once.
    pub(crate) inflight: u16,
}

/// What the broker or the client did.
#[derive(Debug)]
pub(crate) enum Event {
    /// Connected; whether the broker kept the session (else the client
    /// dropped what it would have sent again).
    ConnAck {
        /// The broker's `session present` flag.
        session_present: bool,
    },
    /// A message for one of our subscriptions.
    Message(Box<Message>),
    /// A subscription (its packet id) was answered; the text says why it
    /// was refused.
    SubAck(u16, Option<String>),
    /// A subscription went out with this packet id.
    Subscribing(u16),
    /// A publish went out with this packet id (0 at QoS 0); a publish sent
    /// again after a reconnection shows again with its id.
    Published(u16),
    /// A publish waits for an id still in use; it goes out with it later.
    AwaitAck(u16),
    /// A QoS 1 publish was acknowledged; the text says why it was refused.
    PubAck(u16, Option<String>),
    /// Anything else (pings, our own acknowledgements).
    Other,
}

/// A received message, kept whole so that it can be acknowledged.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// Its topic.
    pub(crate) topic: String,
    /// Its payload.
    pub(crate) payload: Bytes,
    publish: Received,
}

impl Message {
    /// A message as if received over MQTT 3.1.1 with packet id `pkid`.
    #[cfg(test)]
    pub(crate) fn received(topic: &str, payload: &str, pkid: u16) -> Message {
        let mut publish =
            rumqttc::Publish::new(topic, QoS::AtLeastOnce, payload.as_bytes().to_vec());
        publish.pkid = pkid;
        Message {
            topic: topic.to_owned(),
            payload: publish.payload.clone(),
            publish: Received::V4(publish),
        }
    }

    /// The packet id it came with.
    #[cfg(test)]
    pub(crate) fn pkid(&self) -> u16 {
        match &self.publish {
            Received::V4(p) => p.pkid,
            Received::V5(p) => p.pkid,
        }
    }
}

#[derive(Debug, Clone)]
enum Received {
    V4(rumqttc::Publish),
    V5(v5::mqttbytes::v5::Publish),
}

enum Inner {
    V4(rumqttc::AsyncClient, Box<rumqttc::EventLoop>),
    V5(v5::AsyncClient, Box<v5::EventLoop>),
}

/// A connection (rumqttc's client and event loop).
pub(crate) struct Connection {
    inner: Inner,
}

/// The request queue is full: poll, then try again.
#[derive(Debug)]
pub(crate) struct Full;

fn qos(level: u8) -> QoS {
    if level == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

fn v5_qos(level: u8) -> v5::mqttbytes::QoS {
    if level == 0 {
        v5::mqttbytes::QoS::AtMostOnce
    } else {
        v5::mqttbytes::QoS::AtLeastOnce
    }
}

impl Connection {
    /// A client for `broker`; it connects at the first [`Connection::poll`].
    pub(crate) fn new(broker: &Broker, session: SessionOptions, cap: usize) -> Connection {
        let (host, port) = (broker.address.host.clone(), broker.address.port);
        let inner = match broker.protocol {
            Protocol::V311 => {
                let mut options = rumqttc::MqttOptions::new(&broker.client_id, host, port);
                options
                    .set_keep_alive(broker.keep_alive)
                    .set_clean_session(session.persistent.is_none())
                    .set_manual_acks(session.manual_acks)
                    .set_inflight(session.inflight.max(1))
                    .set_transport(broker.transport());
                if let Some((user, password)) = &broker.credentials {
                    options.set_credentials(user, password);
                }
                let (client, events) = rumqttc::AsyncClient::new(options, cap);
                Inner::V4(client, Box::new(events))
            }
            Protocol::V5 => {
                let mut options = v5::MqttOptions::new(&broker.client_id, host, port);
                options
                    .set_keep_alive(broker.keep_alive)
                    .set_clean_start(session.persistent.is_none())
                    .set_session_expiry_interval(session.persistent)
                    .set_manual_acks(session.manual_acks)
                    .set_outgoing_inflight_upper_limit(session.inflight.max(1))
                    .set_transport(broker.transport());
                if let Some((user, password)) = &broker.credentials {
                    options.set_credentials(user, password);
                }
                let (client, events) = v5::AsyncClient::new(options, cap);
                Inner::V5(client, Box::new(events))
            }
        };
        Connection { inner }
    }

    /// The next event; an error means the connection is gone.
    pub(crate) async fn poll(&mut self) -> Result<Event, String> {
        match &mut self.inner {
            Inner::V4(_, events) => {
                let event = events.poll().await.map_err(|e| e.to_string())?;
                Ok(match event {
                    rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack)) => Event::ConnAck {
                        session_present: ack.session_present,
                    },
                    rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish)) => {
                        Event::Message(Box::new(Message {
                            topic: publish.topic.clone(),
                            payload: publish.payload.clone(),
                            publish: Received::V4(publish),
                        }))
                    }
                    rumqttc::Event::Incoming(rumqttc::Packet::SubAck(ack)) => {
                        let refused = ack
                            .return_codes
                            .iter()
                            .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                        Event::SubAck(
                            ack.pkid,
                            refused.then(|| "the broker refused a subscription".into()),
                        )
                    }
                    rumqttc::Event::Incoming(rumqttc::Packet::PubAck(ack)) => {
                        Event::PubAck(ack.pkid, None)
                    }
                    rumqttc::Event::Outgoing(rumqttc::Outgoing::Publish(pkid)) => {
                        Event::Published(pkid)
                    }
                    rumqttc::Event::Outgoing(rumqttc::Outgoing::AwaitAck(pkid)) => {
                        Event::AwaitAck(pkid)
                    }
                    rumqttc::Event::Outgoing(rumqttc::Outgoing::Subscribe(pkid)) => {
                        Event::Subscribing(pkid)
                    }
                    _ => Event::Other,
                })
            }
            Inner::V5(_, events) => {
                use v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
                let event = events.poll().await.map_err(|e| e.to_string())?;
                Ok(match event {
                    v5::Event::Incoming(Packet::ConnAck(ack)) => Event::ConnAck {
                        session_present: ack.session_present,
                    },
                    v5::Event::Incoming(Packet::Publish(publish)) => {
                        Event::Message(Box::new(Message {
                            topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                            payload: publish.payload.clone(),
                            publish: Received::V5(publish),
                        }))
                    }
                    v5::Event::Incoming(Packet::SubAck(ack)) => {
                        let refused = ack
                            .return_codes
                            .iter()
                            .find(|c| !matches!(c, SubscribeReasonCode::Success(_)));
                        Event::SubAck(
                            ack.pkid,
                            refused.map(|c| format!("the broker refused a subscription: {c:?}")),
                        )
                    }
                    v5::Event::Incoming(Packet::PubAck(ack)) => {
                        use v5::mqttbytes::v5::PubAckReason;
                        let refused = match ack.reason {
                            PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                            reason => Some(format!("the broker refused a publish: {reason:?}")),
                        };
                        Event::PubAck(ack.pkid, refused)
                    }
                    v5::Event::Outgoing(rumqttc::Outgoing::Publish(pkid)) => Event::Published(pkid),
                    v5::Event::Outgoing(rumqttc::Outgoing::AwaitAck(pkid)) => Event::AwaitAck(pkid),
                    v5::Event::Outgoing(rumqttc::Outgoing::Subscribe(pkid)) => {
                        Event::Subscribing(pkid)
                    }
                    _ => Event::Other,
                })
            }
        }
    }

    /// Events already read from the broker that [`Connection::poll`]
    /// gives without waiting.
    pub(crate) fn buffered(&self) -> usize {
        match &self.inner {
            Inner::V4(_, events) => events.state.events.len(),
            Inner::V5(_, events) => events.state.events.len(),
        }
    }

    /// Queues a QoS 1 publish without properties.
    pub(crate) fn try_publish_plain(&self, topic: &str, payload: Vec<u8>) -> Result<(), Full> {
        match &self.inner {
            Inner::V4(client, _) => client
                .try_publish(topic, QoS::AtLeastOnce, false, payload)
                .map_err(|_| Full),
            Inner::V5(client, _) => client
                .try_publish(topic, v5::mqttbytes::QoS::AtLeastOnce, false, payload)
                .map_err(|_| Full),
        }
    }

    /// Queues subscriptions to `filters` at QoS `level`; they go out as
    /// the connection is polled.
    pub(crate) fn subscribe(&self, filters: &[String], level: u8) -> Result<(), String> {
        for filter in filters {
            match &self.inner {
                Inner::V4(client, _) => client
                    .try_subscribe(filter, qos(level))
                    .map_err(|e| e.to_string())?,
                Inner::V5(client, _) => client
                    .try_subscribe(filter, v5_qos(level))
                    .map_err(|e| e.to_string())?,
            }
        }
        Ok(())
    }

    /// What queues requests on this connection from another task.
    pub(crate) fn requests(&self) -> Requests {
        match &self.inner {
            Inner::V4(client, _) => Requests::V4(client.clone()),
            Inner::V5(client, _) => Requests::V5(client.clone()),
        }
    }

    /// What acknowledges received messages from another thread.
    pub(crate) fn acker(&self) -> Acker {
        match &self.inner {
            Inner::V4(client, _) => Acker::V4(client.clone()),
            Inner::V5(client, _) => Acker::V5(client.clone()),
        }
    }
}

/// Acknowledges messages received on one connection (with manual
/// acknowledgements); cheap to clone.
#[derive(Clone)]
pub(crate) enum Acker {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

impl Acker {
    /// Acknowledges `message`, waiting for room in the connection's queue;
    /// false when the connection is gone (the broker then sends the message
    /// again on the next connection).
    pub(crate) async fn ack(&self, message: &Message) -> bool {
        match (self, &message.publish) {
            (Acker::V4(client), Received::V4(p)) => client.ack(p).await.is_ok(),
            (Acker::V5(client), Received::V5(p)) => client.ack(p).await.is_ok(),
            _ => false,
        }
    }
}

/// A publish, as [`Requests::try_publish`] queues it.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// Its topic.
    pub(crate) topic: String,
    /// Its payload.
    pub(crate) payload: Vec<u8>,
    /// 0 or 1.
    pub(crate) qos: u8,
    /// Whether the broker keeps it for new subscribers.
    pub(crate) retain: bool,
    /// MQTT 5: its content type and user properties.
    pub(crate) content_type: Option<String>,
    /// MQTT 5 user properties.
    pub(crate) user_properties: Vec<(String, String)>,
}

/// Queues requests on a connection without waiting (its event loop takes
/// them out as it is polled); cheap to clone.
#[derive(Clone)]
pub(crate) enum Requests {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

impl Requests {
    /// Queues a publish.
    pub(crate) fn try_publish(&self, publish: &Outgoing) -> Result<(), Full> {
        match self {
            Requests::V4(client) => client
                .try_publish(
                    &publish.topic,
                    qos(publish.qos),
                    publish.retain,
                    publish.payload.clone(),
                )
                .map_err(|_| Full),
            Requests::V5(client) => {
                let properties = v5::mqttbytes::v5::PublishProperties {
                    content_type: publish.content_type.clone(),
                    user_properties: publish.user_properties.clone(),
                    ..Default::default()
                };
                client
                    .try_publish_with_properties(
                        &publish.topic,
                        v5_qos(publish.qos),
                        publish.retain,
                        publish.payload.clone(),
                        properties,
                    )
                    .map_err(|_| Full)
            }
        }
    }

    /// Queues a subscription.
    pub(crate) fn try_subscribe(&self, filter: &str, level: u8) -> Result<(), Full> {
        match self {
            Requests::V4(client) => client.try_subscribe(filter, qos(level)).map_err(|_| Full),
            Requests::V5(client) => client
                .try_subscribe(filter, v5_qos(level))
                .map_err(|_| Full),
        }
    }

    /// Queues the acknowledgement of `message`.
    pub(crate) fn try_ack(&self, message: &Message) -> Result<(), Full> {
        match (self, &message.publish) {
            (Requests::V4(client), Received::V4(p)) => client.try_ack(p).map_err(|_| Full),
            (Requests::V5(client), Received::V5(p)) => client.try_ack(p).map_err(|_| Full),
            // Not of this connection: nothing to acknowledge.
            _ => Ok(()),
        }
    }
}
