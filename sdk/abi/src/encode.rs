//! Fast encoders for the hot path: the same bytes as postcard, written
//! directly into a `Vec` instead of through serde's serializer, which costs
//! a call per byte. The host builds every plugin input with these; the tests
//! check them against postcard byte for byte.

use alloc::vec::Vec;

use crate::{Record, Value};

/// Appends an unsigned varint (LEB128, 7 bits per byte).
#[inline]
pub fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a signed integer as a zig-zag varint.
#[inline]
pub fn i64(v: i64, out: &mut Vec<u8>) {
    varint(((v << 1) ^ (v >> 63)) as u64, out);
}

/// Appends a string or byte string: its length, then its bytes.
#[inline]
pub fn bytes(v: &[u8], out: &mut Vec<u8>) {
    varint(v.len() as u64, out);
    out.extend_from_slice(v);
}

/// Appends one record.
pub fn record(r: &Record, out: &mut Vec<u8>) {
    out.reserve(record_len(r));
    record_in_room(r, out);
}

/// Appends one record to a buffer that has already made room for it
/// ([`record_len`] bytes), without counting them again.
pub fn record_in_room(r: &Record, out: &mut Vec<u8>) {
    bytes(r.key.as_bytes(), out);
    i64(r.time, out);
    varint(r.fields.len() as u64, out);
    for (name, v) in &r.fields {
        bytes(name.as_bytes(), out);
        value(v, out);
    }
}

/// Bytes of an unsigned varint.
#[inline]
pub fn varint_len(v: u64) -> usize {
    // One byte for each 7 bits in use, and one for zero.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes [`i64`] appends for `v`.
#[inline]
pub fn i64_len(v: i64) -> usize {
    varint_len(((v << 1) ^ (v >> 63)) as u64)
}

/// Bytes [`bytes`] appends for `len` bytes.
#[inline]
pub fn bytes_len(len: usize) -> usize {
    varint_len(len as u64) + len
}

/// Bytes [`record`] appends for `r`.
pub fn record_len(r: &Record) -> usize {
    let fields: usize = r
        .fields
        .iter()
        .map(|(name, v)| {
            bytes_len(name.len())
                + 1
                + match v {
                    Value::F64(_) => 8,
                    Value::I64(v) => i64_len(*v),
                    Value::Bool(_) => 1,
                    Value::Str(v) => bytes_len(v.len()),
                    Value::Bytes(v) => bytes_len(v.len()),
                }
        })
        .sum();
    bytes_len(r.key.len()) + i64_len(r.time) + varint_len(r.fields.len() as u64) + fields
}

/// Appends one field value: its tag, then its payload.
pub fn value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::F64(v) => {
            out.push(0);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::I64(v) => {
            out.push(1);
            i64(*v, out);
        }
        Value::Bool(v) => {
            out.push(2);
            out.push(u8::from(*v));
        }
        Value::Str(v) => {
            out.push(3);
            bytes(v.as_bytes(), out);
        }
        Value::Bytes(v) => {
            out.push(4);
            bytes(v, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;

    #[test]
    fn records_encode_exactly_as_postcard_does() {
        let records = [
            Record::new("ups-1/string-1/cell-01", 1_767_225_600_123)
                .with("voltage", 13.51)
                .with("n", -300i64)
                .with("ok", false)
                .with("model", "VRLA")
                .with("raw", Value::Bytes(Arc::from(&[1u8; 200][..]))),
            Record::new("", i64::MIN).with("big", i64::MAX),
            Record::new("k".repeat(300).as_str(), -1),
        ];
        for r in &records {
            let mut ours = Vec::new();
            record(r, &mut ours);
            assert_eq!(ours, postcard::to_allocvec(r).unwrap());
            assert_eq!(record_len(r), ours.len());
        }
        for v in [0u64, 1, 127, 128, 16_383, 16_384, 1 << 63, u64::MAX] {
            let mut ours = Vec::new();
            varint(v, &mut ours);
            assert_eq!(ours, postcard::to_allocvec(&v).unwrap());
            assert_eq!(varint_len(v), ours.len(), "{v}");
        }
    }
}
