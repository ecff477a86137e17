//! Fuzzing the codec with generated input: whatever bytes a device, a file
//! or a broker hands it, decoding never panics, does not depend on how the
//! bytes were split into pieces, and eddy's own output reads back as the
//! records that were written.
//!
//! The default test run tries a few hundred inputs per property;
//! `cargo xtask fuzz` runs the same properties (every test named `fuzz_…`)
//! for as long as it is given, with more cases per pass.

use std::sync::Arc;

use eddy_abi::{Record, Value};
use eddy_codec::{
    DecodeError, Decoder, Decoding, Format, Meta, Position, Step, StreamDecoder, TimeFormat,
    write_json_line,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const META: Meta<'static> = Meta {
    key: Some("topic/a"),
    arrival_ms: 1_767_225_600_000,
};

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::F64),
        any::<i64>().prop_map(Value::I64),
        any::<bool>().prop_map(Value::Bool),
        ".{0,12}".prop_map(|s| Value::Str(Arc::from(s.as_str()))),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(|b| Value::Bytes(Arc::from(b))),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    (
        ".{0,16}",
        any::<i64>(),
        proptest::collection::btree_map(".{1,10}", value(), 0..6),
    )
        .prop_map(|(key, time, fields)| {
            fields
                .into_iter()
                .fold(Record::new(key.as_str(), time), |r, (name, v)| {
                    r.with(name.as_str(), v)
                })
        })
}

/// One line of input that is often almost right: a record as eddy writes
/// it, a flat JSON object, a CSV row, or noise, each maybe cut or bent.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let written = record().prop_map(|r| {
        let mut line = Vec::new();
        write_json_line(&mut line, Some("out"), None, &r).unwrap();
        line.pop();
        line
    });
    let flat = (".{0,8}", any::<i64>(), any::<f64>(), ".{0,8}").prop_map(|(k, t, v, s)| {
        format!(r#"{{"key":{k:?},"time":{t},"v":{v},"s":{s:?},"n":null,"a":[1,{{}}]}}"#)
            .into_bytes()
    });
    let cell = prop_oneof![
        "[a-z0-9.\",\r\n -]{0,6}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        Just("2026-01-01T00:00:00.250+01:00".to_owned()),
    ];
    let row = proptest::collection::vec(cell, 0..6).prop_map(|cells| cells.join(",").into_bytes());
    let good_row = (
        "[a-z0-9/-]{1,6}",
        any::<i32>(),
        any::<f64>(),
        "[a-z \"]{0,4}",
    )
        .prop_map(|(k, t, v, s)| format!("{k},{t},{v},\"{s}\"").into_bytes());
    let noise = proptest::collection::vec(any::<u8>(), 0..40);
    (
        prop_oneof![written, flat, row, good_row, noise],
        any::<u16>(),
        any::<u8>(),
    )
        .prop_map(|(mut line, at, byte)| {
            // Now and then one byte is changed, or the line cut short.
            if !line.is_empty() {
                let at = usize::from(at) % line.len();
                match byte % 4 {
                    0 => line[at] = byte,
                    1 => line.truncate(at),
                    _ => {}
                }
            }
            line
        })
}

/// Several lines, with `\n`, `\r\n` or no break at the end; often after a
/// CSV header that names the columns the settings look for.
fn input() -> impl Strategy<Value = Vec<u8>> {
    let header = prop_oneof![
        Just(&b""[..]),
        Just(&b"key,time,v,s\n"[..]),
        Just(&b"s,v,\"time\",key\r\n"[..]),
    ];
    prop_oneof![
        3 => (header, proptest::collection::vec(line(), 0..12), 0..3u8).prop_map(|(header, lines, end)| {
            let mut input = header.to_vec();
            input.extend(lines.join(&b"\n"[..]));
            match end {
                0 => input.extend_from_slice(b"\n"),
                1 => input.extend_from_slice(b"\r\n"),
                _ => {}
            }
            input
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..600),
    ]
}

fn settings() -> impl Strategy<Value = Decoding> {
    let format = prop_oneof![Just(Format::Json), Just(Format::Csv), Just(Format::Raw)];
    let time_format = prop_oneof![
        Just(TimeFormat::UnixMs),
        Just(TimeFormat::UnixS),
        Just(TimeFormat::UnixUs),
        Just(TimeFormat::UnixNs),
        Just(TimeFormat::Rfc3339),
    ];
    let fields = prop_oneof![
        Just(("key", "time")),
        Just(("key", "")),
        Just(("", "time")),
        Just(("s", "v")),
    ];
    (format, time_format, fields).prop_map(|(format, time_format, (key, time))| {
        let mut settings = Decoding::new(format, key, time);
        settings.time_format = time_format;
        settings
    })
}

/// What a stream decoder made of `input` fed in pieces of the given sizes
/// (in turn, over and over): the records, what was rejected, where it ended.
fn stream(
    settings: &Decoding,
    input: &[u8],
    pieces: &[usize],
) -> (Vec<Record>, Vec<DecodeError>, Position) {
    let mut decoder = StreamDecoder::new(settings.clone()).unwrap();
    let (mut records, mut rejected) = (Vec::new(), Vec::new());
    let (mut fed, mut next_piece) = (0, 0);
    let mut chunk: &[u8] = &[];
    // Every step takes a byte or finishes an item; this bounds a decoder
    // that would neither.
    for _ in 0..=4 * input.len() + 64 {
        if chunk.is_empty() && fed < input.len() {
            let end = (fed + pieces[next_piece % pieces.len()]).min(input.len());
            next_piece += 1;
            chunk = &input[fed..end];
            fed = end;
        }
        let eof = fed == input.len();
        let (step, taken) = decoder.next(chunk, eof, &META, &mut records);
        chunk = &chunk[taken..];
        match step {
            Step::Rejected(e) => rejected.push(e),
            Step::Fatal(e) => {
                rejected.push(e);
                return (records, rejected, decoder.position());
            }
            Step::End => return (records, rejected, decoder.position()),
            Step::Records(_) | Step::NeedInput => {}
        }
    }
    panic!("the decoder neither ended nor took the input");
}

proptest! {
    // A failure is kept beside this file (`fuzz.regressions`) and tried first
    // from then on.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// What a plugin or a source wrote reads back as the same record.
    #[test]
    fn fuzz_eddys_json_lines_read_back_as_the_records_written(records in proptest::collection::vec(record(), 1..8)) {
        let mut lines = Vec::new();
        for r in &records {
            write_json_line(&mut lines, Some("stats"), Some("id-1"), r).unwrap();
        }
        let mut decoder = StreamDecoder::new(Decoding::new(Format::Json, "key", "time")).unwrap();
        let mut read = Vec::new();
        let rejected = decoder.decode_all(&lines, &META, &mut read);
        prop_assert!(rejected.is_empty(), "{:?}", rejected);
        prop_assert_eq!(read, records);
    }

    /// How the bytes arrive (one at a time, or all at once) does not change
    /// what is read, what is rejected and why, nor where the decoder stops.
    #[test]
    fn fuzz_a_stream_read_in_any_pieces_gives_what_it_gives_whole(
        settings in settings(),
        input in input(),
        pieces in proptest::collection::vec(1usize..48, 1..8),
    ) {
        let whole = stream(&settings, &input, &[input.len().max(1)]);
        let pieces = stream(&settings, &input, &pieces);
        // Compared as printed, so that a NaN read from `nan` equals itself.
        prop_assert_eq!(format!("{:?}", pieces.0), format!("{:?}", whole.0));
        prop_assert_eq!(&pieces.1, &whole.1);
        prop_assert_eq!(pieces.2, whole.2);
        prop_assert!(whole.2.offset <= input.len() as u64);
        for error in &whole.1 {
            prop_assert!(!error.reason.is_empty());
        }
    }

    /// A message decoder takes any payload: records or reasons, no panic. A
    /// raw payload is one record holding exactly its bytes.
    #[test]
    fn fuzz_any_message_is_records_or_reasons(settings in settings(), payload in input()) {
        let mut decoder = Decoder::new(settings.clone()).unwrap();
        let mut out = Vec::new();
        let result = decoder.decode(&payload, &META, &mut out);
        if let Err(errors) = &result {
            prop_assert!(!errors.is_empty());
            prop_assert!(errors.iter().all(|e| !e.reason.is_empty()));
        }
        if settings.format == Format::Raw {
            prop_assert!(result.is_ok());
            prop_assert_eq!(out.len(), 1);
            prop_assert_eq!(
                out[0].get("payload"),
                Some(&Value::Bytes(Arc::from(payload.as_slice())))
            );
        }
    }
}
