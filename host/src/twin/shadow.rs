//! The device side of one shadow, without I/O: what to subscribe to and
//! publish, and what the answers mean. The sync loop feeds it connection
//! events and messages and carries out what it returns.
//!
//! On every connection: subscribe first, then `get`; the document that
//! comes back gives the version and the desired state (its delta is applied
//! by the host), then the reported changes made meanwhile go out as one
//! update naming that version. An update refused with 409 (someone else
//! changed the shadow) is followed by a `get` and sent again over the new
//! version. Reported changes wait in `pending`, folded field by field (the
//! latest value wins), until an update carrying them is accepted; the
//! caller keeps `pending` durably, so that they survive a restart.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::document::{self, Rejection};
use super::topics::{Reply, ShadowId};

/// How long an unanswered request waits before it is sent again, in ms.
pub const REQUEST_TIMEOUT_MS: i64 = 10_000;

/// What the sync loop must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Subscribe to these filters (QoS 1), then call [`Shadow::subscribed`].
    Subscribe(Vec<String>),
    /// Publish (QoS 1).
    Publish {
        /// The topic.
        topic: String,
        /// The JSON payload.
        payload: Vec<u8>,
    },
}

/// What the host must know.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Desired state changed: the fields of `desired` that reported does
    /// not hold (with the reported changes still pending counted in) are
    /// to act on; fields gone from desired state may be too.
    Desired {
        /// The fields of desired state reported does not hold (may be none).
        delta: Map<String, Value>,
        /// The shadow's version they come with.
        version: u64,
    },
    /// An update was refused for good (not a version conflict): its
    /// changes stay pending until the next change or connection.
    Refused(Rejection),
    /// The shadow and eddy agree: nothing pending, nothing in flight.
    InSync {
        /// The shadow's version.
        version: u64,
    },
}

/// Where the conversation with the service is.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Not connected.
    Offline,
    /// Subscriptions asked for.
    Subscribing,
    /// `get` sent with this token, at this time.
    Getting { token: String, at: i64 },
    /// The document is known; updates may go.
    Synced,
}

/// What of a shadow is kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// The shadow's version as last seen (0: none seen).
    pub version: u64,
    /// The desired state as last seen.
    pub desired: Map<String, Value>,
    /// The reported state as the service holds it, as last seen.
    pub reported: Map<String, Value>,
    /// Reported changes not yet accepted, as one patch (`null` deletes).
    pub pending: Map<String, Value>,
    /// Desired changes made on the site (`eddy twin set`), not yet
    /// accepted by the service: they act at once and go up like reported
    /// changes.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub pending_desired: Map<String, Value>,
    /// For a device's twin: the record key of the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// An update in flight.
#[derive(Debug, Clone, PartialEq)]
struct InFlight {
    token: String,
    sent: Map<String, Value>,
    sent_desired: Map<String, Value>,
    at: i64,
}

/// One shadow, seen from the device.
#[derive(Debug, Clone)]
pub struct Shadow {
    id: ShadowId,
    token_prefix: String,
    next_token: u64,
    phase: Phase,
    saved: Saved,
    in_flight: Option<InFlight>,
    /// An update was refused for good: hold until something changes.
    held: bool,
}

impl Shadow {
    /// A shadow with what was kept of it; `client` (the MQTT client id)
    /// makes its client tokens unique.
    pub fn new(id: ShadowId, client: &str, saved: Saved) -> Shadow {
        // A token is at most 64 bytes: the client id's end and a counter.
        let tail = client.len().saturating_sub(40);
        let token_prefix = client.get(tail..).unwrap_or(client).to_owned();
        Shadow {
            id,
            token_prefix,
            next_token: 0,
            phase: Phase::Offline,
            saved,
            in_flight: None,
            held: false,
        }
    }

    /// Which shadow this is.
    pub fn id(&self) -> &ShadowId {
        &self.id
    }

    /// What to keep of it.
    pub fn saved(&self) -> &Saved {
        &self.saved
    }

    /// The desired and reported state as eddy sees it: reported with the
    /// pending changes applied.
    pub fn local(&self) -> (Map<String, Value>, Map<String, Value>) {
        let mut reported = self.saved.reported.clone();
        document::merge(&mut reported, &self.saved.pending);
        (self.saved.desired.clone(), reported)
    }

    /// Whether the document has been read on this connection.
    pub fn synced(&self) -> bool {
        self.phase == Phase::Synced
    }

    fn token(&mut self) -> String {
        self.next_token += 1;
        format!("{}-{}", self.token_prefix, self.next_token)
    }

    /// The connection is up: subscribe.
    pub fn connected(&mut self) -> Vec<Action> {
        self.phase = Phase::Subscribing;
        self.in_flight = None;
        self.held = false;
        vec![Action::Subscribe(self.id.subscriptions())]
    }

    /// The connection is gone.
    pub fn disconnected(&mut self) {
        self.phase = Phase::Offline;
        self.in_flight = None;
    }

    /// The subscriptions were granted: ask for the document.
    pub fn subscribed(&mut self, now: i64) -> Vec<Action> {
        if self.phase != Phase::Subscribing {
            return Vec::new();
        }
        vec![self.get(now)]
    }

    fn get(&mut self, now: i64) -> Action {
        let token = self.token();
        let payload = json!({ "clientToken": token }).to_string().into_bytes();
        self.phase = Phase::Getting { token, at: now };
        Action::Publish {
            topic: self.id.topic("get"),
            payload,
        }
    }

    /// Reported state changed (a patch: `null` deletes a field). Returns
    /// the update to send, if one can go now.
    pub fn report(&mut self, patch: &Map<String, Value>, now: i64) -> Vec<Action> {
        let before = self.saved.pending.clone();
        document::fold_patch(&mut self.saved.pending, patch);
        // Nothing to send for values the service already holds (unless an
        // update in flight is changing them).
        if self.in_flight.is_none() {
            prune_held(&mut self.saved.pending, &self.saved.reported);
        }
        if self.saved.pending != before {
            self.held = false;
        }
        self.send_update(now)
    }

    /// Desired state changed on the site (a patch: `null` deletes a
    /// field): it acts at once, and goes to the service like a reported
    /// change. Returns the update to send and what to act on.
    pub fn set_desired(
        &mut self,
        patch: &Map<String, Value>,
        now: i64,
    ) -> (Vec<Action>, Vec<Notice>) {
        document::fold_patch(&mut self.saved.pending_desired, patch);
        document::merge(&mut self.saved.desired, patch);
        self.held = false;
        let mut notices = Vec::new();
        self.desired_notice(&mut notices);
        (self.send_update(now), notices)
    }

    fn send_update(&mut self, now: i64) -> Vec<Action> {
        if self.phase != Phase::Synced
            || self.in_flight.is_some()
            || self.held
            || (self.saved.pending.is_empty() && self.saved.pending_desired.is_empty())
        {
            return Vec::new();
        }
        let token = self.token();
        let sent = self.saved.pending.clone();
        let sent_desired = self.saved.pending_desired.clone();
        let mut state = Map::new();
        if !sent.is_empty() {
            state.insert("reported".into(), Value::Object(sent.clone()));
        }
        if !sent_desired.is_empty() {
            state.insert("desired".into(), Value::Object(sent_desired.clone()));
        }
        let mut request = json!({
            "state": state,
            "clientToken": token,
        });
        if self.saved.version > 0 {
            request["version"] = json!(self.saved.version);
        }
        self.in_flight = Some(InFlight {
            token,
            sent,
            sent_desired,
            at: now,
        });
        vec![Action::Publish {
            topic: self.id.topic("update"),
            payload: request.to_string().into_bytes(),
        }]
    }

    /// Requests unanswered for too long go again.
    pub fn tick(&mut self, now: i64) -> Vec<Action> {
        match &self.phase {
            Phase::Getting { at, .. } if now - at >= REQUEST_TIMEOUT_MS => vec![self.get(now)],
            Phase::Synced => match &self.in_flight {
                Some(f) if now - f.at >= REQUEST_TIMEOUT_MS => {
                    self.in_flight = None;
                    self.send_update(now)
                }
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// A message on one of this shadow's topics.
    pub fn message(
        &mut self,
        reply: Reply,
        payload: &[u8],
        now: i64,
    ) -> (Vec<Action>, Vec<Notice>) {
        let Ok(doc) = serde_json::from_slice::<Value>(payload) else {
            return (Vec::new(), Vec::new());
        };
        let token = doc["clientToken"].as_str().unwrap_or_default();
        let version = doc["version"].as_u64();
        let mut actions = Vec::new();
        let mut notices = Vec::new();
        match reply {
            Reply::GetAccepted => {
                if !matches!(&self.phase, Phase::Getting { token: t, .. } if t == token) {
                    return (actions, notices);
                }
                self.saved.desired = object(&doc["state"]["desired"]);
                // Changes made on the site and not yet sent win over it.
                document::merge(&mut self.saved.desired, &self.saved.pending_desired);
                self.saved.reported = object(&doc["state"]["reported"]);
                self.saved.version = version.unwrap_or(0);
                self.phase = Phase::Synced;
                self.desired_notice(&mut notices);
                actions.extend(self.send_update(now));
            }
            Reply::GetRejected => {
                if !matches!(&self.phase, Phase::Getting { token: t, .. } if t == token) {
                    return (actions, notices);
                }
                match Rejection::from_error(&doc) {
                    // No shadow yet: the first update makes it.
                    Rejection::NotFound(_) => {
                        self.saved.desired = self.saved.pending_desired.clone();
                        self.saved.reported.clear();
                        self.saved.version = 0;
                        self.phase = Phase::Synced;
                        actions.extend(self.send_update(now));
                    }
                    // Anything else: ask again after the timeout.
                    other => notices.push(Notice::Refused(other)),
                }
            }
            Reply::UpdateAccepted => {
                let state = &doc["state"];
                let mine = matches!(&self.in_flight, Some(f) if f.token == token);
                if let Some(v) = version
                    && v > self.saved.version
                {
                    // An update that is not ours, older than what we know,
                    // changes nothing.
                    if let Value::Object(d) = &state["desired"] {
                        document::merge(&mut self.saved.desired, d);
                    } else if state["desired"].is_null() && state.get("desired").is_some() {
                        self.saved.desired.clear();
                    }
                    if let Value::Object(r) = &state["reported"] {
                        document::merge(&mut self.saved.reported, r);
                    }
                    self.saved.version = v;
                    // Someone else's change of desired state: act on it now
                    // (its delta, which comes next, is then one already seen).
                    if !mine && state.get("desired").is_some() {
                        self.desired_notice(&mut notices);
                    }
                }
                if mine && let Some(flight) = self.in_flight.take() {
                    document::subtract(&mut self.saved.pending, &flight.sent);
                    document::subtract(&mut self.saved.pending_desired, &flight.sent_desired);
                    actions.extend(self.send_update(now));
                }
                if mine
                    && self.in_flight.is_none()
                    && self.saved.pending.is_empty()
                    && self.saved.pending_desired.is_empty()
                {
                    notices.push(Notice::InSync {
                        version: self.saved.version,
                    });
                }
            }
            Reply::UpdateRejected => {
                if !matches!(&self.in_flight, Some(f) if f.token == token) {
                    return (actions, notices);
                }
                self.in_flight = None;
                match Rejection::from_error(&doc) {
                    // Someone changed the shadow: read it again, then send
                    // the pending changes over its version.
                    Rejection::VersionConflict => actions.push(self.get(now)),
                    other => {
                        self.held = true;
                        notices.push(Notice::Refused(other));
                    }
                }
            }
            Reply::Delta => {
                let Some(v) = version else {
                    return (actions, notices);
                };
                if v <= self.saved.version && self.phase == Phase::Synced {
                    // Already seen (a delta can come after the `get` that
                    // included it).
                    return (actions, notices);
                }
                if let Value::Object(delta) = &doc["state"] {
                    document::merge(&mut self.saved.desired, delta);
                }
                self.saved.version = self.saved.version.max(v);
                self.desired_notice(&mut notices);
            }
            Reply::DeleteAccepted => {
                self.saved.desired.clear();
                self.saved.reported.clear();
                self.saved.version = 0;
                // Everything eddy reports has to go again.
                if self.phase == Phase::Synced {
                    actions.extend(self.send_update(now));
                }
            }
            Reply::Documents | Reply::DeleteRejected => {}
        }
        (actions, notices)
    }

    /// Desired state is new: the host acts on the delta, and on fields
    /// that left desired state (so the delta can be empty).
    fn desired_notice(&self, notices: &mut Vec<Notice>) {
        let (desired, reported) = self.local();
        notices.push(Notice::Desired {
            delta: document::delta(&desired, &reported).unwrap_or_default(),
            version: self.saved.version,
        });
    }
}

/// Removes from a pending patch the leaves the service already holds with
/// the same value (and deletions of fields it does not hold).
fn prune_held(pending: &mut Map<String, Value>, reported: &Map<String, Value>) {
    pending.retain(|name, value| match (value, reported.get(name)) {
        (Value::Null, None) => false,
        (Value::Object(mine), Some(Value::Object(theirs))) => {
            prune_held(mine, theirs);
            !mine.is_empty()
        }
        (mine, Some(theirs)) => mine != theirs,
        (_, None) => true,
    });
}

/// A value as an object; anything else as an empty one.
fn object(value: &Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    //! The conversation, with the service's answers written out as AWS
    //! documents them.
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("an object"),
        }
    }

    fn published(actions: &[Action]) -> Vec<(String, Value)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Publish { topic, payload } => {
                    Some((topic.clone(), serde_json::from_slice(payload).unwrap()))
                }
                _ => None,
            })
            .collect()
    }

    fn connected(shadow: &mut Shadow) -> Value {
        let subscribe = shadow.connected();
        assert!(matches!(&subscribe[..], [Action::Subscribe(f)] if f.len() == 2));
        let get = published(&shadow.subscribed(0));
        assert_eq!(get.len(), 1);
        assert_eq!(get[0].0, "$aws/things/gw/shadow/get");
        get[0].1.clone()
    }

    #[test]
    fn subscribe_then_get_then_apply_the_delta_and_send_what_is_pending() {
        let mut shadow = Shadow::new(ShadowId::classic("gw"), "site-7", Saved::default());
        // Reported while offline: kept, not sent.
        assert!(
            shadow
                .report(&map(json!({ "temp_limit": 40 })), 0)
                .is_empty()
        );
        let get = connected(&mut shadow);
        let token = get["clientToken"].as_str().unwrap().to_owned();
        let answer = json!({
            "state": {
                "desired": { "temp_limit": 45, "mode": "eco" },
                "reported": { "temp_limit": 30 },
                "delta": { "temp_limit": 45, "mode": "eco" }
            },
            "metadata": {},
            "version": 7,
            "timestamp": 1,
            "clientToken": token
        });
        let (actions, notices) =
            shadow.message(Reply::GetAccepted, answer.to_string().as_bytes(), 1);
        // The delta counts the pending report: temp_limit 40 ≠ 45 still.
        assert_eq!(
            notices,
            vec![Notice::Desired {
                delta: map(json!({ "temp_limit": 45, "mode": "eco" })),
                version: 7
            }]
        );
        let sent = published(&actions);
        assert_eq!(sent[0].0, "$aws/things/gw/shadow/update");
        assert_eq!(
            sent[0].1["state"],
            json!({ "reported": { "temp_limit": 40 } })
        );
        assert_eq!(sent[0].1["version"], json!(7));
        // Accepted: nothing pending, in sync.
        let accepted = json!({
            "state": { "reported": { "temp_limit": 40 } },
            "version": 8,
            "clientToken": sent[0].1["clientToken"]
        });
        let (actions, notices) =
            shadow.message(Reply::UpdateAccepted, accepted.to_string().as_bytes(), 2);
        assert!(actions.is_empty());
        assert_eq!(notices, vec![Notice::InSync { version: 8 }]);
        assert!(shadow.saved().pending.is_empty());
        assert_eq!(shadow.saved().reported, map(json!({ "temp_limit": 40 })));
    }

    #[test]
    fn a_version_conflict_reads_the_shadow_again_and_resends_over_its_version() {
        let mut shadow = Shadow::new(ShadowId::classic("gw"), "c", Saved::default());
        let get = connected(&mut shadow);
        let answer = json!({ "state": {}, "version": 3, "clientToken": get["clientToken"] });
        shadow.message(Reply::GetAccepted, answer.to_string().as_bytes(), 0);
        let sent = published(&shadow.report(&map(json!({ "a": 1 })), 0));
        assert_eq!(sent[0].1["version"], json!(3));
        // Changed meanwhile while the update flew: 409.
        shadow.report(&map(json!({ "b": 2 })), 0);
        let conflict = json!({ "code": 409, "message": "Version conflict", "clientToken": sent[0].1["clientToken"] });
        let (actions, _) =
            shadow.message(Reply::UpdateRejected, conflict.to_string().as_bytes(), 1);
        let get = published(&actions);
        assert_eq!(get[0].0, "$aws/things/gw/shadow/get");
        let answer = json!({
            "state": { "reported": { "z": 0 } },
            "version": 5,
            "clientToken": get[0].1["clientToken"]
        });
        let (actions, _) = shadow.message(Reply::GetAccepted, answer.to_string().as_bytes(), 2);
        let resent = published(&actions);
        // Both changes, merged, over version 5.
        assert_eq!(
            resent[0].1["state"],
            json!({ "reported": { "a": 1, "b": 2 } })
        );
        assert_eq!(resent[0].1["version"], json!(5));
    }

    #[test]
    fn changes_made_while_an_update_flies_go_in_the_next_and_the_latest_wins() {
        let mut shadow = Shadow::new(ShadowId::classic("gw"), "c", Saved::default());
        let get = connected(&mut shadow);
        let missing = json!({ "code": 404, "message": "No shadow exists with name: gw", "clientToken": get["clientToken"] });
        let (actions, _) = shadow.message(Reply::GetRejected, missing.to_string().as_bytes(), 0);
        assert!(actions.is_empty(), "nothing to send yet");
        let first = published(&shadow.report(&map(json!({ "a": 1, "b": 1 })), 0));
        // No version: the update creates the shadow.
        assert_eq!(first[0].1.get("version"), None);
        assert!(
            shadow.report(&map(json!({ "a": 2 })), 0).is_empty(),
            "one in flight"
        );
        assert!(shadow.report(&map(json!({ "a": 3 })), 0).is_empty());
        let accepted = json!({
            "state": { "reported": { "a": 1, "b": 1 } },
            "version": 1,
            "clientToken": first[0].1["clientToken"]
        });
        let (actions, _) =
            shadow.message(Reply::UpdateAccepted, accepted.to_string().as_bytes(), 1);
        let next = published(&actions);
        assert_eq!(next[0].1["state"], json!({ "reported": { "a": 3 } }));
        assert_eq!(next[0].1["version"], json!(1));
    }

    #[test]
    fn a_desired_change_seen_as_accepted_is_acted_on_once_not_again_at_its_delta() {
        let mut shadow = Shadow::new(ShadowId::classic("gw"), "c", Saved::default());
        let get = connected(&mut shadow);
        let answer = json!({ "state": { "reported": { "x": 1 } }, "version": 4, "clientToken": get["clientToken"] });
        shadow.message(Reply::GetAccepted, answer.to_string().as_bytes(), 0);
        let accepted =
            json!({ "state": { "desired": { "x": 2 } }, "version": 5, "clientToken": "app-1" });
        let (_, notices) =
            shadow.message(Reply::UpdateAccepted, accepted.to_string().as_bytes(), 1);
        assert_eq!(
            notices,
            vec![Notice::Desired {
                delta: map(json!({ "x": 2 })),
                version: 5
            }]
        );
        let delta = json!({ "state": { "x": 2 }, "version": 5, "clientToken": "app-1" });
        let (_, again) = shadow.message(Reply::Delta, delta.to_string().as_bytes(), 2);
        assert!(again.is_empty());
    }

    #[test]
    fn desired_set_on_site_acts_at_once_and_survives_a_newer_cloud_document() {
        let mut shadow = Shadow::new(ShadowId::classic("gw"), "c", Saved::default());
        // Offline: acts at once, waits to be sent.
        let (actions, notices) =
            shadow.set_desired(&map(json!({ "params": { "a": { "t": 5 } } })), 0);
        assert!(actions.is_empty());
        assert_eq!(
            notices,
            vec![Notice::Desired {
                delta: map(json!({ "params": { "a": { "t": 5 } } })),
                version: 0
            }]
        );
        let get = connected(&mut shadow);
        // The cloud changed other desired fields meanwhile.
        let answer = json!({
            "state": { "desired": { "params": { "a": { "t": 1, "u": 2 } } } },
            "version": 9,
            "clientToken": get["clientToken"]
        });
        let (actions, _) = shadow.message(Reply::GetAccepted, answer.to_string().as_bytes(), 1);
        assert_eq!(
            shadow.saved().desired,
            map(json!({ "params": { "a": { "t": 5, "u": 2 } } })),
            "the site's change wins for the field it set"
        );
        let sent = published(&actions);
        assert_eq!(
            sent[0].1["state"],
            json!({ "desired": { "params": { "a": { "t": 5 } } } })
        );
        let accepted = json!({ "state": sent[0].1["state"], "version": 10, "clientToken": sent[0].1["clientToken"] });
        let (_, notices) =
            shadow.message(Reply::UpdateAccepted, accepted.to_string().as_bytes(), 2);
        assert!(shadow.saved().pending_desired.is_empty());
        assert_eq!(notices, vec![Notice::InSync { version: 10 }]);
    }

    #[test]
    fn a_delta_is_applied_once_and_an_old_one_is_ignored() {
        let mut shadow = Shadow::new(ShadowId::classic("gw"), "c", Saved::default());
        let get = connected(&mut shadow);
        let answer = json!({ "state": { "reported": { "x": 1 } }, "version": 4, "clientToken": get["clientToken"] });
        shadow.message(Reply::GetAccepted, answer.to_string().as_bytes(), 0);
        let delta = json!({ "state": { "x": 2 }, "version": 5 });
        let (_, notices) = shadow.message(Reply::Delta, delta.to_string().as_bytes(), 1);
        assert_eq!(
            notices,
            vec![Notice::Desired {
                delta: map(json!({ "x": 2 })),
                version: 5
            }]
        );
        let (_, again) = shadow.message(Reply::Delta, delta.to_string().as_bytes(), 2);
        assert!(again.is_empty());
    }

    #[test]
    fn a_refused_update_is_held_until_something_changes_and_unanswered_requests_go_again() {
        let mut shadow = Shadow::new(ShadowId::classic("gw"), "c", Saved::default());
        let get = connected(&mut shadow);
        // No answer: the get goes again after the timeout.
        assert!(shadow.tick(REQUEST_TIMEOUT_MS - 1).is_empty());
        let again = published(&shadow.tick(REQUEST_TIMEOUT_MS));
        assert_ne!(again[0].1["clientToken"], get["clientToken"]);
        let answer = json!({ "state": {}, "version": 1, "clientToken": again[0].1["clientToken"] });
        shadow.message(Reply::GetAccepted, answer.to_string().as_bytes(), 0);
        let sent = published(&shadow.report(&map(json!({ "big": "x" })), 0));
        let too_large = json!({ "code": 413, "message": "The payload exceeds the maximum size allowed", "clientToken": sent[0].1["clientToken"] });
        let (actions, notices) =
            shadow.message(Reply::UpdateRejected, too_large.to_string().as_bytes(), 1);
        assert!(actions.is_empty());
        assert_eq!(notices, vec![Notice::Refused(Rejection::TooLarge)]);
        assert!(shadow.tick(REQUEST_TIMEOUT_MS * 3).is_empty(), "held");
        assert_eq!(
            shadow.saved().pending,
            map(json!({ "big": "x" })),
            "not lost"
        );
        let next = published(&shadow.report(&map(json!({ "big": "y" })), 2));
        assert_eq!(next[0].1["state"], json!({ "reported": { "big": "y" } }));
        // Taking back a change the service never took leaves nothing to send.
        let mut fresh = Shadow::new(ShadowId::classic("gw"), "c", Saved::default());
        fresh.report(&map(json!({ "n": 1 })), 0);
        fresh.report(&map(json!({ "n": null })), 0);
        assert!(fresh.saved().pending.is_empty());
    }

    #[test]
    fn what_the_service_already_holds_is_not_sent_again() {
        let saved = Saved {
            version: 2,
            reported: map(json!({ "a": 1, "n": { "m": 1 } })),
            ..Saved::default()
        };
        let mut shadow = Shadow::new(ShadowId::classic("gw"), "c", saved);
        shadow.report(&map(json!({ "a": 1, "n": { "m": 1 }, "gone": null })), 0);
        assert!(shadow.saved().pending.is_empty());
    }
}
