//! JSON to records (a streaming visitor, no intermediate `Value` tree) and
//! records to JSON.

use std::fmt;
use std::sync::Arc;

use eddy_abi::{Record, Value};
use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};

use crate::decoder::{Meta, Names};
use crate::settings::Decoding;
use crate::time;

/// Decodes one JSON document (an object, or an array of objects) into `out`.
pub(crate) fn decode(
    bytes: &[u8],
    settings: &Decoding,
    names: &mut Names,
    meta: &Meta<'_>,
    out: &mut Vec<Record>,
) -> Result<(), String> {
    if settings.points() {
        return decode_pointed(bytes, settings, names, meta, out);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let before = out.len();
    let result = Document {
        settings,
        names,
        meta,
        out,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    result.map_err(|e| {
        // A document is taken whole or not at all.
        out.truncate(before);
        clean(e)
    })
}

/// Decodes a document whose key, time or fields are picked by JSON Pointer:
/// read whole first, then looked into.
fn decode_pointed(
    bytes: &[u8],
    settings: &Decoding,
    names: &mut Names,
    meta: &Meta<'_>,
    out: &mut Vec<Record>,
) -> Result<(), String> {
    let document: serde_json::Value = serde_json::from_slice(bytes).map_err(clean)?;
    let objects = match &document {
        serde_json::Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let mut records = Vec::with_capacity(objects.len());
    for object in objects {
        records.push(pointed_record(object, settings, names, meta)?);
    }
    out.append(&mut records);
    Ok(())
}

/// A member (`name`) or a JSON Pointer (`/a/b`) into `object`.
fn look<'v>(object: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    if path.is_empty() {
        None
    } else if path.starts_with('/') {
        object.pointer(path)
    } else {
        object.get(path)
    }
}

/// One object's record, its key, time and fields looked up by name or pointer.
fn pointed_record(
    object: &serde_json::Value,
    settings: &Decoding,
    names: &mut Names,
    meta: &Meta<'_>,
) -> Result<Record, String> {
    let Some(members) = object.as_object() else {
        return Err("expected a JSON object, or an array of objects".into());
    };
    let key = match look(object, &settings.key_field).filter(|v| !v.is_null()) {
        Some(v) => KeySeed {
            names,
            field: &settings.key_field,
        }
        .deserialize(v)
        .map_err(|e| e.to_string())?,
        None => match meta.key {
            Some(k) => names.key(k),
            None if settings.key_field.is_empty() => names.key(""),
            None => return Err(format!("no `{}` to take the key from", settings.key_field)),
        },
    };
    let time = match look(object, &settings.time_field) {
        Some(v) => TimeSeed { settings }
            .deserialize(v)
            .map_err(|e| e.to_string())?,
        None if settings.time_field.is_empty() => meta.arrival_ms,
        None => {
            return Err(format!(
                "no `{}` to take the event time from (time_field = \"\" takes the arrival time)",
                settings.time_field
            ));
        }
    };
    let mut fields = Vec::new();
    let mut field = |name: &str, v: &serde_json::Value, names: &mut Names| match (FieldSeed {
        names,
        name,
        object: false,
    })
    .deserialize(v)
    {
        Ok(Parsed::Value(value)) => {
            fields.push((names.field(name), value));
            Ok(())
        }
        Ok(Parsed::Null | Parsed::Object(_)) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    if settings.json_fields.is_empty() {
        for (name, v) in members {
            if *name != settings.key_field && *name != settings.time_field && !v.is_object() {
                field(name, v, names)?;
            }
        }
    } else {
        for (name, pointer) in &settings.json_fields {
            if let Some(v) = look(object, pointer) {
                field(name, v, names)?;
            }
        }
    }
    Ok(Record { key, time, fields })
}

/// serde_json's message, without the position inside a one-line document.
fn clean(e: serde_json::Error) -> String {
    let message = e.to_string();
    match (e.line(), message.rfind(" at line ")) {
        (1, Some(at)) => format!("{} (column {})", &message[..at], e.column()),
        _ => message,
    }
}

struct Document<'a, 'm> {
    settings: &'a Decoding,
    names: &'a mut Names,
    meta: &'a Meta<'m>,
    out: &'a mut Vec<Record>,
}

impl<'de> DeserializeSeed<'de> for Document<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Document<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object, or an array of objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let record = RecordVisitor {
            settings: self.settings,
            names: self.names,
            meta: self.meta,
        }
        .visit_map(map)?;
        self.out.push(record);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element_seed(RecordVisitor {
            settings: self.settings,
            names: self.names,
            meta: self.meta,
        })? {
            self.out.push(record);
        }
        Ok(())
    }
}

/// One object → one record.
struct RecordVisitor<'a, 'm> {
    settings: &'a Decoding,
    names: &'a mut Names,
    meta: &'a Meta<'m>,
}

impl<'de> DeserializeSeed<'de> for RecordVisitor<'_, '_> {
    type Value = Record;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Record, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordVisitor<'_, '_> {
    type Value = Record;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let settings = self.settings;
        let mut key: Option<Arc<str>> = None;
        let mut time: Option<i64> = None;
        let mut fields = Vec::new();
        let mut eddy_format = false;
        while let Some(name) = map.next_key::<Name<'de>>()? {
            let name = name.as_str();
            if name == settings.key_field {
                key = Some(map.next_value_seed(KeySeed {
                    names: self.names,
                    field: &settings.key_field,
                })?);
            } else if name == settings.time_field {
                time = Some(map.next_value_seed(TimeSeed { settings })?);
            } else if name == "fields" && !eddy_format {
                match map.next_value_seed(FieldSeed {
                    names: self.names,
                    name: "fields",
                    object: true,
                })? {
                    Parsed::Object(inner) => {
                        // eddy's own record format: only `fields` are fields.
                        eddy_format = true;
                        fields = inner;
                    }
                    Parsed::Value(v) => fields.push((self.names.field("fields"), v)),
                    Parsed::Null => {}
                }
            } else if eddy_format {
                map.next_value::<de::IgnoredAny>()?;
            } else {
                match map.next_value_seed(FieldSeed {
                    names: self.names,
                    name,
                    object: false,
                })? {
                    Parsed::Value(v) => fields.push((self.names.field(name), v)),
                    Parsed::Null | Parsed::Object(_) => {}
                }
            }
        }
        let key = match key {
            Some(key) => key,
            None => match self.meta.key {
                Some(k) => self.names.key(k),
                None if settings.key_field.is_empty() => self.names.key(""),
                None => {
                    return Err(de::Error::custom(format_args!(
                        "no `{}` member to take the key from",
                        settings.key_field
                    )));
                }
            },
        };
        let time = match time {
            Some(t) => t,
            None if settings.time_field.is_empty() => self.meta.arrival_ms,
            None => {
                return Err(de::Error::custom(format_args!(
                    "no `{}` member to take the event time from (time_field = \"\" takes the arrival time)",
                    settings.time_field
                )));
            }
        };
        Ok(Record { key, time, fields })
    }
}

/// A member name, borrowed from the input when it has no escapes.
enum Name<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Name<'_> {
    fn as_str(&self) -> &str {
        match self {
            Name::Borrowed(s) => s,
            Name::Owned(s) => s,
        }
    }
}

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Name<'de>, E> {
                Ok(Name::Owned(v))
            }
        }
        d.deserialize_str(V)
    }
}

/// The key member: a string, or a number written as text.
struct KeySeed<'a> {
    names: &'a mut Names,
    field: &'a str,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Arc<str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Arc<str>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Arc<str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string or number `{}` (the record key)", self.field)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Arc<str>, E> {
        Ok(self.names.key(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Arc<str>, E> {
        Ok(self.names.key(&v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Arc<str>, E> {
        Ok(self.names.key(&v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Arc<str>, E> {
        Ok(self.names.key(&v.to_string()))
    }
}

/// The time member, as `time_format` says.
struct TimeSeed<'a> {
    settings: &'a Decoding,
}

impl<'de> DeserializeSeed<'de> for TimeSeed<'_> {
    type Value = i64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TimeSeed<'_> {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a time `{}` ({:?})",
            self.settings.time_field, self.settings.time_format
        )
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        time::from_i64(v, self.settings.time_format).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => Err(E::custom(format_args!("time {v} is out of range"))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        time::from_f64(v, self.settings.time_format).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        time::from_str(v, self.settings.time_format)
            .map_err(|e| E::custom(format_args!("`{}`: {e}", self.settings.time_field)))
    }
}

/// What a member's value turned out to be.
enum Parsed {
    Value(Value),
    /// `null`: no field.
    Null,
    /// An object of fields (only where one is allowed: eddy's `fields`).
    Object(Vec<(Arc<str>, Value)>),
}

/// A field's value: a number, boolean, string, `{"hex": "…"}` bytes or
/// `null`; with `object`, also an object of such fields.
struct FieldSeed<'a, 'n> {
    names: &'a mut Names,
    name: &'n str,
    object: bool,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_, '_> {
    type Value = Parsed;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_, '_> {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "field `{}` to be a number, boolean, string or {{\"hex\": \"…\"}}",
            self.name
        )
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Parsed, E> {
        Ok(Parsed::Value(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Parsed, E> {
        Ok(Parsed::Value(Value::I64(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Parsed, E> {
        Ok(Parsed::Value(match i64::try_from(v) {
            Ok(i) => Value::I64(i),
            Err(_) => Value::F64(v as f64),
        }))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Parsed, E> {
        Ok(Parsed::Value(Value::F64(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Parsed, E> {
        Ok(Parsed::Value(Value::Str(v.into())))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Parsed, E> {
        Ok(Parsed::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut fields = Vec::new();
        let mut first = true;
        while let Some(name) = map.next_key::<Name<'de>>()? {
            let name = name.as_str();
            if first && name == "hex" {
                let hex = map.next_value::<Name<'de>>()?;
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(format_args!(
                        "field `{}`: bytes are written {{\"hex\": \"…\"}} with nothing else",
                        self.name
                    )));
                }
                let bytes = unhex(hex.as_str()).ok_or_else(|| {
                    de::Error::custom(format_args!(
                        "field `{}`: {:?} is not hex bytes",
                        self.name,
                        hex.as_str()
                    ))
                })?;
                return Ok(Parsed::Value(Value::Bytes(bytes.into())));
            }
            first = false;
            if !self.object {
                return Err(not_a_value(
                    self.name,
                    "an object (json_fields picks values inside one by JSON Pointer)",
                ));
            }
            match map.next_value_seed(FieldSeed {
                names: self.names,
                name,
                object: false,
            })? {
                Parsed::Value(v) => fields.push((self.names.field(name), v)),
                Parsed::Null | Parsed::Object(_) => {}
            }
        }
        Ok(Parsed::Object(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<Parsed, A::Error> {
        Err(not_a_value(self.name, "an array"))
    }
}

/// A member that cannot be a field.
fn not_a_value<E: de::Error>(name: &str, found: &str) -> E {
    E::custom(format_args!(
        "field `{name}`: expected a number, boolean, string or {{\"hex\": \"…\"}}, found {found}"
    ))
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

/// A record serialized as eddy writes it: `{"id", "output", "key", "time",
/// "fields"}`, with bytes as `{"hex": "…"}`. `id` and `output` only when given.
pub struct JsonRecord<'a> {
    /// The record.
    pub record: &'a Record,
    /// The node output it came from, e.g. `stats` or `alerts.cleared`.
    pub output: Option<&'a str>,
    /// Its result id.
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
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Writes a record as one JSON message (a broker's payload: no newline)
/// into `out`, cleared first, with its node output and result id.
pub fn write_json_message(
    out: &mut Vec<u8>,
    output: Option<&str>,
    id: Option<&str>,
    record: &Record,
) -> std::io::Result<()> {
    out.clear();
    serde_json::to_writer(&mut *out, &JsonRecord { record, output, id })?;
    Ok(())
}

/// Writes a record as one JSON line, with its node output and result id.
pub fn write_json_line(
    out: &mut impl std::io::Write,
    output: Option<&str>,
    id: Option<&str>,
    record: &Record,
) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &JsonRecord { record, output, id })?;
    out.write_all(b"\n")
}
