//! Fuzzing the file source with generated files: whatever a file holds, the
//! source reads what the record codec reads from the same bytes, in batches
//! of any size, and a source stopped anywhere and opened again at its last
//! position (as after a crash and a restore) reads the rest: together,
//! every record and every rejected line exactly once.
//!
//! The default test run tries a few hundred files; `cargo xtask fuzz` runs
//! the property (and every other test named `fuzz_…`) for as long as it is
//! given.

use eddy_codec::{Decoding, Format, Meta, StreamDecoder};
use eddy_driver::{Driver, Poll, Record};
use eddy_driver_file::FileDriver;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// A line that is often a record: a JSON object or a CSV row with a key and
/// a time, sometimes bent, sometimes noise.
fn line() -> impl Strategy<Value = String> {
    let json = ("[a-c]{1,2}", any::<i32>(), any::<f64>())
        .prop_map(|(k, t, v)| format!(r#"{{"key":"{k}","time":{t},"v":{v}}}"#));
    let csv = ("[a-c]{1,2}", any::<i32>(), any::<i16>(), "[a-z,\" \n]{0,4}")
        .prop_map(|(k, t, v, s)| format!("{k},{t},{v},\"{s}\""));
    let noise = "[a-z0-9{}\",:\\[\\] \r]{0,12}";
    (
        prop_oneof![3 => json, 3 => csv, 1 => noise],
        any::<u8>(),
        any::<usize>(),
    )
        .prop_map(|(mut line, cut, at)| {
            if cut % 5 == 0 && !line.is_empty() {
                let at = line
                    .char_indices()
                    .nth(at % line.chars().count())
                    .map_or(0, |(i, _)| i);
                line.truncate(at);
            }
            line
        })
}

fn file() -> impl Strategy<Value = (Format, String)> {
    let format = prop_oneof![Just(Format::Json), Just(Format::Csv)];
    (
        format,
        proptest::collection::vec(line(), 0..40),
        any::<bool>(),
    )
        .prop_map(|(format, lines, last_newline)| {
            let mut text = match format {
                Format::Csv => "key,time,v,s\n".to_owned(),
                _ => String::new(),
            };
            text.push_str(&lines.join("\n"));
            if last_newline {
                text.push('\n');
            }
            (format, text)
        })
}

/// Polls until the source ends or `polls` polls were made: the records and
/// the rejected lines (where and what).
fn read(
    driver: &mut FileDriver,
    batch: usize,
    polls: usize,
) -> (Vec<Record>, Vec<(String, String)>, bool) {
    let (mut records, mut rejected) = (Vec::new(), Vec::new());
    for _ in 0..polls {
        let poll = driver.poll(&mut records, batch).unwrap();
        rejected.extend(
            driver
                .take_rejected()
                .into_iter()
                .map(|r| (r.origin, r.reason)),
        );
        if poll == Poll::Ended {
            return (records, rejected, true);
        }
    }
    (records, rejected, false)
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn fuzz_a_file_read_in_batches_and_resumed_anywhere_reads_each_line_once(
        (format, text) in file(),
        batch in 1usize..16,
        polls_before_stop in 0usize..12,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input");
        std::fs::write(&path, &text).unwrap();
        let settings = Decoding::new(format, "key", "time");

        // What the codec reads from the bytes, independently of the source.
        let mut expected = Vec::new();
        let errors = StreamDecoder::new(settings.clone())
            .unwrap()
            .decode_all(text.as_bytes(), &Meta::now(), &mut expected);
        let expected_rejected: Vec<(String, String)> = errors
            .iter()
            .map(|e| (format!("{}:{}", path.display(), e.line.unwrap()), e.reason.clone()))
            .collect();

        let mut first = match FileDriver::open(&path, settings.clone()) {
            Ok(driver) => driver,
            Err(e) => {
                // Only a CSV file without its header is refused whole.
                prop_assert!(format == Format::Csv && !text.starts_with("key,"), "{}", e);
                return Ok(());
            }
        };
        let (mut records, mut rejected, ended) = read(&mut first, batch, polls_before_stop);
        if !ended {
            let position = first.position().unwrap();
            drop(first);
            let mut again = FileDriver::open(&path, settings).unwrap();
            again.seek(&position).unwrap();
            let (rest, rest_rejected, ended) = read(&mut again, batch, text.len() + 2);
            prop_assert!(ended);
            records.extend(rest);
            rejected.extend(rest_rejected);
        }
        // Compared as printed, so that a NaN read from `nan` equals itself.
        prop_assert_eq!(format!("{records:?}"), format!("{expected:?}"));
        prop_assert_eq!(rejected, expected_rejected);
    }
}
