//! Records: one event, with a key, an event time and named typed fields.

use alloc::sync::Arc;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// The named fields of an owned [`Record`], in the order they were added.
pub type Fields = Vec<(Arc<str>, Value)>;

/// The named fields of a borrowed [`RecordRef`]; up to four are held inline.
pub type FieldsRef<'a> = SmallVec<[(&'a str, ValueRef<'a>); 4]>;

/// One field value.
///
/// Wire encoding: a varint variant index (`F64` = 0, `I64` = 1, `Bool` = 2,
/// `Str` = 3, `Bytes` = 4), then the value: `f64` as 8 little-endian bytes,
/// `i64` as a zig-zag varint, `bool` as one byte, strings and bytes as a
/// varint length and the bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A float.
    F64(f64),
    /// A signed integer.
    I64(i64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    Str(Arc<str>),
    /// Raw bytes.
    Bytes(#[serde(with = "bytes")] Arc<[u8]>),
}

/// A field value borrowed from an encoded batch; same encoding as [`Value`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ValueRef<'a> {
    /// A float.
    F64(f64),
    /// A signed integer.
    I64(i64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    Str(&'a str),
    /// Raw bytes.
    Bytes(#[serde(with = "bytes")] &'a [u8]),
}

/// One event, owned: what the host moves through a pipeline and what a plugin builds to emit.
///
/// Wire encoding: `key` (string), `time` (`i64`, ms since the Unix epoch), then
/// `fields` as a varint count followed by that many `(name: string, value: Value)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The device or point this event is about; windows and state are per key.
    pub key: Arc<str>,
    /// Event time, ms since the Unix epoch.
    pub time: i64,
    /// Named values.
    pub fields: Fields,
}

/// One event, borrowed from an encoded batch without copying; same encoding as [`Record`].
/// The default is an empty record to decode into.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordRef<'a> {
    /// The device or point this event is about.
    pub key: &'a str,
    /// Event time, ms since the Unix epoch.
    pub time: i64,
    /// Named values.
    #[serde(borrow)]
    pub fields: FieldsRef<'a>,
}

/// Byte fields go through serde's bytes methods: one copy, not one call per
/// byte. The encoding is the same as a sequence of `u8`: a length, then the bytes.
mod bytes {
    use alloc::sync::Arc;
    use core::fmt;

    use serde::Serializer;
    use serde::de::{Deserializer, Error, Visitor};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Implemented for the owned and the borrowed form.
    pub(super) trait FromBytes<'de>: Sized {
        fn from_borrowed<E: Error>(v: &'de [u8]) -> Result<Self, E>;
        fn from_slice<E: Error>(v: &[u8]) -> Result<Self, E>;
    }

    impl<'de> FromBytes<'de> for Arc<[u8]> {
        fn from_borrowed<E: Error>(v: &'de [u8]) -> Result<Self, E> {
            Ok(Arc::from(v))
        }
        fn from_slice<E: Error>(v: &[u8]) -> Result<Self, E> {
            Ok(Arc::from(v))
        }
    }

    impl<'de> FromBytes<'de> for &'de [u8] {
        fn from_borrowed<E: Error>(v: &'de [u8]) -> Result<Self, E> {
            Ok(v)
        }
        fn from_slice<E: Error>(_: &[u8]) -> Result<Self, E> {
            Err(E::custom("borrowed bytes need a borrowing decoder"))
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>, T: FromBytes<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        struct V<T>(core::marker::PhantomData<T>);
        impl<'de, T: FromBytes<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_borrowed_bytes<E: Error>(self, v: &'de [u8]) -> Result<T, E> {
                T::from_borrowed(v)
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<T, E> {
                T::from_slice(v)
            }
        }
        d.deserialize_bytes(V(core::marker::PhantomData))
    }
}

impl Value {
    /// The value as a float, converting integers; `None` for other kinds.
    pub fn as_f64(&self) -> Option<f64> {
        self.as_ref().as_f64()
    }

    /// The value borrowed.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::F64(v) => ValueRef::F64(*v),
            Value::I64(v) => ValueRef::I64(*v),
            Value::Bool(v) => ValueRef::Bool(*v),
            Value::Str(v) => ValueRef::Str(v),
            Value::Bytes(v) => ValueRef::Bytes(v),
        }
    }
}

impl<'a> ValueRef<'a> {
    /// The value as a float, converting integers; `None` for other kinds.
    pub fn as_f64(self) -> Option<f64> {
        match self {
            ValueRef::F64(v) => Some(v),
            ValueRef::I64(v) => Some(v as f64),
            _ => None,
        }
    }

    /// The value as an integer; `None` for other kinds.
    pub fn as_i64(self) -> Option<i64> {
        match self {
            ValueRef::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a boolean; `None` for other kinds.
    pub fn as_bool(self) -> Option<bool> {
        match self {
            ValueRef::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a string; `None` for other kinds.
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            ValueRef::Str(v) => Some(v),
            _ => None,
        }
    }

    /// An owned copy.
    pub fn to_owned_value(self) -> Value {
        match self {
            ValueRef::F64(v) => Value::F64(v),
            ValueRef::I64(v) => Value::I64(v),
            ValueRef::Bool(v) => Value::Bool(v),
            ValueRef::Str(v) => Value::Str(v.into()),
            ValueRef::Bytes(v) => Value::Bytes(v.into()),
        }
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.into())
    }
}

impl Record {
    /// A record with no fields yet.
    pub fn new(key: impl Into<Arc<str>>, time: i64) -> Self {
        Record {
            key: key.into(),
            time,
            fields: Vec::new(),
        }
    }

    /// Adds a field and returns the record, for building in one expression.
    pub fn with(mut self, name: impl Into<Arc<str>>, value: impl Into<Value>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// The first field with this name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(n, _)| same_text(n, name))
            .map(|(_, v)| v)
    }

    /// The record borrowed, as a plugin would read it.
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            key: &self.key,
            time: self.time,
            fields: self
                .fields
                .iter()
                .map(|(n, v)| (&**n, v.as_ref()))
                .collect(),
        }
    }
}

impl<'a> RecordRef<'a> {
    /// The first field with this name.
    pub fn get(&self, name: &str) -> Option<ValueRef<'a>> {
        self.fields
            .iter()
            .find(|(n, _)| same_text(n, name))
            .map(|(_, v)| *v)
    }

    /// The named field as a float (integers convert); `None` when absent or not numeric.
    pub fn f64(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(|v| v.as_f64())
    }

    /// An owned copy.
    pub fn to_owned_record(&self) -> Record {
        Record {
            key: self.key.into(),
            time: self.time,
            fields: self
                .fields
                .iter()
                .map(|(n, v)| (Arc::from(*n), v.to_owned_value()))
                .collect(),
        }
    }
}

/// Whether `a` and `b` are equal, as field names and keys are compared:
/// they are a few bytes long, for which two word comparisons cost less than
/// a call to `memcmp` (in a plugin, a byte loop). Empty strings are equal
/// without a call: `memcmp` of no bytes at an empty `String`'s placeholder
/// address costs microseconds on CPUs whose masked vector loads then take
/// a fault-suppression assist.
#[inline]
pub fn same_text(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// Whether `a` and `b` are equal, compared as [`same_text`] compares.
#[inline]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // The first and the last word (overlapping when shorter than two).
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap_or([0; 4]));
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        // The first, middle and last byte are every byte.
        0..4 => n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1]),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::String;

    fn sample() -> Record {
        Record::new("ups-1/string-1/cell-01", 1_767_225_600_123)
            .with("voltage", 13.1)
            .with("alarms", 3i64)
            .with("ok", true)
            .with("model", "VRLA")
            .with("raw", Value::Bytes(Arc::from(&b"\x01\x02"[..])))
    }

    #[test]
    fn owned_and_borrowed_encode_to_the_same_bytes() {
        let owned = sample();
        let a = postcard::to_allocvec(&owned).unwrap();
        let b = postcard::to_allocvec(&owned.as_ref()).unwrap();
        assert_eq!(a, b);
        let back: RecordRef<'_> = postcard::from_bytes(&a).unwrap();
        assert_eq!(back.to_owned_record(), owned);
        let back_owned: Record = postcard::from_bytes(&a).unwrap();
        assert_eq!(back_owned, owned);
    }

    #[test]
    fn the_encoding_is_the_documented_one() {
        let r = Record::new("k", -1).with("x", 2i64);
        let bytes = postcard::to_allocvec(&r).unwrap();
        // key: len 1, 'k'; time: zig-zag(-1) = 1; one field: len 1, 'x', variant 1 (I64), zig-zag(2) = 4.
        assert_eq!(bytes, [1, b'k', 1, 1, 1, b'x', 1, 4]);
    }

    #[test]
    fn bytes_encode_as_a_length_then_the_bytes() {
        let r = Record::new("k", 0).with("b", Value::Bytes(Arc::from(&[7u8, 8, 9][..])));
        let bytes = postcard::to_allocvec(&r).unwrap();
        // key, time 0, one field "b", variant 4 (Bytes), length 3, the bytes.
        assert_eq!(bytes, [1, b'k', 0, 1, 1, b'b', 4, 3, 7, 8, 9]);
        let seq = postcard::to_allocvec(&(4u8, alloc::vec![7u8, 8, 9])).unwrap();
        assert_eq!(&bytes[6..], &seq[..]);
    }

    #[test]
    fn accessors_convert_numbers() {
        let owned = sample();
        let r = owned.as_ref();
        assert_eq!(r.f64("voltage"), Some(13.1));
        assert_eq!(r.f64("alarms"), Some(3.0));
        assert_eq!(r.get("ok").and_then(|v| v.as_bool()), Some(true));
        assert_eq!(r.get("model").and_then(|v| v.as_str()), Some("VRLA"));
        assert_eq!(r.f64("missing"), None);
    }

    #[test]
    fn strings_of_every_length_compare_by_every_byte() {
        for n in 0..40 {
            let a: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same_text(&a, &a.clone()), "{n}");
            assert!(!same_text(&a, &format!("{a}x")), "{n}");
            // A change at each position is seen.
            for at in 0..n {
                let mut b = a.clone().into_bytes();
                b[at] = b'Z';
                assert!(
                    !same_text(&a, core::str::from_utf8(&b).unwrap()),
                    "{n} at {at}"
                );
            }
        }
    }
}
