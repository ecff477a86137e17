//! The Device Shadow service's reserved MQTT topics, for a classic shadow
//! (`$aws/things/THING/shadow/…`) or a named one
//! (`$aws/things/THING/shadow/name/SHADOW/…`).

/// One shadow: a thing and, for a named shadow, its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShadowId {
    /// The thing.
    pub thing: String,
    /// The shadow's name; `None` for the classic shadow.
    pub name: Option<String>,
}

/// What a message on a shadow topic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `get/accepted`: the whole document.
    GetAccepted,
    /// `get/rejected`.
    GetRejected,
    /// `update/accepted`: the update as stored.
    UpdateAccepted,
    /// `update/rejected`.
    UpdateRejected,
    /// `update/delta`: desired differs from reported.
    Delta,
    /// `update/documents`: the document before and after an update.
    Documents,
    /// `delete/accepted`.
    DeleteAccepted,
    /// `delete/rejected`.
    DeleteRejected,
}

impl Reply {
    /// Every reply, with its topic suffix.
    pub const ALL: [(Reply, &'static str); 8] = [
        (Reply::GetAccepted, "get/accepted"),
        (Reply::GetRejected, "get/rejected"),
        (Reply::UpdateAccepted, "update/accepted"),
        (Reply::UpdateRejected, "update/rejected"),
        (Reply::Delta, "update/delta"),
        (Reply::Documents, "update/documents"),
        (Reply::DeleteAccepted, "delete/accepted"),
        (Reply::DeleteRejected, "delete/rejected"),
    ];
}

impl ShadowId {
    /// The classic shadow of `thing`.
    pub fn classic(thing: impl Into<String>) -> ShadowId {
        ShadowId {
            thing: thing.into(),
            name: None,
        }
    }

    /// The named shadow `name` of `thing`.
    pub fn named(thing: impl Into<String>, name: impl Into<String>) -> ShadowId {
        ShadowId {
            thing: thing.into(),
            name: Some(name.into()),
        }
    }

    /// `$aws/things/THING/shadow` or `$aws/things/THING/shadow/name/NAME`.
    pub fn prefix(&self) -> String {
        match &self.name {
            None => format!("$aws/things/{}/shadow", self.thing),
            Some(name) => format!("$aws/things/{}/shadow/name/{name}", self.thing),
        }
    }

    /// The topic of an operation (`get`, `update`, `delete`) or a reply
    /// suffix (`update/delta`).
    pub fn topic(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.prefix())
    }

    /// The filters a device subscribes to before it asks for anything:
    /// the answers to its requests, and deltas. Two a shadow (`get/+` and
    /// `update/+`), as AWS IoT counts subscriptions against a quota per
    /// connection (50 by default).
    pub fn subscriptions(&self) -> Vec<String> {
        ["get/+", "update/+"]
            .iter()
            .map(|s| self.topic(s))
            .collect()
    }

    /// Which shadow a topic is about, and which reply it is; `None` for
    /// any other topic.
    pub fn parse(topic: &str) -> Option<(ShadowId, Reply)> {
        let rest = topic.strip_prefix("$aws/things/")?;
        let (thing, rest) = rest.split_once("/shadow/")?;
        let (id, suffix) = match rest.strip_prefix("name/") {
            Some(named) => {
                let (name, suffix) = named.split_once('/')?;
                (ShadowId::named(thing, name), suffix)
            }
            None => (ShadowId::classic(thing), rest),
        };
        let reply = Reply::ALL
            .iter()
            .find(|(_, s)| *s == suffix)
            .map(|(r, _)| *r)?;
        Some((id, reply))
    }
}

impl std::fmt::Display for ShadowId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            None => f.write_str(&self.thing),
            Some(name) => write!(f, "{}/{name}", self.thing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_of_classic_and_named_shadows_as_aws_names_them() {
        let classic = ShadowId::classic("gw-7");
        assert_eq!(classic.topic("update"), "$aws/things/gw-7/shadow/update");
        let named = ShadowId::named("gw-7", "latest");
        assert_eq!(
            named.topic("get/accepted"),
            "$aws/things/gw-7/shadow/name/latest/get/accepted"
        );
        assert_eq!(
            ShadowId::parse("$aws/things/gw-7/shadow/update/delta"),
            Some((classic.clone(), Reply::Delta))
        );
        assert_eq!(
            ShadowId::parse("$aws/things/gw-7/shadow/name/latest/update/rejected"),
            Some((named, Reply::UpdateRejected))
        );
        assert_eq!(ShadowId::parse("$aws/things/gw-7/shadow/update"), None);
        assert_eq!(ShadowId::parse("sites/gw-7/shadow/get/accepted"), None);
        assert_eq!(
            classic.subscriptions(),
            [
                "$aws/things/gw-7/shadow/get/+",
                "$aws/things/gw-7/shadow/update/+"
            ]
        );
    }
}
