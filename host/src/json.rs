//! Records as JSON lines, the format of the stdout, file and dead-letter sinks
//! and of `eddy plugin test` input.
//!
//! A record is `{"key": "...", "time": 1767225600000, "fields": {...}}`; sinks
//! add `"id"`, its result id, and `"output"`, the name of the node output it
//! came from. Field values are
//! JSON numbers (integers read back as `i64`, others as `f64`), booleans,
//! strings, and `{"hex": "..."}` for bytes.

use std::sync::Arc;

use eddy_abi::{Record, Value};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// A record serialized as JSON, optionally tagged with the output it came from.
pub struct JsonRecord<'a> {
    /// The record.
    pub record: &'a Record,
    /// The node output it came from, e.g. `stats` or `alerts.cleared`.
    pub output: Option<&'a str>,
    /// Its result id, unique and the same again when replay produces it.
    pub id: Option<&'a str>,
}

struct JsonFields<'a>(&'a [(Arc<str>, Value)]);
struct JsonValue<'a>(&'a Value);

impl Serialize for JsonRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if let Some(id) = self.id {
            map.serialize_entry("id", id)?;
        }
        if let Some(output) = self.output {
            map.serialize_entry("output", output)?;
        }
        map.serialize_entry("key", &*self.record.key)?;
        map.serialize_entry("time", &self.record.time)?;
        map.serialize_entry("fields", &JsonFields(&self.record.fields))?;
        map.end()
    }
}

impl Serialize for JsonFields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(&**name, &JsonValue(value))?;
        }
        map.end()
    }
}

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::F64(v) => s.serialize_f64(*v),
            Value::I64(v) => s.serialize_i64(*v),
            Value::Bool(v) => s.serialize_bool(*v),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(v) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("hex", &hex(v))?;
                map.end()
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a JSON line is not a record.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JsonRecordError(String);

/// Reads one record from a JSON line.
pub fn record_from_json(line: &str) -> Result<Record, JsonRecordError> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| JsonRecordError(e.to_string()))?;
    let err = |m: &str| JsonRecordError(m.to_owned());
    let key = value
        .get("key")
        .and_then(|k| k.as_str())
        .ok_or_else(|| err("expected a string `key`"))?;
    let time = value
        .get("time")
        .and_then(|t| t.as_i64())
        .ok_or_else(|| err("expected an integer `time` (ms since the Unix epoch)"))?;
    let mut record = Record::new(key, time);
    if let Some(fields) = value.get("fields") {
        let fields = fields
            .as_object()
            .ok_or_else(|| err("expected `fields` to be an object"))?;
        for (name, v) in fields {
            let value = match v {
                serde_json::Value::Bool(b) => Value::Bool(*b),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => Value::I64(i),
                    None => Value::F64(n.as_f64().unwrap_or(f64::NAN)),
                },
                serde_json::Value::String(s) => Value::Str(s.as_str().into()),
                serde_json::Value::Object(o) if o.len() == 1 && o.contains_key("hex") => {
                    let hex = o["hex"].as_str().unwrap_or_default();
                    Value::Bytes(unhex(hex).ok_or_else(|| err("bad hex bytes"))?.into())
                }
                _ => {
                    return Err(JsonRecordError(format!(
                        "field `{name}`: expected a number, boolean, string or {{\"hex\": ...}}"
                    )));
                }
            };
            record.fields.push((name.as_str().into(), value));
        }
    }
    Ok(record)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind_of_value() {
        let r = Record::new("k", 5)
            .with("f", 1.5)
            .with("whole", 2.0)
            .with("i", 3i64)
            .with("b", true)
            .with("s", "x")
            .with("raw", Value::Bytes(Arc::from(&[0u8, 255][..])));
        let line = serde_json::to_string(&JsonRecord {
            record: &r,
            output: None,
            id: None,
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"key":"k","time":5,"fields":{"f":1.5,"whole":2.0,"i":3,"b":true,"s":"x","raw":{"hex":"00ff"}}}"#
        );
        assert_eq!(record_from_json(&line).unwrap(), r);
    }

    #[test]
    fn says_what_is_missing() {
        let e = record_from_json(r#"{"key":"k"}"#).unwrap_err().to_string();
        assert!(e.contains("time"), "{e}");
    }
}
