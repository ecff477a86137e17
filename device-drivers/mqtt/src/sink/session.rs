//! The publishing side of an MQTT connection, without I/O: packets to
//! send are encoded into one buffer, so that many publishes leave in one
//! write, and received bytes are read into acknowledgements.
//!
//! CONNECT, CONNACK, PUBACK and DISCONNECT go through rumqttc's packet
//! codec; PUBLISH is encoded here, straight into the send buffer, because
//! it is the one packet sent per result.

use std::collections::HashSet;

use bytes::{BufMut, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

use crate::broker::Protocol;

/// The largest remaining length MQTT can encode.
const MAX_REMAINING: usize = 268_435_455;

/// What the broker sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// The connection is accepted.
    ConnAck,
    /// A QoS 1 publish was taken, or refused (MQTT 5 reason).
    PubAck {
        /// Its packet id.
        pkid: u16,
        /// Why it was refused, if it was.
        refused: Option<String>,
    },
    /// Anything else (a ping's answer).
    Other,
}

/// Why a result cannot be published, whatever the connection.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Unpublishable {
    /// Longer than MQTT or the broker allows.
    #[error("the message is {size} bytes, more than the {max} bytes the broker takes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A topic longer than MQTT allows.
    #[error("the topic is {0} bytes, more than MQTT's 65535")]
    TopicTooLong(usize),
}

/// One connection's publishing state.
#[derive(Debug)]
pub(crate) struct PublishSession {
    protocol: Protocol,
    connected: bool,
    /// Publishes that may await their acknowledgement at once: ours,
    /// lowered to the broker's receive maximum (MQTT 5).
    window: usize,
    /// The largest packet the broker takes.
    max_packet: usize,
    next_pkid: u16,
    in_flight: HashSet<u16>,
    /// Bytes to send, in order.
    pub(crate) out: BytesMut,
    /// Bytes received and not yet read.
    pub(crate) received: BytesMut,
}

/// Who connects, and how.
#[derive(Debug, Clone)]
pub(crate) struct Hello<'a> {
    /// The client id.
    pub(crate) client_id: &'a str,
    /// Keep-alive interval in seconds.
    pub(crate) keep_alive_s: u16,
    /// Username and password.
    pub(crate) credentials: Option<(&'a str, &'a str)>,
}

fn varint_len(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn put_varint(out: &mut BytesMut, mut n: usize) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if n == 0 {
            break;
        }
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

impl PublishSession {
    /// A session that keeps at most `inflight` QoS 1 publishes unacknowledged.
    pub(crate) fn new(protocol: Protocol, inflight: u16) -> Self {
        PublishSession {
            protocol,
            connected: false,
            window: usize::from(inflight.max(1)),
            max_packet: MAX_REMAINING + 5,
            next_pkid: 0,
            in_flight: HashSet::new(),
            out: BytesMut::with_capacity(64 * 1024),
            received: BytesMut::with_capacity(16 * 1024),
        }
    }

    /// Queues CONNECT, with a clean session: the outbox, not the broker,
    /// keeps what has not been acknowledged.
    pub(crate) fn connect(&mut self, hello: &Hello<'_>) {
        match self.protocol {
            Protocol::V311 => {
                let mut connect = v4::Connect::new(hello.client_id);
                connect.keep_alive = hello.keep_alive_s;
                connect.clean_session = true;
                if let Some((user, password)) = hello.credentials {
                    connect.set_login(user, password);
                }
                // Encoding fails only past MQTT's size limits, which a
                // client id and credentials checked at load cannot reach.
                let _ = v4::Packet::Connect(connect).write(&mut self.out, usize::MAX);
            }
            Protocol::V5 => {
                let connect = v5::Connect {
                    keep_alive: hello.keep_alive_s,
                    client_id: hello.client_id.to_owned(),
                    clean_start: true,
                    properties: None,
                };
                let login = hello
                    .credentials
                    .map(|(user, password)| v5::Login::new(user, password));
                let _ = v5::Packet::Connect(connect, None, login).write(&mut self.out, None);
            }
        }
    }

    /// Whether another QoS 1 publish may go out before an acknowledgement.
    pub(crate) fn has_room(&self) -> bool {
        self.connected && self.in_flight.len() < self.window
    }

    /// Whether enough of the window is free to be worth a write: half of
    /// it, so that publishes leave in large writes rather than one for
    /// each acknowledgement that comes back.
    pub(crate) fn wants_more(&self) -> bool {
        self.connected && self.in_flight.len() * 2 <= self.window
    }

    /// Publishes awaiting their acknowledgement.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn take_pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if self.in_flight.insert(self.next_pkid) {
                return self.next_pkid;
            }
        }
    }

    /// Queues a PUBLISH of `payload` to `topic` at QoS `qos` (0 or 1);
    /// with MQTT 5, `id` goes as the user property `result_id` and the
    /// content type is JSON. Gives the packet id (0 for QoS 0). A QoS 1
    /// publish needs [`PublishSession::has_room`].
    pub(crate) fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
        id: &str,
    ) -> Result<u16, Unpublishable> {
        if topic.len() > usize::from(u16::MAX) {
            return Err(Unpublishable::TopicTooLong(topic.len()));
        }
        // A string property holds at most 65535 bytes: a longer id is cut
        // at a character boundary (the payload carries it whole).
        let mut cut = id.len().min(usize::from(u16::MAX));
        while !id.is_char_boundary(cut) {
            cut -= 1;
        }
        let id = &id[..cut];
        const CONTENT_TYPE: &str = "application/json";
        const RESULT_ID: &str = "result_id";
        let properties = match self.protocol {
            Protocol::V311 => None,
            // Content type (0x03) and one user property (0x26).
            Protocol::V5 => {
                Some(1 + 2 + CONTENT_TYPE.len() + 1 + 2 + RESULT_ID.len() + 2 + id.len())
            }
        };
        let remaining = 2
            + topic.len()
            + if qos > 0 { 2 } else { 0 }
            + properties.map_or(0, |len| varint_len(len) + len)
            + payload.len();
        let size = 1 + varint_len(remaining) + remaining;
        let max = self.max_packet.min(MAX_REMAINING + 5);
        if remaining > MAX_REMAINING || size > max {
            return Err(Unpublishable::TooLarge { size, max });
        }
        let pkid = if qos > 0 { self.take_pkid() } else { 0 };
        let qos_bits = if qos > 0 { 0b010 } else { 0 };
        self.out.reserve(size);
        self.out.put_u8(0x30 | qos_bits | u8::from(retain));
        put_varint(&mut self.out, remaining);
        put_str(&mut self.out, topic);
        if qos > 0 {
            self.out.put_u16(pkid);
        }
        if let Some(len) = properties {
            put_varint(&mut self.out, len);
            self.out.put_u8(0x03);
            put_str(&mut self.out, CONTENT_TYPE);
            self.out.put_u8(0x26);
            put_str(&mut self.out, RESULT_ID);
            put_str(&mut self.out, id);
        }
        self.out.put_slice(payload);
        Ok(pkid)
    }

    /// Queues a PINGREQ.
    pub(crate) fn ping(&mut self) {
        self.out.put_slice(&[0xC0, 0x00]);
    }

    /// The next packet among the received bytes, if one is whole; an error
    /// means the connection cannot go on (refused, closed by the broker,
    /// or bytes that are no MQTT).
    pub(crate) fn read(&mut self) -> Result<Option<Incoming>, String> {
        match self.protocol {
            Protocol::V311 => self.read_v4(),
            Protocol::V5 => self.read_v5(),
        }
    }

    fn acked(&mut self, pkid: u16, refused: Option<String>) -> Incoming {
        if self.in_flight.remove(&pkid) {
            Incoming::PubAck { pkid, refused }
        } else {
            Incoming::Other
        }
    }

    fn read_v4(&mut self) -> Result<Option<Incoming>, String> {
        let packet = match v4::Packet::read(&mut self.received, usize::MAX) {
            Ok(packet) => packet,
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => return Ok(None),
            Err(e) => return Err(format!("the broker sent something that is no MQTT: {e}")),
        };
        Ok(Some(match packet {
            v4::Packet::ConnAck(ack) => {
                if ack.code != v4::ConnectReturnCode::Success {
                    return Err(format!("the broker refused the connection: {:?}", ack.code));
                }
                self.connected = true;
                Incoming::ConnAck
            }
            v4::Packet::PubAck(ack) => self.acked(ack.pkid, None),
            _ => Incoming::Other,
        }))
    }

    fn read_v5(&mut self) -> Result<Option<Incoming>, String> {
        let packet = match v5::Packet::read(&mut self.received, None) {
            Ok(packet) => packet,
            Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => return Ok(None),
            Err(e) => return Err(format!("the broker sent something that is no MQTT: {e}")),
        };
        Ok(Some(match packet {
            v5::Packet::ConnAck(ack) => {
                if ack.code != v5::ConnectReturnCode::Success {
                    let why = ack
                        .properties
                        .and_then(|p| p.reason_string)
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default();
                    return Err(format!(
                        "the broker refused the connection: {:?}{why}",
                        ack.code
                    ));
                }
                if let Some(properties) = ack.properties {
                    if let Some(max) = properties.receive_max {
                        self.window = self.window.min(usize::from(max.max(1)));
                    }
                    if let Some(max) = properties.max_packet_size {
                        self.max_packet = max as usize;
                    }
                }
                self.connected = true;
                Incoming::ConnAck
            }
            v5::Packet::PubAck(ack) => {
                let refused = match ack.reason {
                    v5::PubAckReason::Success | v5::PubAckReason::NoMatchingSubscribers => None,
                    other => {
                        let why = ack
                            .properties
                            .and_then(|p| p.reason_string)
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default();
                        Some(format!("the broker refused it: {other:?}{why}"))
                    }
                };
                self.acked(ack.pkid, refused)
            }
            v5::Packet::Disconnect(disconnect) => {
                let why = disconnect
                    .properties
                    .and_then(|p| p.reason_string)
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                return Err(format!(
                    "the broker closed the connection: {:?}{why}",
                    disconnect.reason_code
                ));
            }
            _ => Incoming::Other,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Reads back what the session queued with rumqttc's decoder.
    fn sent_v4(session: &mut PublishSession) -> Vec<v4::Packet> {
        let mut packets = Vec::new();
        while !session.out.is_empty() {
            packets.push(v4::Packet::read(&mut session.out, usize::MAX).unwrap());
        }
        packets
    }

    fn sent_v5(session: &mut PublishSession) -> Vec<v5::Packet> {
        let mut packets = Vec::new();
        while !session.out.is_empty() {
            packets.push(v5::Packet::read(&mut session.out, None).unwrap());
        }
        packets
    }

    fn hello() -> Hello<'static> {
        Hello {
            client_id: "site-7",
            keep_alive_s: 30,
            credentials: Some(("user", "secret")),
        }
    }

    fn accept_v4(session: &mut PublishSession) {
        v4::ConnAck::new(v4::ConnectReturnCode::Success, false)
            .write(&mut session.received)
            .unwrap();
        assert_eq!(session.read().unwrap(), Some(Incoming::ConnAck));
    }

    #[test]
    fn publishes_decode_as_mqtt_3_1_1_with_their_packet_ids() {
        let mut session = PublishSession::new(Protocol::V311, 2);
        session.connect(&hello());
        let connect = sent_v4(&mut session);
        let [v4::Packet::Connect(connect)] = &connect[..] else {
            panic!("{connect:?}")
        };
        assert_eq!(connect.client_id, "site-7");
        assert!(connect.clean_session);
        assert_eq!(connect.login.as_ref().unwrap().password, "secret");
        assert!(!session.has_room());
        accept_v4(&mut session);
        let body = "é".repeat(100);
        let a = session
            .publish("r/ups-1", body.as_bytes(), 1, false, "a")
            .unwrap();
        let b = session.publish("r/ups-2", b"{}", 1, true, "b").unwrap();
        assert!(!session.has_room(), "a window of two is full");
        assert_eq!(session.publish("r/x", b"q0", 0, false, "c").unwrap(), 0);
        let packets = sent_v4(&mut session);
        let expected = [
            (
                "r/ups-1",
                body.as_bytes(),
                a,
                false,
                rumqttc::QoS::AtLeastOnce,
            ),
            (
                "r/ups-2",
                b"{}".as_slice(),
                b,
                true,
                rumqttc::QoS::AtLeastOnce,
            ),
            ("r/x", b"q0".as_slice(), 0, false, rumqttc::QoS::AtMostOnce),
        ];
        assert_eq!(packets.len(), expected.len());
        for (packet, (topic, payload, pkid, retain, qos)) in packets.iter().zip(expected) {
            let v4::Packet::Publish(p) = packet else {
                panic!("{packet:?}")
            };
            assert_eq!(
                (p.topic.as_str(), &p.payload[..], p.pkid, p.retain, p.qos),
                (topic, payload, pkid, retain, qos)
            );
        }
        assert_ne!(a, b);
        // Acknowledgements in any order free their ids; unknown ones are
        // ignored.
        v4::PubAck::new(b).write(&mut session.received).unwrap();
        v4::PubAck::new(999).write(&mut session.received).unwrap();
        assert_eq!(
            session.read().unwrap(),
            Some(Incoming::PubAck {
                pkid: b,
                refused: None
            })
        );
        assert_eq!(session.read().unwrap(), Some(Incoming::Other));
        assert_eq!(session.read().unwrap(), None);
        assert!(session.has_room());
        let c = session.publish("r", b"", 1, false, "d").unwrap();
        assert!(
            c != a,
            "an id still awaiting its acknowledgement is not reused"
        );
    }

    #[test]
    fn a_packet_split_across_reads_is_read_once_whole() {
        let mut session = PublishSession::new(Protocol::V311, 8);
        session.connect(&hello());
        session.out.clear();
        accept_v4(&mut session);
        let pkid = session.publish("t", b"x", 1, false, "i").unwrap();
        let mut ack = BytesMut::new();
        v4::PubAck::new(pkid).write(&mut ack).unwrap();
        session.received.put_slice(&ack[..1]);
        assert_eq!(session.read().unwrap(), None);
        session.received.put_slice(&ack[1..]);
        assert!(matches!(
            session.read().unwrap(),
            Some(Incoming::PubAck { .. })
        ));
    }

    #[test]
    fn mqtt_5_carries_the_result_id_and_keeps_to_the_brokers_limits() {
        let mut session = PublishSession::new(Protocol::V5, 1024);
        session.connect(&hello());
        let connect = sent_v5(&mut session);
        let [v5::Packet::Connect(connect, None, Some(login))] = &connect[..] else {
            panic!("{connect:?}")
        };
        assert!(connect.clean_start);
        assert_eq!(login.username, "user");
        let ack = v5::ConnAck {
            session_present: false,
            code: v5::ConnectReturnCode::Success,
            properties: Some(v5::ConnAckProperties {
                session_expiry_interval: None,
                receive_max: Some(2),
                max_qos: None,
                retain_available: None,
                max_packet_size: Some(200),
                assigned_client_identifier: None,
                topic_alias_max: None,
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: None,
                subscription_identifiers_available: None,
                shared_subscription_available: None,
                server_keep_alive: None,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            }),
        };
        ack.write(&mut session.received).unwrap();
        assert_eq!(session.read().unwrap(), Some(Incoming::ConnAck));
        let pkid = session
            .publish("out/stats", b"{\"n\":1}", 1, false, "stats:42")
            .unwrap();
        let packets = sent_v5(&mut session);
        let [v5::Packet::Publish(p)] = &packets[..] else {
            panic!("{packets:?}")
        };
        assert_eq!(p.topic, Bytes::from_static(b"out/stats"));
        assert_eq!(p.pkid, pkid);
        assert_eq!(&p.payload[..], b"{\"n\":1}");
        let properties = p.properties.as_ref().unwrap();
        assert_eq!(
            properties.user_properties,
            vec![("result_id".to_owned(), "stats:42".to_owned())]
        );
        assert_eq!(properties.content_type.as_deref(), Some("application/json"));
        // The broker's maximum packet size refuses a big result.
        let big = vec![b'x'; 300];
        assert!(matches!(
            session.publish("t", &big, 1, false, "i"),
            Err(Unpublishable::TooLarge { max: 200, .. })
        ));
        // Its receive maximum of two bounds the window.
        session.publish("t", b"", 1, false, "j").unwrap();
        assert!(!session.has_room());
        // A refusal is read with its reason.
        let mut refusal = v5::PubAck::new(pkid, None);
        refusal.reason = v5::PubAckReason::NotAuthorized;
        refusal.write(&mut session.received).unwrap();
        let Some(Incoming::PubAck {
            refused: Some(why), ..
        }) = session.read().unwrap()
        else {
            panic!()
        };
        assert!(why.contains("NotAuthorized"), "{why}");
    }

    #[test]
    fn a_refused_connection_and_a_disconnect_say_why() {
        let mut session = PublishSession::new(Protocol::V5, 8);
        v5::ConnAck {
            session_present: false,
            code: v5::ConnectReturnCode::NotAuthorized,
            properties: None,
        }
        .write(&mut session.received)
        .unwrap();
        let e = session.read().unwrap_err();
        assert!(e.contains("NotAuthorized"), "{e}");
        let mut session = PublishSession::new(Protocol::V311, 8);
        session.received.put_slice(&[0xF0, 0x00, 0x00]);
        assert!(
            session.read().is_err(),
            "an AUTH packet means no MQTT 3.1.1"
        );
    }
}
