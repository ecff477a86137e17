//! A broker connection for the host's own services (device twin sync):
//! subscribe, publish at QoS 1, and receive, over the same client and
//! broker settings the `mqtt` source and sink use.

use std::path::Path;

use eddy_driver::Invalid;

use crate::broker::{Broker, BrokerConfig};
use crate::client::{Connection, Event, SessionOptions};

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

/// One connection to a broker, with a clean session: it connects at the
/// first [`Link::poll`], and again at the next poll after an error.
pub struct Link {
    connection: Connection,
    peer: String,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("peer", &self.peer).finish()
    }
}

impl Link {
    /// Checks `config` (files relative to `base_dir`) without connecting.
    pub fn check(config: &BrokerConfig, base_dir: &Path) -> Result<(), Invalid> {
        config.broker(base_dir).map(drop)
    }

    /// A link made from `config`; it connects when first polled.
    pub fn open(config: &BrokerConfig, base_dir: &Path) -> Result<Link, Invalid> {
        let broker: Broker = config.broker(base_dir)?;
        let session = SessionOptions {
            persistent: None,
            manual_acks: false,
            inflight: 32,
        };
        Ok(Link {
            connection: Connection::new(&broker, session, QUEUE),
            peer: broker.peer(),
        })
    }

    /// The broker, as status and errors name it.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The next event; an error means the connection is down (the next
    /// poll connects again).
    pub async fn poll(&mut self) -> Result<LinkEvent, String> {
        Ok(match self.connection.poll().await? {
            Event::ConnAck => LinkEvent::Connected,
            Event::SubAck(refused) => LinkEvent::Subscribed(refused.map_or(Ok(()), Err)),
            Event::Message(message) => LinkEvent::Message {
                topic: message.topic,
                payload: message.payload.to_vec(),
            },
            _ => LinkEvent::Other,
        })
    }

    /// Queues subscriptions to `filters` at QoS 1.
    pub fn subscribe(&self, filters: &[String]) -> Result<(), String> {
        self.connection.subscribe(filters, 1)
    }

    /// Queues a QoS 1 publish.
    pub fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), String> {
        self.connection
            .try_publish_plain(topic, payload)
            .map_err(|_| "the client's queue is full".to_owned())
    }
}
