//! Fuzzing the ABI's fast decoders: the host reads what a plugin emits with
//! them and every guest reads its batches with them, so they must take any
//! bytes without panicking and agree with postcard, the reference codec, on
//! what the bytes mean.
//!
//! The default test run tries a few hundred inputs per property;
//! `cargo xtask fuzz` runs the same properties (every test named `fuzz_…`)
//! for as long as it is given.

use eddy_abi::decode::{Reader, process_input, window_input};
use eddy_abi::{ProcessInput, Record, RecordRef, Value, Window, WindowInput, encode_into};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<f64>().prop_map(Value::F64),
        any::<i64>().prop_map(Value::I64),
        any::<bool>().prop_map(Value::Bool),
        ".{0,8}".prop_map(|s| Value::Str(s.as_str().into())),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(|b| Value::Bytes(b.into())),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    (
        ".{0,8}",
        any::<i64>(),
        proptest::collection::vec((".{0,6}", value()), 0..5),
    )
        .prop_map(|(key, time, fields)| {
            fields
                .into_iter()
                .fold(Record::new(key.as_str(), time), |r, (n, v)| {
                    r.with(n.as_str(), v)
                })
        })
}

/// Bytes near valid encodings: an encoded batch with a few bytes changed,
/// cut short, extended or re-encoded longer, or any bytes at all.
fn near_encoding(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let edits = proptest::collection::vec((any::<usize>(), any::<u8>(), 0..5u8), 0..4);
    let mutated = (Just(valid), edits).prop_map(|(mut bytes, edits)| {
        for (at, byte, how) in edits {
            let at = if bytes.is_empty() {
                0
            } else {
                at % bytes.len()
            };
            match how {
                0 if !bytes.is_empty() => bytes[at] = byte,
                1 => bytes.truncate(at),
                2 => bytes.insert(at.min(bytes.len()), byte),
                // The same number in a longer varint: a byte below 128
                // gets its continuation bit, then continuation bytes of
                // zeros and a last zero.
                3 if bytes.get(at).is_some_and(|b| *b < 0x80) => {
                    bytes[at] |= 0x80;
                    let extra = usize::from(byte % 6);
                    for i in 0..=extra {
                        bytes.insert(at + 1 + i, if i == extra { 0 } else { 0x80 });
                    }
                }
                _ => bytes.push(byte),
            }
        }
        bytes
    });
    prop_oneof![3 => mutated, 1 => proptest::collection::vec(any::<u8>(), 0..64)]
}

/// What postcard makes of the bytes, all of them taken.
fn reference<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

/// NaN is not equal to itself; compare floats by their bits.
fn same_records(a: &[RecordRef<'_>], b: &[RecordRef<'_>]) -> bool {
    let bits = |r: &RecordRef<'_>| {
        let mut bytes = Vec::new();
        eddy_abi::encode::record(&r.to_owned_record(), &mut bytes);
        bytes
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| bits(x) == bits(y))
}

fn process_bytes() -> impl Strategy<Value = Vec<u8>> {
    (any::<i64>(), proptest::collection::vec(record(), 0..4))
        .prop_map(|(watermark, records)| {
            let mut bytes = Vec::new();
            encode_into(&ProcessInput { watermark, records }, &mut bytes).unwrap();
            bytes
        })
        .prop_flat_map(near_encoding)
}

fn window_bytes() -> impl Strategy<Value = Vec<u8>> {
    let window = (
        ".{0,6}",
        any::<i64>(),
        any::<i64>(),
        any::<u32>(),
        proptest::collection::vec(record(), 0..3),
    )
        .prop_map(|(key, start, end, firing, records)| Window {
            key,
            start,
            end,
            firing,
            records,
        });
    (any::<i64>(), proptest::collection::vec(window, 0..3))
        .prop_map(|(watermark, windows)| {
            let mut bytes = Vec::new();
            encode_into(&WindowInput { watermark, windows }, &mut bytes).unwrap();
            bytes
        })
        .prop_flat_map(near_encoding)
}

proptest! {
    // A failure is kept beside this file (`fuzz.regressions`) and tried first
    // from then on.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// A record the SDK encodes is the record the host decodes.
    #[test]
    fn fuzz_records_round_trip(records in proptest::collection::vec(record(), 0..6)) {
        let mut bytes = Vec::new();
        for r in &records {
            eddy_abi::encode::record(r, &mut bytes);
        }
        let mut reader = Reader::new(&bytes);
        let mut decoded = Vec::new();
        while !reader.is_empty() {
            decoded.push(reader.record().unwrap());
        }
        let expected: Vec<RecordRef<'_>> = records.iter().map(Record::as_ref).collect();
        prop_assert!(same_records(&decoded, &expected));
    }

    /// The length the host plans a window's room by is the length postcard
    /// writes.
    #[test]
    fn fuzz_record_len_is_the_encoded_length(r in record()) {
        prop_assert_eq!(eddy_abi::encode::record_len(&r), postcard::to_allocvec(&r).unwrap().len());
    }

    /// Any `process` input: the fast decoder accepts exactly what postcard
    /// accepts, and reads the same batch from it.
    #[test]
    fn fuzz_process_input_agrees_with_postcard(bytes in process_bytes()) {
        let fast = process_input(&bytes);
        let slow = reference::<ProcessInput<Vec<RecordRef<'_>>>>(&bytes);
        match (fast, slow) {
            (Ok(fast), Some(slow)) => {
                prop_assert_eq!(fast.watermark, slow.watermark);
                prop_assert!(same_records(&fast.records, &slow.records));
            }
            (Err(_), None) => {}
            (fast, slow) => prop_assert!(false, "fast: {:?}, postcard: {:?}", fast, slow),
        }
    }

    /// Any `window` input, likewise.
    #[test]
    fn fuzz_window_input_agrees_with_postcard(bytes in window_bytes()) {
        let fast = window_input(&bytes);
        let slow = reference::<WindowInput<Vec<Window<&str, Vec<RecordRef<'_>>>>>>(&bytes);
        match (fast, slow) {
            (Ok(fast), Some(slow)) => {
                prop_assert_eq!(fast.watermark, slow.watermark);
                prop_assert_eq!(fast.windows.len(), slow.windows.len());
                for (a, b) in fast.windows.iter().zip(&slow.windows) {
                    prop_assert_eq!((a.key, a.start, a.end, a.firing), (b.key, b.start, b.end, b.firing));
                    prop_assert!(same_records(&a.records, &b.records));
                }
            }
            (Err(_), None) => {}
            (fast, slow) => prop_assert!(false, "fast: {:?}, postcard: {:?}", fast, slow),
        }
    }

    /// What a plugin hands to `emit`, decoded record by record as the host
    /// does: any bytes end in records or an error, never a panic, and what
    /// decodes is what postcard reads.
    #[test]
    fn fuzz_emitted_bytes_decode_as_postcard_reads_them(bytes in process_bytes()) {
        let mut reader = Reader::new(&bytes);
        let mut rest: &[u8] = &bytes;
        while !reader.is_empty() {
            let fast = reader.record();
            let slow = postcard::take_from_bytes::<RecordRef<'_>>(rest);
            match (fast, slow) {
                (Ok(fast), Ok((slow, tail))) => {
                    prop_assert!(same_records(&[fast], &[slow]));
                    rest = tail;
                }
                (Err(_), Err(_)) => break,
                (fast, slow) => prop_assert!(false, "fast: {:?}, postcard: {:?}", fast, slow),
            }
        }
    }
}
