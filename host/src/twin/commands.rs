//! What the local API (and so `eddy twin`) asks of the running twin sync,
//! and the twin as it answers: the local copy, which is there offline.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

/// A request to the twin sync.
#[derive(Debug)]
pub enum TwinCommand {
    /// The names of the twins (things) it syncs.
    List(oneshot::Sender<Vec<String>>),
    /// One twin.
    Get {
        /// Its thing name.
        thing: String,
        /// Gets the twin, or `None` when there is no such thing.
        reply: oneshot::Sender<Option<TwinView>>,
    },
    /// Change a twin's desired state on the site: it acts at once and goes
    /// to the shadow service (now, or when the link is back).
    SetDesired {
        /// Its thing name.
        thing: String,
        /// The change (`null` deletes a field).
        patch: Map<String, Value>,
        /// Gets the twin after the change, or why it was refused.
        reply: oneshot::Sender<Result<TwinView, String>>,
    },
}

/// Where commands go.
pub type TwinCommands = tokio::sync::mpsc::Sender<TwinCommand>;

/// A twin as eddy holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwinView {
    /// The thing.
    pub thing: String,
    /// The named shadow, if not the classic one.
    pub shadow: Option<String>,
    /// For a device's twin, the device (its record key).
    pub device: Option<String>,
    /// The shadow's version as last seen.
    pub version: u64,
    /// Whether the shadow service is reachable and the document was read.
    pub synced: bool,
    /// Desired state (with changes made on the site).
    pub desired: Map<String, Value>,
    /// Reported state (with the changes not yet sent).
    pub reported: Map<String, Value>,
    /// Desired fields reported does not hold.
    pub delta: Option<Map<String, Value>>,
    /// Reported changes not yet accepted by the service.
    pub pending_reported: Map<String, Value>,
    /// Desired changes made on the site, not yet accepted by the service.
    pub pending_desired: Map<String, Value>,
}

/// `a.b.c=value` as `{"a": {"b": {"c": value}}}`; the value is JSON when it
/// reads as JSON (`45`, `true`, `null`, `{"x": 1}`), else a string.
pub fn patch_of(assignments: &[String]) -> Result<Map<String, Value>, String> {
    let mut patch = Map::new();
    for assignment in assignments {
        let (path, text) = assignment.split_once('=').ok_or_else(|| {
            format!("`{assignment}` is not PATH=VALUE (e.g. params.alerts.threshold=45)")
        })?;
        let value = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
        let names: Vec<&str> = path.split('.').collect();
        if names.iter().any(|n| n.is_empty()) {
            return Err(format!("`{path}` is not a dotted path of field names"));
        }
        let mut one = value;
        for name in names.iter().rev() {
            let mut map = Map::new();
            map.insert((*name).to_owned(), one);
            one = Value::Object(map);
        }
        if let Value::Object(map) = one {
            super::document::fold_patch(&mut patch, &map);
        }
    }
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dotted_assignments_make_one_nested_patch() {
        let patch = patch_of(&[
            "params.alerts.threshold=45".into(),
            "params.alerts.field=temperature_max".into(),
            "points.setpoint=null".into(),
        ])
        .unwrap();
        assert_eq!(
            Value::Object(patch),
            json!({
                "params": { "alerts": { "threshold": 45, "field": "temperature_max" } },
                "points": { "setpoint": null }
            })
        );
        assert!(patch_of(&["threshold".into()]).is_err());
        assert!(patch_of(&["a..b=1".into()]).is_err());
    }
}
