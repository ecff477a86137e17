//! `eddy check`: a malformed pipeline names file:line:column, exit code 2.

use crate::support::{plugin, run, stderr, toml_path};

fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let out = run(&["check", "p.toml"], dir.path());
    (out.status.code().unwrap_or(-1), stderr(&out))
}

fn pipeline(stats_inputs: &str) -> String {
    format!(
        r#"[sources.ups.sim]
speed = 0
duration_ms = 10_000
rooms = [{{ name = "r" }}]

[operators.stats]
inputs = [{stats_inputs}]
plugin = {plugin}
window.tumbling = {{ size_ms = 1000 }}

[sinks.out]
inputs = ["stats"]
[sinks.out.stdout]
"#,
        plugin = toml_path(&plugin("window_stats"))
    )
}

#[test]
fn a_valid_pipeline_checks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline(r#""ups""#)).unwrap();
    let out = run(&["check", "p.toml"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_unknown_input_is_located_and_the_names_listed() {
    let (code, err) = check(&pipeline(r#""ups", "upz""#));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("p.toml:7:18: operator `stats`: unknown input `upz`"),
        "{err}"
    );
    assert!(err.contains("sources: `ups`"), "{err}");
}

#[test]
fn an_unknown_key_is_located() {
    let (code, err) = check(&pipeline(r#""ups""#).replace("speed = 0", "speed = 0\nsped = 1"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("p.toml:3:1: unknown field `sped`"), "{err}");
}

#[test]
fn a_wrong_type_says_what_was_expected() {
    let (code, err) = check(&pipeline(r#""ups""#).replace("size_ms = 1000", "size_ms = \"1s\""));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("p.toml:9:31:"), "{err}");
    assert!(err.contains("expected"), "{err}");
}

#[test]
fn a_missing_plugin_file_points_at_the_plugin_line() {
    let text = pipeline(r#""ups""#).replace("window_stats.wasm", "nope.wasm");
    let (code, err) = check(&text);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("p.toml:8:10: operator `stats`"), "{err}");
    assert!(err.contains("nope.wasm"), "{err}");
}

#[test]
fn params_the_plugin_rejects_are_reported_with_the_plugin_reason() {
    let text = format!(
        r#"[sources.ups.sim]
speed = 0
rooms = [{{ name = "r" }}]

[operators.alerts]
inputs = ["ups"]
plugin = {}
params = {{ field = "temperature" }}
"#,
        toml_path(&plugin("threshold_alert"))
    );
    let (code, err) = check(&text);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("p.toml:7:10: operator `alerts`"), "{err}");
    assert!(err.contains("missing field `threshold`"), "{err}");
}

#[test]
fn a_cycle_is_refused() {
    let text = format!(
        r#"[sources.s.sim]
rooms = [{{ name = "r" }}]

[operators.a]
inputs = ["b"]
plugin = {p}

[operators.b]
inputs = ["a"]
plugin = {p}
"#,
        p = toml_path(&plugin("hostile"))
    );
    let (code, err) = check(&text);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cycle"), "{err}");
}

/// A minimal valid table of each kind, `[sources.s.KIND]` or `[sinks.k.KIND]`.
fn kinds() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("sources", "sim", "rooms = [{ name = \"r\" }]\n"),
        ("sources", "file", "path = \"in.csv\"\n"),
        ("sources", "tcp", "address = \"127.0.0.1:9\"\n"),
        ("sinks", "stdout", ""),
        ("sinks", "null", ""),
        ("sinks", "dead_letter", ""),
        ("sinks", "file", "path = \"out.jsonl\"\n"),
        ("sinks", "tcp", "address = \"127.0.0.1:9\"\n"),
    ]
}

/// A pipeline with `table` as the kind table of a source (or a sink fed by a sim).
fn with_kind(section: &str, kind: &str, table: &str) -> String {
    match section {
        "sources" => format!("[sources.s.{kind}]\n{table}"),
        _ => format!(
            "[sources.s.sim]\nrooms = [{{ name = \"r\" }}]\n\n[sinks.k]\ninputs = [\"s\"]\n[sinks.k.{kind}]\n{table}"
        ),
    }
}

/// The 1-based line of the first occurrence of `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn every_kind_checks_and_refuses_an_unknown_setting_at_its_place() {
    for (section, kind, table) in kinds() {
        let text = with_kind(section, kind, table);
        let (code, err) = check(&text);
        assert_eq!(code, 0, "{kind}: {err}");
        let bad = with_kind(section, kind, &format!("{table}colour = 3\n"));
        let (code, err) = check(&bad);
        assert_eq!(code, 2, "{kind}: {err}");
        let line = line_of(&bad, "colour");
        assert!(
            err.contains(&format!("p.toml:{line}:1: unknown field `colour`")),
            "{section} {kind}: {err}"
        );
    }
}

#[test]
fn a_setting_of_the_wrong_type_or_value_is_located_with_what_was_expected() {
    let cases = [
        (
            "sources",
            "tcp",
            "address = \"127.0.0.1:9\"\nconnect_timeout_ms = \"5s\"\n",
            "connect_timeout_ms",
            "expected",
        ),
        (
            "sources",
            "tcp",
            "address = \"nowhere\"\n",
            "address",
            "not an address such as",
        ),
        (
            "sinks",
            "tcp",
            "address = \"127.0.0.1:0\"\n",
            "address",
            "the port must be 1 to 65535",
        ),
        (
            "sources",
            "file",
            "path = \"in.csv\"\nformat = \"xml\"\n",
            "format =",
            "unknown variant `xml`, expected one of `json`, `jsonl`, `csv`",
        ),
        (
            "sources",
            "file",
            "path = \"in.csv\"\ntime_format = \"epoch\"\n",
            "time_format",
            "expected one of",
        ),
        (
            "sources",
            "file",
            "path = \"in.csv\"\ncsv = { delimiter = \"ab\" }\n",
            "csv =",
            "expected a character",
        ),
        (
            "sources",
            "sim",
            "rooms = [{ name = \"r\" }]\nspeed = -1.0\n",
            "[sources.s.sim]",
            "speed must be 0",
        ),
        ("sinks", "file", "path = 7\n", "path", "expected"),
    ];
    for (section, kind, table, at, expected) in cases {
        let text = with_kind(section, kind, table);
        let (code, err) = check(&text);
        assert_eq!(code, 2, "{kind} {table}: {err}");
        let line = line_of(&text, at);
        assert!(
            err.contains(&format!("p.toml:{line}:")),
            "{kind} {table}: want line {line}: {err}"
        );
        assert!(err.contains(expected), "{kind} {table}: {err}");
    }
}

#[test]
fn kinds_are_named_by_exactly_one_sub_table() {
    let (code, err) = check("[sources.s.opcua]\nendpoint = \"x\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("p.toml:1:12: unknown field `opcua`"), "{err}");
    assert!(err.contains("a source kind: `sim`, `file`, `tcp`"), "{err}");
    let (code, err) = check("[sources.s]\nbounded_out_of_orderness_ms = 5\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("a source needs a kind table, one of `sim`"),
        "{err}"
    );
    let (code, err) =
        check("[sources.s.sim]\nrooms = [{ name = \"r\" }]\n[sources.s.file]\npath = \"x\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("exactly one kind table"), "{err}");
    assert!(err.contains("`sim`") && err.contains("`file`"), "{err}");
    // The form before kinds were sub-tables says what to write instead.
    let (code, err) = check(
        "[sources.s.sim]\nrooms = [{ name = \"r\" }]\n[sinks.k]\ntype = \"stdout\"\ninputs = [\"s\"]\n",
    );
    assert_eq!(code, 2);
    assert!(err.contains("p.toml:4:1: `type` is not a sink setting: name the kind by a sub-table, e.g. [sinks.NAME.stdout]"), "{err}");
}

#[test]
fn a_missing_input_file_stops_run_but_not_check() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[sources.s.file]\npath = \"missing.csv\"\n\n[sinks.k]\ninputs = [\"s\"]\n[sinks.k.stdout]\n";
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let out = run(&["check", "p.toml"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["run", "p.toml"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("p.toml:1:1: source `s`: "), "{err}");
    assert!(err.contains("missing.csv"), "{err}");
}

#[test]
fn an_input_naming_a_side_output_the_plugin_does_not_have_is_located() {
    let text = format!(
        r#"[sources.ups.sim]
rooms = [{{ name = "r" }}]

[operators.stats]
inputs = ["ups"]
plugin = {stats}
window.tumbling = {{ size_ms = 1000 }}

[operators.alerts]
inputs = ["stats"]
plugin = {alerts}
params = {{ field = "temperature_max", threshold = 35.0 }}

[sinks.out]
inputs = ["stats.late", "alerts.cleared", "alerts.clear"]
[sinks.out.stdout]
"#,
        stats = toml_path(&plugin("window_stats")),
        alerts = toml_path(&plugin("threshold_alert")),
    );
    let (code, err) = check(&text);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("p.toml:15:43: sink `out`: operator `alerts` has no side output `clear`; it has `cleared`"),
        "{err}"
    );
    let (code, err) = check(
        &text
            .replace(", \"alerts.clear\"", "")
            .replace("stats.late", "stats.lat"),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("operator `stats` has no side output `lat`; it has `late`"),
        "{err}"
    );
    let (code, err) = check(&text.replace(", \"alerts.clear\"", ""));
    assert_eq!(code, 0, "{err}");
}
