//! Fuzzing pipeline files: a file bent in any way (lines dropped, repeated
//! or swapped, characters changed, numbers pushed to their limits) is
//! either a pipeline or an error that points into the file; never a panic.
//!
//! The default test run tries a few hundred files; `cargo xtask fuzz` runs
//! the property (and every other test named `fuzz_…`) for as long as it is
//! given.

use proptest::prelude::*;

use crate::config::{ConfigError, parse};
use crate::dataflow::Graph;

/// Sources, sinks and settings of every section, without operators (whose
/// plugins would be compiled); the second file's operator names a plugin
/// that is not there.
const FILES: [&str; 2] = [
    r#"[pipeline]
name = "site"
batch_size = 64
dead_letter_path = "dead-letter.jsonl"

[plugins]
deadline_ms = 200
memory_limit_bytes = 16_777_216
state_limit_bytes = 1_048_576
allocation = "on_demand"

[checkpoint]
interval_ms = 1000

[sources.ups]
bounded_out_of_orderness_ms = 2000
idle_timeout_ms = 5000
retry_initial_backoff_ms = 100
retry_max_backoff_ms = 2000
[sources.ups.sim]
seed = 42
start_time_ms = 1_767_225_600_000
speed = 0
duration_ms = 60_000
rooms = [{ name = "room-a" }]
disorder = { probability = 0.05, max_delay_ms = 1500 }
ups = [{ name = "ups-1", strings = 2, cells_per_string = 4 }]

[sources.lines]
[sources.lines.file]
path = "input.csv"
format = "csv"
key_field = "device"
time_field = "ts"
time_format = "rfc3339"
csv = { delimiter = ";", columns = ["device", "ts", "v"] }

[sources.net]
[sources.net.tcp]
address = "127.0.0.1:9"
format = "json"

[sinks.out]
inputs = ["ups", "lines"]
buffer = { max_records = 1000 }
[sinks.out.file]
path = "out.jsonl"

[sinks.console]
inputs = ["net"]
[sinks.console.stdout]
"#,
    r#"[pipeline]
name = "site"

[sources.ups]
[sources.ups.sim]
ups = [{ name = "ups-1" }]

[operators.stats]
inputs = ["ups"]
plugin = "missing.wasm"
params = { fields = ["temperature"] }
window.sliding = { size_ms = 30_000, slide_ms = 10_000 }
allowed_lateness_ms = 1000

[sinks.out]
inputs = ["stats", "stats.late"]
[sinks.out.null]
"#,
];

/// One change to a file's text.
#[derive(Debug, Clone)]
enum Edit {
    DropLine(usize),
    RepeatLine(usize),
    SwapLines(usize, usize),
    SetChar(usize, char),
    InsertChar(usize, char),
    /// The n-th number in the file becomes this.
    Number(usize, &'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<usize>();
    let char = prop_oneof![
        proptest::sample::select(
            &[
                '=', '[', ']', '{', '}', '"', '\'', ',', '.', '#', '\n', '-', '0', '9', 'a', ' '
            ][..]
        ),
        any::<char>(),
    ];
    let number = proptest::sample::select(
        &[
            "0",
            "-1",
            "1e309",
            "nan",
            "-inf",
            "18446744073709551615",
            "9223372036854775807",
            "-9223372036854775808",
            "0.5",
            "\"1\"",
            "[]",
        ][..],
    );
    prop_oneof![
        1 => at.prop_map(Edit::DropLine),
        1 => at.prop_map(Edit::RepeatLine),
        1 => (at, any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        1 => (at, char.clone()).prop_map(|(a, c)| Edit::SetChar(a, c)),
        1 => (at, char).prop_map(|(a, c)| Edit::InsertChar(a, c)),
        4 => (at, number).prop_map(|(a, n)| Edit::Number(a, n)),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let line = |n: usize| n % lines.len().max(1);
    let mut chars: Vec<char> = text.chars().collect();
    let char_at = |n: usize| n % chars.len().max(1);
    match *edit {
        Edit::DropLine(n) if !lines.is_empty() => {
            lines.remove(line(n));
        }
        Edit::RepeatLine(n) if !lines.is_empty() => {
            let n = line(n);
            lines.insert(n, lines[n].clone());
        }
        Edit::SwapLines(a, b) if !lines.is_empty() => {
            let (a, b) = (line(a), line(b));
            lines.swap(a, b);
        }
        Edit::SetChar(n, c) if !chars.is_empty() => {
            let n = char_at(n);
            chars[n] = c;
            return chars.into_iter().collect();
        }
        Edit::InsertChar(n, c) => {
            let n = char_at(n);
            chars.insert(n, c);
            return chars.into_iter().collect();
        }
        Edit::Number(n, number) => {
            let spans: Vec<(usize, usize)> = number_spans(text);
            if let Some(&(start, end)) = spans.get(n % spans.len().max(1)) {
                return format!("{}{number}{}", &text[..start], &text[end..]);
            }
        }
        _ => {}
    }
    lines.join("\n")
}

/// Where the file's numbers are (byte ranges).
fn number_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i].is_ascii_digit() && (i == 0 || b" =[,".contains(&bytes[i - 1]));
        if starts {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || b"_.".contains(&bytes[i])) {
                i += 1;
            }
            spans.push((start, i));
        } else {
            i += 1;
        }
    }
    spans
}

proptest! {
    #[test]
    fn fuzz_a_bent_pipeline_file_is_a_pipeline_or_a_located_error(
        file in 0..FILES.len(),
        edits in proptest::collection::vec(edit(), 1..3),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let text = edits.iter().fold(FILES[file].to_owned(), |text, e| apply(&text, e));
        let lines = text.lines().count().max(1);
        match parse(&path, text.clone()) {
            Err(ConfigError::Invalid { location, message }) => {
                prop_assert!(location.line <= lines + 1, "{location}: {message}");
                prop_assert!(!message.is_empty());
            }
            Err(other) => prop_assert!(false, "not located: {other}"),
            Ok(pipeline) => {
                if let Err(e) = Graph::build(&pipeline) {
                    // file:line:column, then what is wrong.
                    let message = e.to_string();
                    let place = format!("{}:", path.display());
                    prop_assert!(message.starts_with(&place), "not located: {message}");
                }
            }
        }
    }
}

/// The files as written: the first is a pipeline, the second's plugin is
/// missing; so that the edits start from something that works.
#[test]
fn the_files_unbent_are_a_pipeline_and_a_missing_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    let pipeline = parse(&path, FILES[0].to_owned()).unwrap();
    let graph = Graph::build(&pipeline);
    assert!(graph.is_ok(), "{:?}", graph.err().map(|e| e.to_string()));
    let pipeline = parse(&path, FILES[1].to_owned()).unwrap();
    let error = Graph::build(&pipeline).err().unwrap().to_string();
    assert!(error.contains("missing.wasm"), "{error}");
}
