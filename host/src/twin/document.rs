//! Shadow state documents as AWS IoT's Device Shadow service defines them:
//! merging an update into a state, the delta between desired and reported,
//! and the service's limits. Pure functions over `serde_json` values; the
//! protocol and the local copy build on them.
//!
//! The rules, from the service's documentation:
//! - an update's `desired` or `reported` is merged field by field into the
//!   stored section: an object merges into an object, anything else (a
//!   scalar, an array) replaces the stored value whole, and `null` deletes
//!   the field (`"desired": null` deletes the whole section);
//! - the delta holds each field of `desired` whose value differs from
//!   `reported` (or that `reported` lacks); inside nested objects only the
//!   differing paths are kept, and arrays compare as whole values;
//! - a state of more than 8 KB, more than 6 levels of nesting in `desired`
//!   or `reported`, or a client token over 64 bytes is refused.

use serde_json::{Map, Value};

/// The most bytes the `desired` and `reported` sections of one shadow hold
/// together (as compact JSON; metadata does not count).
pub const MAX_STATE_BYTES: usize = 8 * 1024;

/// The most levels of nesting inside `desired` or `reported`.
pub const MAX_DEPTH: usize = 6;

/// The longest client token, in bytes.
pub const MAX_CLIENT_TOKEN_BYTES: usize = 64;

/// The longest thing name, in bytes.
pub const MAX_THING_NAME_BYTES: usize = 128;

/// The longest shadow name, in bytes.
pub const MAX_SHADOW_NAME_BYTES: usize = 64;

/// Why a request to a shadow is refused, as the service answers it on a
/// `/rejected` topic (`{"code": …, "message": …}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// 400: the request cannot be read or breaks a rule.
    #[error("400 {0}")]
    BadRequest(String),
    /// 404: there is no such shadow.
    #[error("404 {0}")]
    NotFound(String),
    /// 409: the update named another version than the stored one.
    #[error("409 Version conflict")]
    VersionConflict,
    /// 413: the state would exceed [`MAX_STATE_BYTES`].
    #[error("413 The payload exceeds the maximum size allowed")]
    TooLarge,
    /// Any other code the service answered with.
    #[error("{code} {message}")]
    Other {
        /// The HTTP-style code.
        code: u16,
        /// The service's message.
        message: String,
    },
}

impl Rejection {
    /// The HTTP-style code of the answer.
    pub fn code(&self) -> u16 {
        match self {
            Rejection::BadRequest(_) => 400,
            Rejection::NotFound(_) => 404,
            Rejection::VersionConflict => 409,
            Rejection::TooLarge => 413,
            Rejection::Other { code, .. } => *code,
        }
    }

    /// Reads a `/rejected` payload's code and message.
    pub fn from_error(doc: &Value) -> Rejection {
        let code = doc["code"].as_u64().unwrap_or(0) as u16;
        let message = doc["message"].as_str().unwrap_or_default().to_owned();
        match code {
            400 => Rejection::BadRequest(message),
            404 => Rejection::NotFound(message),
            409 => Rejection::VersionConflict,
            413 => Rejection::TooLarge,
            code => Rejection::Other { code, message },
        }
    }
}

/// Merges an update's section into a stored one: objects field by field,
/// anything else replaced whole, `null` deleting. An object that the
/// update's deletions leave empty is deleted too.
pub fn merge(stored: &mut Map<String, Value>, update: &Map<String, Value>) {
    for (name, value) in update {
        match value {
            Value::Null => {
                stored.remove(name);
            }
            Value::Object(inner) => {
                let mut merged = match stored.remove(name) {
                    Some(Value::Object(old)) => old,
                    _ => Map::new(),
                };
                merge(&mut merged, inner);
                if !merged.is_empty() || inner.is_empty() {
                    stored.insert(name.clone(), Value::Object(merged));
                }
            }
            other => {
                stored.insert(name.clone(), other.clone());
            }
        }
    }
}

/// Folds a later patch into an earlier one without applying either: the
/// result, merged into any state, gives what merging both in turn gives.
/// `null`s stay (they still have to delete what the state holds).
pub fn fold_patch(earlier: &mut Map<String, Value>, later: &Map<String, Value>) {
    for (name, value) in later {
        match (earlier.get_mut(name), value) {
            (Some(Value::Object(old)), Value::Object(new)) => fold_patch(old, new),
            (_, value) => {
                earlier.insert(name.clone(), value.clone());
            }
        }
    }
}

/// Removes from `pending` each leaf that `sent` holds with the same value:
/// what an accepted update took, leaving what changed since it was sent.
pub fn subtract(pending: &mut Map<String, Value>, sent: &Map<String, Value>) {
    for (name, value) in sent {
        let remove = match (pending.get_mut(name), value) {
            (Some(Value::Object(mine)), Value::Object(theirs)) if !theirs.is_empty() => {
                subtract(mine, theirs);
                mine.is_empty()
            }
            (Some(mine), theirs) => mine == theirs,
            (None, _) => false,
        };
        if remove {
            pending.remove(name);
        }
    }
}

/// The fields of `desired` that `reported` does not hold with the same
/// value; `None` when there are none.
pub fn delta(
    desired: &Map<String, Value>,
    reported: &Map<String, Value>,
) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for (name, want) in desired {
        match (want, reported.get(name)) {
            (Value::Object(want), Some(Value::Object(have))) => {
                if let Some(inner) = delta(want, have) {
                    out.insert(name.clone(), Value::Object(inner));
                }
            }
            (want, have) if have == Some(want) => {}
            (want, _) => {
                out.insert(name.clone(), want.clone());
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Levels of nesting of a value: a scalar or an empty container is 0, an
/// object or array holding scalars 1, and so on.
pub fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => map.values().map(|v| 1 + depth(v)).max().unwrap_or(0),
        Value::Array(items) => items.iter().map(|v| 1 + depth(v)).max().unwrap_or(0),
        _ => 0,
    }
}

/// Checks an update request's `state` (and client token) against the
/// service's rules; returns its `desired` and `reported` sections, each
/// `None` when absent, `Some(None)` when `null` (delete the section).
#[allow(clippy::type_complexity)]
pub fn check_update(
    request: &Value,
) -> Result<
    (
        Option<Option<Map<String, Value>>>,
        Option<Option<Map<String, Value>>>,
    ),
    Rejection,
> {
    let Value::Object(request) = request else {
        return Err(Rejection::BadRequest("Invalid JSON".into()));
    };
    if let Some(token) = request.get("clientToken") {
        match token.as_str() {
            Some(t) if t.len() <= MAX_CLIENT_TOKEN_BYTES => {}
            _ => return Err(Rejection::BadRequest("Invalid clientToken".into())),
        }
    }
    if let Some(version) = request.get("version")
        && !version.is_u64()
    {
        return Err(Rejection::BadRequest("Invalid version".into()));
    }
    let state = match request.get("state") {
        None => return Err(Rejection::BadRequest("Missing required node: state".into())),
        Some(Value::Object(state)) => state,
        Some(_) => return Err(Rejection::BadRequest("State node must be an object".into())),
    };
    let mut sections = [None, None];
    for (name, value) in state {
        let slot = match name.as_str() {
            "desired" => 0,
            "reported" => 1,
            _ => {
                return Err(Rejection::BadRequest(
                    "State contains an invalid node".into(),
                ));
            }
        };
        sections[slot] = Some(match value {
            Value::Null => None,
            Value::Object(map) => {
                // The section's own object is the first level.
                if depth(value) > MAX_DEPTH {
                    return Err(Rejection::BadRequest(format!(
                        "JSON contains too many levels of nesting; maximum is {MAX_DEPTH}"
                    )));
                }
                Some(map.clone())
            }
            _ => {
                let which = if slot == 0 { "Desired" } else { "Reported" };
                return Err(Rejection::BadRequest(format!(
                    "{which} node must be an object"
                )));
            }
        });
    }
    let [desired, reported] = sections;
    Ok((desired, reported))
}

/// The bytes a shadow's state counts against [`MAX_STATE_BYTES`].
pub fn state_bytes(desired: &Map<String, Value>, reported: &Map<String, Value>) -> usize {
    let size = |m: &Map<String, Value>| {
        if m.is_empty() {
            0
        } else {
            serde_json::to_vec(m).map_or(0, |v| v.len())
        }
    };
    size(desired) + size(reported)
}

/// Top-level sections of `reported` to move into shadows of their own so
/// that `desired` and the rest of `reported` fit in [`MAX_STATE_BYTES`]:
/// the largest first, never one of `keep`. Empty when everything fits.
pub fn sections_to_move(
    desired: &Map<String, Value>,
    reported: &Map<String, Value>,
    keep: &[&str],
) -> Vec<String> {
    let mut rest = reported.clone();
    if state_bytes(desired, &rest) <= MAX_STATE_BYTES {
        return Vec::new();
    }
    let mut movable: Vec<(usize, String)> = reported
        .iter()
        .filter(|(name, _)| !keep.contains(&name.as_str()))
        .map(|(name, value)| {
            (
                serde_json::to_vec(value).map_or(0, |v| v.len()),
                name.clone(),
            )
        })
        .collect();
    movable.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut moved = Vec::new();
    for (_, name) in movable {
        if state_bytes(desired, &rest) <= MAX_STATE_BYTES {
            break;
        }
        rest.remove(&name);
        moved.push(name);
    }
    moved
}

/// Whether `name` can be a thing or shadow name: `[a-zA-Z0-9:_-]`, at
/// most `max` bytes, not empty.
pub fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

/// A thing name made from a device's record key: characters a thing name
/// cannot hold become `_`, and the name is cut to the limit.
pub fn thing_name(prefix: &str, key: &str) -> String {
    let mut name: String = prefix
        .chars()
        .chain(key.chars())
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(MAX_THING_NAME_BYTES);
    name
}

#[cfg(test)]
mod tests {
    //! The examples of AWS's Device Shadow documentation ("Device Shadow
    //! service documents", "Using shadows in devices"), as updates, deltas
    //! and errors.
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("an object"),
        }
    }

    #[test]
    fn an_update_merges_field_by_field_and_null_deletes() {
        // The documentation's lightbulb: reported color red, then an update
        // of desired color green; then a null removing it.
        let mut reported = map(json!({ "color": "red", "power": "on" }));
        merge(&mut reported, &map(json!({ "color": "green" })));
        assert_eq!(
            Value::Object(reported.clone()),
            json!({ "color": "green", "power": "on" })
        );
        merge(&mut reported, &map(json!({ "color": null })));
        assert_eq!(Value::Object(reported), json!({ "power": "on" }));
    }

    #[test]
    fn nested_objects_merge_and_arrays_replace_whole() {
        let mut stored = map(json!({ "a": { "b": 1, "c": [1, 2, 3] }, "d": [1] }));
        merge(&mut stored, &map(json!({ "a": { "c": [9] }, "d": [2, 3] })));
        assert_eq!(
            Value::Object(stored),
            json!({ "a": { "b": 1, "c": [9] }, "d": [2, 3] })
        );
    }

    #[test]
    fn deleting_the_last_field_of_an_object_deletes_the_object() {
        let mut stored = map(json!({ "a": { "b": 1 }, "x": 1 }));
        merge(&mut stored, &map(json!({ "a": { "b": null } })));
        assert_eq!(Value::Object(stored), json!({ "x": 1 }));
    }

    #[test]
    fn the_delta_keeps_only_differing_paths_and_compares_arrays_whole() {
        // The documentation's example: desired color yellow with a nested
        // object, reported color red.
        let desired = map(json!({
            "color": "yellow",
            "lights": { "kitchen": "on", "hall": "off" },
            "schedule": [1, 2, 3],
            "same": 7
        }));
        let reported = map(json!({
            "color": "red",
            "lights": { "kitchen": "on", "hall": "on" },
            "schedule": [1, 2],
            "same": 7,
            "extra": true
        }));
        assert_eq!(
            delta(&desired, &reported).map(Value::Object),
            Some(json!({ "color": "yellow", "lights": { "hall": "off" }, "schedule": [1, 2, 3] }))
        );
    }

    #[test]
    fn no_delta_when_reported_holds_every_desired_value() {
        let desired = map(json!({ "color": "green", "a": { "b": [1] } }));
        let reported = map(json!({ "color": "green", "a": { "b": [1], "c": 2 }, "z": 0 }));
        assert_eq!(delta(&desired, &reported), None);
        // A desired field that reported lacks is in the delta.
        assert_eq!(
            delta(&map(json!({ "n": 1 })), &Map::new()).map(Value::Object),
            Some(json!({ "n": 1 }))
        );
        // An object desired where reported has a scalar: the whole object.
        assert_eq!(
            delta(&map(json!({ "n": { "m": 1 } })), &map(json!({ "n": 3 }))).map(Value::Object),
            Some(json!({ "n": { "m": 1 } }))
        );
    }

    #[test]
    fn requests_that_break_the_rules_are_refused_as_the_service_does() {
        let bad = |v: Value| check_update(&v).unwrap_err();
        assert_eq!(
            bad(json!({ "desired": { "a": 1 } })),
            Rejection::BadRequest("Missing required node: state".into())
        );
        assert_eq!(
            bad(json!({ "state": [1] })),
            Rejection::BadRequest("State node must be an object".into())
        );
        assert_eq!(
            bad(json!({ "state": { "desired": 3 } })),
            Rejection::BadRequest("Desired node must be an object".into())
        );
        assert_eq!(
            bad(json!({ "state": { "reported": "x" } })),
            Rejection::BadRequest("Reported node must be an object".into())
        );
        assert_eq!(
            bad(json!({ "state": { "wanted": {} } })),
            Rejection::BadRequest("State contains an invalid node".into())
        );
        assert_eq!(
            bad(json!({ "state": {}, "clientToken": "x".repeat(65) })),
            Rejection::BadRequest("Invalid clientToken".into())
        );
        assert_eq!(
            bad(json!({ "state": {}, "version": "3" })),
            Rejection::BadRequest("Invalid version".into())
        );
        // Six levels inside desired are allowed, seven are not.
        let six = json!({ "state": { "desired": { "1": { "2": { "3": { "4": { "5": { "6": 0 } } } } } } } });
        assert!(check_update(&six).is_ok());
        let seven = json!({ "state": { "desired": { "1": { "2": { "3": { "4": { "5": { "6": { "7": 0 } } } } } } } } });
        assert_eq!(
            check_update(&seven).unwrap_err(),
            Rejection::BadRequest("JSON contains too many levels of nesting; maximum is 6".into())
        );
        assert!(check_update(&json!({ "state": {}, "clientToken": "x".repeat(64) })).is_ok());
        let (desired, reported) =
            check_update(&json!({ "state": { "desired": null, "reported": { "a": 1 } } })).unwrap();
        assert_eq!(desired, Some(None));
        assert_eq!(
            reported.flatten().map(Value::Object),
            Some(json!({ "a": 1 }))
        );
    }

    #[test]
    fn rejections_read_back_from_their_code() {
        for (code, want) in [
            (409, Rejection::VersionConflict),
            (413, Rejection::TooLarge),
            (
                404,
                Rejection::NotFound("No shadow exists with name: x".into()),
            ),
        ] {
            let message = want.to_string();
            let message = message.split_once(' ').unwrap().1;
            let read = Rejection::from_error(&json!({ "code": code, "message": message }));
            assert_eq!(read, want);
            assert_eq!(read.code(), code);
        }
    }

    #[test]
    fn the_size_counts_desired_and_reported_as_compact_json() {
        let desired = map(json!({ "a": 1 }));
        let reported = map(json!({ "bb": "x" }));
        assert_eq!(
            state_bytes(&desired, &reported),
            r#"{"a":1}"#.len() + r#"{"bb":"x"}"#.len()
        );
        assert_eq!(state_bytes(&Map::new(), &Map::new()), 0);
    }

    #[test]
    fn patches_fold_so_that_applying_the_fold_equals_applying_both() {
        let state = map(json!({ "a": { "b": 1, "c": 2 }, "d": 4 }));
        let first = map(json!({ "a": { "b": 10 }, "d": null, "e": [1] }));
        let second = map(json!({ "a": { "c": null }, "d": 5 }));
        let mut both = state.clone();
        merge(&mut both, &first);
        merge(&mut both, &second);
        let mut folded = first.clone();
        fold_patch(&mut folded, &second);
        let mut once = state;
        merge(&mut once, &folded);
        assert_eq!(once, both);
    }

    #[test]
    fn subtracting_what_was_sent_keeps_what_changed_since() {
        let mut pending = map(json!({ "a": { "b": 2, "c": 3 }, "d": null, "e": 1 }));
        let sent = map(json!({ "a": { "b": 1, "c": 3 }, "d": null }));
        subtract(&mut pending, &sent);
        assert_eq!(Value::Object(pending), json!({ "a": { "b": 2 }, "e": 1 }));
    }

    #[test]
    fn a_state_too_large_moves_its_largest_sections_out_but_never_the_kept_ones() {
        let big = |n: usize| Value::String("x".repeat(n));
        let reported = map(json!({
            "params": big(3000),
            "stats": big(4000),
            "alerts": big(2000),
            "last_seen": 1
        }));
        // 9000-odd bytes: moving stats (the largest movable) is enough.
        assert_eq!(
            sections_to_move(&Map::new(), &reported, &["params"]),
            vec!["stats".to_owned()]
        );
        // With params movable too, still only what is needed.
        assert_eq!(
            sections_to_move(&Map::new(), &reported, &[]),
            vec!["stats".to_owned()]
        );
        // Desired counts: with 4000 bytes desired, alerts goes as well.
        let desired = map(json!({ "d": big(4000) }));
        assert_eq!(
            sections_to_move(&desired, &reported, &["params"]),
            vec!["stats".to_owned(), "alerts".to_owned()]
        );
        let small = map(json!({ "a": 1 }));
        assert!(sections_to_move(&Map::new(), &small, &[]).is_empty());
    }

    #[test]
    fn names_hold_only_the_characters_a_thing_name_may() {
        assert!(valid_name("site-7:gw_1", MAX_THING_NAME_BYTES));
        assert!(!valid_name("site 7", MAX_THING_NAME_BYTES));
        assert!(!valid_name("", MAX_THING_NAME_BYTES));
        assert!(!valid_name(&"a".repeat(65), MAX_SHADOW_NAME_BYTES));
        assert_eq!(thing_name("site7-", "ups/1.cell 3"), "site7-ups_1_cell_3");
        assert_eq!(thing_name("", &"k".repeat(300)).len(), MAX_THING_NAME_BYTES);
    }
}
