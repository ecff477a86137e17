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
