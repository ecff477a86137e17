//! The core of a shared connection, without I/O: which component asked
//! for what, and where each event of the connection goes.
//!
//! - A message goes to every component whose filters match its topic. It
//!   is acknowledged to the broker once every component that acknowledges
//!   by hand has done so (a source, once the pipeline has the message
//!   safe), or at once if none does.
//! - Publishes are matched to their acknowledgements by packet id: the
//!   client gives ids in the order publishes were queued, and says so
//!   (`Published`), so the oldest publish not yet given an id takes the
//!   next one; a publish sent again after a reconnection keeps its id and
//!   is not taken for a new one. Subscriptions likewise.
//! - A message no component's filters match yet (a kept session's
//!   messages come right after connecting, before the components have
//!   subscribed again; a source restarting after a backoff) waits,
//!   unacknowledged, for a component to subscribe to it. One that matches
//!   a filter a component acknowledging by hand ever subscribed to on this
//!   connection waits however long it takes (its source comes back, or the
//!   next connection gets it again); any other that nobody claims within
//!   [`CLAIM_WAIT`] is acknowledged and dropped (no component wants it).
//! - A component that does not acknowledge by hand (QoS 0, the twin) has
//!   at most [`MAX_QUEUED`] messages waiting for it; more are dropped, as
//!   QoS 0 allows, rather than held in memory.
//! - An acknowledgement of a message received before the connection broke
//!   is not sent on the new one (the broker sends the message again).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::filter::matches;
use crate::client::{Event, Message, Outgoing};

/// How long a message no component subscribed to waits for one.
pub(crate) const CLAIM_WAIT: Duration = Duration::from_secs(10);

/// The most messages waiting for a component that does not acknowledge
/// by hand.
pub(crate) const MAX_QUEUED: usize = 8192;

/// What a component hears from a shared connection.
#[derive(Debug)]
pub(crate) enum SharedEvent {
    /// The connection is up (again): subscriptions are to be made again.
    Connected,
    /// The connection broke; it is being made again.
    Down(String),
    /// A subscription of this component was answered.
    Subscribed(Result<(), String>),
    /// A message for one of its filters.
    Message(SharedMessage),
}

/// A message as a component gets it.
#[derive(Debug)]
pub(crate) struct SharedMessage {
    /// Its topic.
    pub(crate) topic: String,
    /// Its payload.
    pub(crate) payload: bytes::Bytes,
    /// For a component that acknowledges by hand: call it once the
    /// message is safe.
    pub(crate) ack: Option<AckToken>,
}

/// One component's share of a message's acknowledgement.
#[derive(Debug)]
pub(crate) struct AckToken(Arc<PendingAck>);

#[derive(Debug)]
struct PendingAck {
    message: Box<Message>,
    generation: u64,
    /// Components that have not acknowledged yet.
    left: AtomicUsize,
    commands: mpsc::UnboundedSender<Command>,
}

impl AckToken {
    /// This component has the message safe; the last one to say so
    /// acknowledges it to the broker.
    pub(crate) fn ack(self) {
        if self.0.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.0.commands.send(Command::Ack {
                generation: self.0.generation,
                message: self.0.message.clone(),
            });
        }
    }
}

/// Why a publish was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failed {
    /// The broker refused it (MQTT 5 reason): sending it again will not
    /// help.
    Refused(String),
    /// The connection broke and took it: it is to be sent again.
    Lost(String),
}

/// What a publish comes to.
pub(crate) type Answer = Result<(), Failed>;

/// What components ask of the connection.
#[derive(Debug)]
pub(crate) enum Command {
    /// A component joins: it hears events through `events`; `queued`
    /// counts the messages it has not taken yet.
    Join {
        id: u64,
        manual_acks: bool,
        events: mpsc::UnboundedSender<SharedEvent>,
        queued: Arc<AtomicUsize>,
    },
    /// It leaves.
    Leave { id: u64 },
    /// It subscribes to `filters`.
    Subscribe {
        id: u64,
        filters: Vec<String>,
        qos: u8,
    },
    /// It publishes; `done` hears the broker's acknowledgement (QoS 1) or
    /// that it went out (QoS 0).
    Publish {
        publish: Outgoing,
        done: oneshot::Sender<Answer>,
    },
    /// A message is acknowledged by every component that had it.
    Ack {
        generation: u64,
        message: Box<Message>,
    },
}

/// A request for the client's queue.
#[derive(Debug)]
pub(crate) enum Request {
    Subscribe { filter: String, qos: u8 },
    Publish(Outgoing),
    Ack(Box<Message>),
}

struct Member {
    manual_acks: bool,
    filters: Vec<String>,
    events: mpsc::UnboundedSender<SharedEvent>,
    /// Messages sent to it and not taken yet.
    queued: Arc<AtomicUsize>,
}

/// The state of a shared connection.
pub(crate) struct Router {
    members: BTreeMap<u64, Member>,
    /// Requests for the client's queue, in order.
    pub(crate) requests: VecDeque<Request>,
    /// Publishes queued and not given an id yet, oldest first.
    unnumbered: VecDeque<oneshot::Sender<Answer>>,
    /// Publishes awaiting their acknowledgement, by id (more than one only
    /// while a new publish waits for an id still in use).
    numbered: HashMap<u16, VecDeque<oneshot::Sender<Answer>>>,
    /// Subscriptions queued and not given an id yet: their component.
    subscribing: VecDeque<u64>,
    /// Publishes and subscriptions handed to the client and not given an
    /// id yet (the oldest of `unnumbered` and `subscribing`): the client
    /// drops them when it connects again without a kept session.
    handed_publishes: usize,
    handed_subscriptions: usize,
    /// Subscriptions awaiting their answer, by id.
    subscribed: HashMap<u16, u64>,
    /// Messages no component has claimed yet, oldest first, with when
    /// they came.
    unclaimed: VecDeque<(Instant, Box<Message>)>,
    /// Filters components that acknowledge by hand subscribed to on this
    /// connection: a message they match is never dropped unclaimed.
    kept_for: Vec<String>,
    /// Counts connections made, so that an acknowledgement knows its own.
    generation: u64,
    connected: bool,
    commands: mpsc::UnboundedSender<Command>,
}

impl Router {
    /// A router whose acknowledgement tokens send their command to
    /// `commands`.
    pub(crate) fn new(commands: mpsc::UnboundedSender<Command>) -> Router {
        Router {
            members: BTreeMap::new(),
            requests: VecDeque::new(),
            unnumbered: VecDeque::new(),
            numbered: HashMap::new(),
            subscribing: VecDeque::new(),
            handed_publishes: 0,
            handed_subscriptions: 0,
            subscribed: HashMap::new(),
            unclaimed: VecDeque::new(),
            kept_for: Vec::new(),
            generation: 0,
            connected: false,
            commands,
        }
    }

    /// A component's request.
    pub(crate) fn command(&mut self, command: Command) {
        match command {
            Command::Join {
                id,
                manual_acks,
                events,
                queued,
            } => {
                if self.connected {
                    let _ = events.send(SharedEvent::Connected);
                }
                self.members.insert(
                    id,
                    Member {
                        manual_acks,
                        filters: Vec::new(),
                        events,
                        queued,
                    },
                );
            }
            Command::Leave { id } => {
                self.members.remove(&id);
            }
            Command::Subscribe { id, filters, qos } => {
                if let Some(member) = self.members.get_mut(&id) {
                    for filter in filters {
                        if !member.filters.contains(&filter) {
                            member.filters.push(filter.clone());
                        }
                        if member.manual_acks && !self.kept_for.contains(&filter) {
                            self.kept_for.push(filter.clone());
                        }
                        self.subscribing.push_back(id);
                        self.requests.push_back(Request::Subscribe { filter, qos });
                    }
                }
                // Messages that waited for these filters go now.
                let waiting = std::mem::take(&mut self.unclaimed);
                for (came, message) in waiting {
                    if !self.dispatch(&message) {
                        self.unclaimed.push_back((came, message));
                    }
                }
            }
            Command::Publish { publish, done } => {
                self.unnumbered.push_back(done);
                self.requests.push_back(Request::Publish(publish));
            }
            Command::Ack {
                generation,
                message,
            } => {
                if generation == self.generation {
                    self.requests.push_back(Request::Ack(message));
                }
            }
        }
    }

    /// An event of the connection.
    pub(crate) fn event(&mut self, event: Event) {
        match event {
            Event::ConnAck { session_present } => {
                self.generation += 1;
                self.connected = true;
                if !session_present {
                    self.forget_handed();
                }
                self.broadcast(|| SharedEvent::Connected);
            }
            Event::Message(message) => self.message(message),
            Event::Subscribing(pkid) => {
                self.handed_subscriptions = self.handed_subscriptions.saturating_sub(1);
                if let Some(id) = self.subscribing.pop_front() {
                    self.subscribed.insert(pkid, id);
                }
            }
            Event::SubAck(pkid, refused) => {
                let member = self
                    .subscribed
                    .remove(&pkid)
                    .and_then(|id| self.members.get(&id));
                if let Some(member) = member {
                    let _ = member
                        .events
                        .send(SharedEvent::Subscribed(refused.map_or(Ok(()), Err)));
                }
            }
            Event::Published(pkid) | Event::AwaitAck(pkid) => {
                let waiting = self.numbered.get(&pkid).is_some_and(|q| !q.is_empty());
                let sent_again = waiting && matches!(event, Event::Published(_));
                if sent_again {
                    return;
                }
                self.handed_publishes = self.handed_publishes.saturating_sub(1);
                if let Some(done) = self.unnumbered.pop_front() {
                    if pkid == 0 {
                        let _ = done.send(Ok(()));
                    } else {
                        self.numbered.entry(pkid).or_default().push_back(done);
                    }
                }
            }
            Event::PubAck(pkid, refused) => {
                if let Some(done) = self.numbered.get_mut(&pkid).and_then(VecDeque::pop_front) {
                    let _ = done.send(refused.map_or(Ok(()), |r| Err(Failed::Refused(r))));
                }
            }
            Event::Other => {}
        }
    }

    /// A request left the queue for the client's.
    pub(crate) fn handed(&mut self, request: &Request) {
        match request {
            Request::Publish(_) => self.handed_publishes += 1,
            Request::Subscribe { .. } => self.handed_subscriptions += 1,
            Request::Ack(_) => {}
        }
    }

    /// The connection broke: components hear it. Publishes and
    /// subscriptions handed to the client stay matched: it sends them when
    /// it connects again, publishes in flight with their ids, if the broker
    /// kept the session (see [`Router::forget_handed`] if not);
    /// subscriptions awaiting their answer are lost (components subscribe
    /// again).
    pub(crate) fn down(&mut self, reason: &str) {
        if self.connected {
            self.connected = false;
            self.broadcast(|| SharedEvent::Down(reason.to_owned()));
        }
        self.subscribed.clear();
        // The broker sends them again on the next connection.
        self.unclaimed.clear();
        self.requests.retain(|r| !matches!(r, Request::Ack(_)));
    }

    /// Connected without a kept session: the client dropped what it would
    /// have sent again, so nothing answers those publishes (they fail, and
    /// their sink sends them again) and those subscriptions (their
    /// components subscribe again, having heard `Connected`).
    fn forget_handed(&mut self) {
        let lost = || {
            Err(Failed::Lost(
                "the connection broke before the broker acknowledged it".to_owned(),
            ))
        };
        for (_, waiting) in self.numbered.drain() {
            for done in waiting {
                let _ = done.send(lost());
            }
        }
        for _ in 0..self.handed_publishes {
            if let Some(done) = self.unnumbered.pop_front() {
                let _ = done.send(lost());
            }
        }
        for _ in 0..self.handed_subscriptions {
            self.subscribing.pop_front();
        }
        self.handed_publishes = 0;
        self.handed_subscriptions = 0;
    }

    fn broadcast(&self, event: impl Fn() -> SharedEvent) {
        for member in self.members.values() {
            let _ = member.events.send(event());
        }
    }

    /// Acknowledges and drops the messages nobody claimed within
    /// [`CLAIM_WAIT`] of `now`.
    pub(crate) fn sweep(&mut self, now: Instant) {
        let kept_for = &self.kept_for;
        let requests = &mut self.requests;
        self.unclaimed.retain(|(came, message)| {
            let wanted = kept_for.iter().any(|f| matches(&message.topic, f));
            if wanted || now.duration_since(*came) < CLAIM_WAIT {
                return true;
            }
            requests.push_back(Request::Ack(message.clone()));
            false
        });
    }

    fn message(&mut self, message: Box<Message>) {
        if !self.dispatch(&message) {
            self.unclaimed.push_back((Instant::now(), message));
        }
    }

    /// Hands `message` to every component whose filters match it (and
    /// acknowledges it at once if none of them acknowledges by hand);
    /// false if none matches.
    fn dispatch(&mut self, message: &Message) -> bool {
        let topic = &message.topic;
        let matching: Vec<&Member> = self
            .members
            .values()
            .filter(|m| !m.events.is_closed() && m.filters.iter().any(|f| matches(topic, f)))
            .collect();
        if matching.is_empty() {
            return false;
        }
        let manual = matching.iter().filter(|m| m.manual_acks).count();
        let pending = (manual > 0).then(|| {
            Arc::new(PendingAck {
                message: Box::new(message.clone()),
                generation: self.generation,
                left: AtomicUsize::new(manual),
                commands: self.commands.clone(),
            })
        });
        for member in &matching {
            if !member.manual_acks && member.queued.load(Ordering::Acquire) >= MAX_QUEUED {
                continue;
            }
            let ack = member
                .manual_acks
                .then(|| pending.clone().map(AckToken))
                .flatten();
            member.queued.fetch_add(1, Ordering::AcqRel);
            let _ = member.events.send(SharedEvent::Message(SharedMessage {
                topic: topic.clone(),
                payload: message.payload.clone(),
                ack,
            }));
        }
        if manual == 0 {
            self.requests
                .push_back(Request::Ack(Box::new(message.clone())));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Harness {
        router: Router,
        tokens: mpsc::UnboundedReceiver<Command>,
    }

    impl Harness {
        fn new() -> Harness {
            let (tx, tokens) = mpsc::unbounded_channel();
            Harness {
                router: Router::new(tx),
                tokens,
            }
        }

        fn join(&mut self, id: u64, manual_acks: bool) -> mpsc::UnboundedReceiver<SharedEvent> {
            let (events, rx) = mpsc::unbounded_channel();
            self.router.command(Command::Join {
                id,
                manual_acks,
                events,
                queued: Arc::new(AtomicUsize::new(0)),
            });
            rx
        }

        fn publish(&mut self, topic: &str) -> oneshot::Receiver<Answer> {
            let (done, answer) = oneshot::channel();
            self.router.command(Command::Publish {
                publish: Outgoing {
                    topic: topic.into(),
                    payload: Vec::new(),
                    qos: 1,
                    retain: false,
                    content_type: None,
                    user_properties: Vec::new(),
                },
                done,
            });
            answer
        }

        /// The packet ids of the acknowledgements queued so far.
        fn acks(&mut self) -> Vec<u16> {
            // Tokens' commands go back through the router, as in `run`.
            while let Ok(command) = self.tokens.try_recv() {
                self.router.command(command);
            }
            let acks = self
                .router
                .requests
                .iter()
                .filter_map(|r| match r {
                    Request::Ack(m) => Some(m.pkid()),
                    _ => None,
                })
                .collect();
            self.router
                .requests
                .retain(|r| !matches!(r, Request::Ack(_)));
            acks
        }
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<SharedEvent>) -> Vec<SharedEvent> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    fn answered(answer: &mut oneshot::Receiver<Answer>) -> Option<Answer> {
        answer.try_recv().ok()
    }

    #[test]
    fn publishes_are_answered_by_their_own_acknowledgement_across_a_reconnection() {
        let mut h = Harness::new();
        let _events = h.join(1, false);
        h.router.event(Event::ConnAck {
            session_present: true,
        });
        let (mut a, mut b, mut c) = (h.publish("a"), h.publish("b"), h.publish("c"));
        h.router.event(Event::Published(1));
        h.router.event(Event::Published(2));
        // The connection breaks; the client sends 1 and 2 again with their
        // ids, then c, which takes id 3.
        h.router.down("gone");
        h.router.event(Event::ConnAck {
            session_present: true,
        });
        h.router.event(Event::Published(1));
        h.router.event(Event::Published(2));
        h.router.event(Event::Published(3));
        h.router.event(Event::PubAck(2, None));
        assert_eq!(answered(&mut b), Some(Ok(())));
        assert_eq!(answered(&mut a), None);
        assert_eq!(answered(&mut c), None);
        h.router.event(Event::PubAck(3, Some("refused".into())));
        assert_eq!(
            answered(&mut c),
            Some(Err(Failed::Refused("refused".into())))
        );
        h.router.event(Event::PubAck(1, None));
        assert_eq!(answered(&mut a), Some(Ok(())));
        // A publish waiting for an id still in use is answered after it.
        let (mut d, mut e) = (h.publish("d"), h.publish("e"));
        h.router.event(Event::Published(4));
        h.router.event(Event::AwaitAck(4));
        h.router.event(Event::PubAck(4, None));
        assert_eq!((answered(&mut d), answered(&mut e)), (Some(Ok(())), None));
        h.router.event(Event::Published(4));
        h.router.event(Event::PubAck(4, None));
        assert_eq!(answered(&mut e), Some(Ok(())));
    }

    #[test]
    fn publishes_the_client_dropped_with_a_session_not_kept_are_answered_lost() {
        let mut h = Harness::new();
        let _events = h.join(1, false);
        h.router.event(Event::ConnAck {
            session_present: true,
        });
        let (mut a, mut b, mut c) = (h.publish("a"), h.publish("b"), h.publish("c"));
        // a and b go to the client; a goes out; c is still queued here.
        for _ in 0..2 {
            let request = h.router.requests.pop_front().unwrap();
            h.router.handed(&request);
        }
        h.router.event(Event::Published(1));
        h.router.down("gone");
        h.router.event(Event::ConnAck {
            session_present: false,
        });
        let lost = |answer: Option<Answer>| matches!(answer, Some(Err(Failed::Lost(_))));
        assert!(lost(answered(&mut a)), "in flight, dropped by the client");
        assert!(lost(answered(&mut b)), "in the client's queue, dropped");
        assert_eq!(answered(&mut c), None, "still to be handed over");
        // c goes out now and is answered by its own acknowledgement.
        let request = h.router.requests.pop_front().unwrap();
        h.router.handed(&request);
        h.router.event(Event::Published(1));
        h.router.event(Event::PubAck(1, None));
        assert_eq!(answered(&mut c), Some(Ok(())));
    }

    #[test]
    fn a_message_is_acknowledged_once_every_component_that_acks_by_hand_did() {
        let mut h = Harness::new();
        let (mut source, mut other, mut twin) =
            (h.join(1, true), h.join(2, true), h.join(3, false));
        h.router.event(Event::ConnAck {
            session_present: true,
        });
        h.router.command(Command::Subscribe {
            id: 1,
            filters: vec!["site/#".into()],
            qos: 1,
        });
        h.router.command(Command::Subscribe {
            id: 2,
            filters: vec!["site/+/temp".into()],
            qos: 1,
        });
        h.router.command(Command::Subscribe {
            id: 3,
            filters: vec!["$aws/things/t/#".into()],
            qos: 1,
        });
        // Subscriptions are answered to whoever made them.
        for pkid in 1..=3 {
            h.router.event(Event::Subscribing(pkid));
        }
        h.router.event(Event::SubAck(3, Some("not allowed".into())));
        let twin_events = drain(&mut twin);
        assert!(
            matches!(twin_events.as_slice(), [SharedEvent::Connected, SharedEvent::Subscribed(Err(e))] if e == "not allowed")
        );
        drain(&mut source);
        drain(&mut other);

        h.router.event(Event::Message(Box::new(Message::received(
            "site/s1/temp",
            "x",
            7,
        ))));
        let tokens: Vec<AckToken> = [&mut source, &mut other]
            .into_iter()
            .flat_map(drain)
            .filter_map(|e| match e {
                SharedEvent::Message(m) => m.ack,
                _ => None,
            })
            .collect();
        assert_eq!(tokens.len(), 2, "both matching components have it");
        let mut tokens = tokens.into_iter();
        tokens.next().unwrap().ack();
        assert!(h.acks().is_empty(), "one of two has it safe");
        tokens.next().unwrap().ack();
        assert_eq!(h.acks(), vec![7]);
        // Only `source` matches: nobody else holds the acknowledgement up.
        h.router.event(Event::Message(Box::new(Message::received(
            "site/s1/hum",
            "y",
            8,
        ))));
        let SharedEvent::Message(m) = drain(&mut source).pop().unwrap() else {
            panic!("a message")
        };
        // The connection breaks before it is safe: its acknowledgement
        // is not sent on the next connection.
        h.router.down("gone");
        h.router.event(Event::ConnAck {
            session_present: true,
        });
        m.ack.unwrap().ack();
        assert!(h.acks().is_empty());
        // A message for the twin alone (it acks nothing by hand) is
        // acknowledged at once.
        h.router.event(Event::Message(Box::new(Message::received(
            "$aws/things/t/shadow/get/accepted",
            "{}",
            9,
        ))));
        assert_eq!(h.acks(), vec![9]);
    }

    #[test]
    fn a_message_nobody_subscribed_to_yet_waits_for_its_component_or_is_dropped() {
        let mut h = Harness::new();
        let mut source = h.join(1, true);
        h.router.event(Event::ConnAck {
            session_present: true,
        });
        // A kept session's messages come before the source subscribes.
        h.router.event(Event::Message(Box::new(Message::received(
            "site/s1/temp",
            "x",
            1,
        ))));
        h.router.event(Event::Message(Box::new(Message::received(
            "old/topic",
            "y",
            2,
        ))));
        assert!(h.acks().is_empty(), "not acknowledged while unclaimed");
        h.router.command(Command::Subscribe {
            id: 1,
            filters: vec!["site/#".into()],
            qos: 1,
        });
        let got: Vec<String> = drain(&mut source)
            .into_iter()
            .filter_map(|e| match e {
                SharedEvent::Message(m) => Some(m.topic),
                _ => None,
            })
            .collect();
        assert_eq!(got, vec!["site/s1/temp"]);
        h.router.sweep(Instant::now());
        assert!(h.acks().is_empty(), "still within the wait");
        h.router.sweep(Instant::now() + CLAIM_WAIT);
        assert_eq!(h.acks(), vec![2], "nobody wants it: acknowledged, dropped");
        // The source leaves (it restarts after a backoff): what comes for
        // it meanwhile waits however long it takes, and goes to it.
        drop(source);
        h.router.command(Command::Leave { id: 1 });
        h.router.event(Event::Message(Box::new(Message::received(
            "site/s2/temp",
            "z",
            3,
        ))));
        h.router.sweep(Instant::now() + 10 * CLAIM_WAIT);
        assert!(h.acks().is_empty(), "kept for the source");
        let mut source = h.join(4, true);
        h.router.command(Command::Subscribe {
            id: 4,
            filters: vec!["site/#".into()],
            qos: 1,
        });
        assert!(
            drain(&mut source)
                .iter()
                .any(|e| matches!(e, SharedEvent::Message(m) if m.topic == "site/s2/temp"))
        );
    }
}
