//! A broker connection for the host's own services (device twin sync):
//! subscribe, publish at QoS 1, and receive, over the same client and
//! broker settings the `mqtt` source and sink use.

use std::path::Path;

use eddy_driver::Invalid;

use std::sync::Arc;

use eddy_driver::Spanned;

use crate::broker::{Broker, BrokerRef};
use crate::client::{Connection, Event, Outgoing, SessionOptions};
use crate::shared::{Member, SharedBroker, SharedBrokers, SharedEvent};

/// Requests queued in the client before `publish` reports it full.
const QUEUE: usize = 256;

/// What happened on a [`Link`].
#[derive(Debug)]
pub enum LinkEvent {
    /// Connected (again): subscriptions have to be made again.
    Connected,
    /// Subscriptions were answered: `Err` names a refusal.
    Subscribed(Result<(), String>),
    /// A message for a subscription.
    Message {
        /// Its topic.
        topic: String,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// Anything else (acknowledgements, pings).
    Other,
}

/// One connection to a broker, with a clean session, or a place on a
/// shared one: it connects at the first [`Link::poll`], and again at the
/// next poll after an error.
pub struct Link {
    inner: Inner,
    peer: String,
    client_id: String,
}

enum Inner {
    Own(Connection),
    /// Joined at the first poll (on the runtime).
    Shared(Arc<SharedBroker>, Option<Member>),
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("peer", &self.peer).finish()
    }
}

impl Link {
    /// Checks `broker` (files relative to `base_dir`, a shared broker
    /// among `shared`) without connecting.
    pub fn check(
        broker: &Spanned<BrokerRef>,
        base_dir: &Path,
        shared: &SharedBrokers,
    ) -> Result<(), Invalid> {
        match broker.get_ref() {
            BrokerRef::Own(config) => config.broker(base_dir).map(drop),
            BrokerRef::Shared(name) => shared
                .get(&Spanned::new(broker.span(), name.clone()))
                .map(drop),
        }
    }

    /// A link made from `broker`; it connects when first polled.
    pub fn open(
        broker: &Spanned<BrokerRef>,
        base_dir: &Path,
        shared: &SharedBrokers,
    ) -> Result<Link, Invalid> {
        match broker.get_ref() {
            BrokerRef::Own(config) => {
                let broker: Broker = config.broker(base_dir)?;
                let session = SessionOptions {
                    persistent: None,
                    manual_acks: false,
                    inflight: 32,
                };
                Ok(Link {
                    inner: Inner::Own(Connection::new(&broker, session, QUEUE)),
                    peer: broker.peer(),
                    client_id: broker.client_id.clone(),
                })
            }
            BrokerRef::Shared(name) => {
                let shared = shared.get(&Spanned::new(broker.span(), name.clone()))?;
                Ok(Link {
                    peer: shared.peer(),
                    client_id: shared.broker.client_id.clone(),
                    inner: Inner::Shared(shared, None),
                })
            }
        }
    }

    /// The client id the broker knows this link by.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The broker, as status and errors name it.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The next event; an error means the connection is down (the next
    /// poll connects again).
    pub async fn poll(&mut self) -> Result<LinkEvent, String> {
        let (shared, member) = match &mut self.inner {
            Inner::Own(connection) => {
                return Ok(match connection.poll().await? {
                    Event::ConnAck { .. } => LinkEvent::Connected,
                    Event::SubAck(_, refused) => LinkEvent::Subscribed(refused.map_or(Ok(()), Err)),
                    Event::Message(message) => LinkEvent::Message {
                        topic: message.topic,
                        payload: message.payload.to_vec(),
                    },
                    _ => LinkEvent::Other,
                });
            }
            Inner::Shared(shared, member) => (shared, member),
        };
        let member = member.get_or_insert_with(|| shared.join(false));
        Ok(match member.next().await {
            SharedEvent::Connected => LinkEvent::Connected,
            SharedEvent::Down(why) => return Err(why),
            SharedEvent::Subscribed(result) => LinkEvent::Subscribed(result),
            SharedEvent::Message(message) => LinkEvent::Message {
                topic: message.topic,
                payload: message.payload.to_vec(),
            },
        })
    }

    /// Queues subscriptions to `filters` at QoS 1.
    pub fn subscribe(&self, filters: &[String]) -> Result<(), String> {
        match &self.inner {
            Inner::Own(connection) => connection.subscribe(filters, 1),
            Inner::Shared(_, Some(member)) => {
                member.subscribe(filters, 1);
                Ok(())
            }
            Inner::Shared(_, None) => Err("not connected yet".into()),
        }
    }

    /// Queues a QoS 1 publish.
    pub fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), String> {
        match &self.inner {
            Inner::Own(connection) => connection
                .try_publish_plain(topic, payload)
                .map_err(|_| "the client's queue is full".to_owned()),
            Inner::Shared(_, Some(member)) => {
                // Its answer is the shadow service's reply, not the
                // acknowledgement.
                drop(member.publish(Outgoing {
                    topic: topic.to_owned(),
                    payload,
                    qos: 1,
                    retain: false,
                    content_type: None,
                    user_properties: Vec::new(),
                }));
                Ok(())
            }
            Inner::Shared(_, None) => Err("not connected yet".into()),
        }
    }
}
