//! Broker connections shared by components: a pipeline's `[brokers.NAME]`
//! tables, which sources, sinks and the device twin name with
//! `broker = "NAME"` instead of a table of their own. Each is one
//! connection (one client id, one TLS session, one login) however many
//! components use it, as a cloud service that allows one connection per
//! device asks.
//!
//! The connection starts with the first component that uses it, on the
//! async runtime: one task polls the client, another routes its events
//! to the components ([`router`]) and queues their requests.

mod filter;
mod router;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use eddy_driver::{Invalid, Spanned};
use tokio::sync::{mpsc, oneshot};

pub(crate) use self::router::{Answer, Failed, SharedEvent};
use self::router::{Command, Request, Router};
use crate::broker::{Broker, BrokerConfig};
use crate::client::{Connection, Outgoing, Requests, SessionOptions};

/// Messages the broker may send before the shared connection acknowledges
/// one.
const INFLIGHT: u16 = 1024;

/// The pipeline's shared broker connections, by name: a service the
/// runtime hands to components.
#[derive(Debug, Default)]
pub struct SharedBrokers {
    by_name: BTreeMap<String, Arc<SharedBroker>>,
}

impl SharedBrokers {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `[brokers.NAME]`, checked (its files relative to `base_dir`);
    /// nothing connects until a component uses it.
    pub fn add(
        &mut self,
        name: &str,
        config: &BrokerConfig,
        base_dir: &Path,
    ) -> Result<(), Invalid> {
        let broker = config.broker(base_dir)?;
        let (commands, receiver) = mpsc::unbounded_channel();
        self.by_name.insert(
            name.to_owned(),
            Arc::new(SharedBroker {
                name: name.to_owned(),
                session_expiry_s: config.session_expiry_s,
                broker,
                commands,
                receiver: Mutex::new(Some(receiver)),
                next_id: AtomicU64::new(1),
            }),
        );
        Ok(())
    }

    /// The connection named `name` (as the component's `broker` setting
    /// names it), or why there is none.
    pub(crate) fn get(&self, name: &Spanned<String>) -> Result<Arc<SharedBroker>, Invalid> {
        self.by_name.get(name.get_ref()).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
            Invalid::at(
                name,
                if known.is_empty() {
                    format!(
                        "no [brokers.{}] table: the pipeline names no shared broker",
                        name.get_ref()
                    )
                } else {
                    format!(
                        "no [brokers.{}] table (there are: {})",
                        name.get_ref(),
                        known.join(", ")
                    )
                },
            )
        })
    }
}

/// One shared connection.
pub(crate) struct SharedBroker {
    name: String,
    session_expiry_s: Option<u32>,
    /// Its settings.
    pub(crate) broker: Broker,
    commands: mpsc::UnboundedSender<Command>,
    /// Taken by the task that runs the connection, once started.
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Command>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for SharedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBroker")
            .field("name", &self.name)
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

impl SharedBroker {
    /// The broker, as status and errors name it.
    pub(crate) fn peer(&self) -> String {
        format!("{} (shared as `{}`)", self.broker.peer(), self.name)
    }

    /// A component joins (starting the connection if it is the first, on
    /// the runtime it runs on); `manual_acks`: it acknowledges messages by
    /// hand, once they are safe.
    pub(crate) fn join(&self, manual_acks: bool) -> Member {
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(receiver) = receiver {
            let session = SessionOptions {
                persistent: self.session_expiry_s,
                manual_acks: true,
                inflight: INFLIGHT,
            };
            let connection = Connection::new(&self.broker, session, usize::from(INFLIGHT) * 2);
            tokio::spawn(run(connection, receiver, self.commands.clone()));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (events_tx, events) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let _ = self.commands.send(Command::Join {
            id,
            manual_acks,
            events: events_tx,
            queued: queued.clone(),
        });
        Member {
            id,
            events,
            queued,
            commands: self.commands.clone(),
        }
    }
}

/// A component's place on a shared connection; it leaves when dropped.
#[derive(Debug)]
pub(crate) struct Member {
    id: u64,
    events: mpsc::UnboundedReceiver<SharedEvent>,
    /// Messages sent to it and not taken yet.
    queued: Arc<AtomicUsize>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Member {
    /// The next event.
    pub(crate) async fn next(&mut self) -> SharedEvent {
        let event = self
            .events
            .recv()
            .await
            .unwrap_or_else(|| SharedEvent::Down("the shared connection stopped".into()));
        if matches!(event, SharedEvent::Message(_)) {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
        event
    }

    /// Subscribes to `filters` at QoS `qos`; each is answered with a
    /// [`SharedEvent::Subscribed`].
    pub(crate) fn subscribe(&self, filters: &[String], qos: u8) {
        let _ = self.commands.send(Command::Subscribe {
            id: self.id,
            filters: filters.to_vec(),
            qos,
        });
    }

    /// Publishes; the answer comes when the broker acknowledged it (QoS 1)
    /// or it went out (QoS 0).
    pub(crate) fn publish(&self, publish: Outgoing) -> oneshot::Receiver<Answer> {
        let (done, answer) = oneshot::channel();
        let _ = self.commands.send(Command::Publish { publish, done });
        answer
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Leave { id: self.id });
    }
}

/// Runs a shared connection: one task polls the client (so that its
/// queue always drains), this one routes.
async fn run(
    mut connection: Connection,
    mut commands: mpsc::UnboundedReceiver<Command>,
    tokens: mpsc::UnboundedSender<Command>,
) {
    let requests = connection.requests();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let poller = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let event = connection.poll().await;
            let failed = event.is_err();
            if events_tx.send(event).is_err() {
                return;
            }
            if failed {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            } else {
                backoff = Duration::from_millis(100);
            }
        }
    });
    let mut router = Router::new(tokens);
    let mut retry = tokio::time::interval(Duration::from_millis(20));
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => router.command(command),
                None => break,
            },
            event = events.recv() => match event {
                Some(Ok(event)) => router.event(event),
                // Each component shows the reason in its health.
                Some(Err(e)) => router.down(&e),
                None => break,
            },
            _ = retry.tick(), if !router.requests.is_empty() => {}
            _ = sweep.tick() => router.sweep(std::time::Instant::now()),
        }
        queue(&mut router, &requests);
    }
    poller.abort();
}

/// Moves requests into the client's queue while it has room.
fn queue(router: &mut Router, requests: &Requests) {
    while let Some(request) = router.requests.front() {
        let queued = match request {
            Request::Subscribe { filter, qos } => requests.try_subscribe(filter, *qos),
            Request::Publish(publish) => requests.try_publish(publish),
            Request::Ack(message) => requests.try_ack(message),
        };
        if queued.is_err() {
            return;
        }
        if let Some(request) = router.requests.pop_front() {
            router.handed(&request);
        }
    }
}
