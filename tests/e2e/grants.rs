//! Capability grants: a plugin that declares or imports more than its
//! operator's `grants` table allows is refused when the pipeline loads, and
//! the error names the capability and where the grants are.

use crate::support::{plugin, run, stderr, toml_path};

/// `eddy check` on a pipeline whose operator `alerts` runs `plugin_path`
/// under `grants` (the folder also holds `sneaky.wasm`).
fn check_alerts(grants: &str, plugin_path: &str) -> (i32, String) {
    let text = format!(
        r#"[sources.ups.sim]
speed = 0
duration_ms = 10_000
rooms = [{{ name = "r" }}]

[operators.alerts]
inputs = ["ups"]
plugin = {plugin_path}
params = {{ field = "temperature", threshold = 30.0 }}
{grants}

[sinks.out]
inputs = ["alerts"]
[sinks.out.stdout]
"#
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), &text).unwrap();
    std::fs::write(
        dir.path().join("sneaky.wasm"),
        wat::parse_str(SNEAKY).unwrap(),
    )
    .unwrap();
    let out = run(&["check", "p.toml"], dir.path());
    (out.status.code().unwrap_or(-1), stderr(&out))
}

/// Declares nothing, but its code imports `timer_set`.
const SNEAKY: &str = r#"
(module
  (@custom "eddy.manifest" "{\"name\":\"sneaky\",\"version\":\"0.1.0\",\"abi_version\":1,\"kind\":\"process\"}")
  (import "eddy" "timer_set" (func (param i32 i32 i32 i64)))
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (result i32) i32.const 0)
  (func (export "process") (param i32 i32) (result i32) i32.const 0))
"#;

#[test]
fn what_the_manifest_declares_must_be_granted() {
    let alerts = toml_path(&plugin("threshold_alert"));
    let all = r#"grants = { state = ["alert", "breach"], side_outputs = ["cleared"], timers = true, twin = true }"#;
    let (code, err) = check_alerts(all, &alerts);
    assert_eq!(code, 0, "everything granted: {err}");

    // Params from the device twin are a grant too.
    let (code, err) = check_alerts(
        r#"grants = { state = ["alert", "breach"], side_outputs = ["cleared"], timers = true }"#,
        &alerts,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("declares twin") && err.contains("grants.twin = true"),
        "{err}"
    );

    let (code, err) = check_alerts(
        r#"grants = { side_outputs = ["cleared"], timers = true }"#,
        &alerts,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("p.toml:10:10: operator `alerts`: plugin `threshold-alert` declares state `alert`, which is not granted (add it to grants.state)"),
        "{err}"
    );

    let (code, err) = check_alerts(
        r#"grants = { state = ["alert", "breach"], side_outputs = ["cleared"] }"#,
        &alerts,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("declares timers, which are not granted"),
        "{err}"
    );

    let (code, err) = check_alerts(
        r#"grants = { state = ["alert", "breach"], timers = true }"#,
        &alerts,
    );
    assert_eq!(code, 2);
    assert!(err.contains("declares side output `cleared`"), "{err}");
}

#[test]
fn an_import_that_was_not_granted_fails_to_load() {
    let (code, err) = check_alerts("grants = {}", r#""sneaky.wasm""#);
    assert_eq!(code, 2);
    assert!(
        err.contains("plugin `sneaky` imports `timer_set`, which needs timers (grants.timers = true), not granted"),
        "{err}"
    );
    // Without a grants table, a plugin gets what it declares: here, nothing.
    let (code, err) = check_alerts("", r#""sneaky.wasm""#);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("imports `timer_set`"), "{err}");
}

/// Declares state `counts`, then writes state `other` on every batch.
const STRAYS: &str = r#"
(module
  (@custom "eddy.manifest" "{\"name\":\"stray\",\"version\":\"0.1.0\",\"abi_version\":1,\"kind\":\"process\",\"capabilities\":{\"state\":[\"counts\"]}}")
  (import "eddy" "state_put" (func $put (param i32 i32 i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "otherkey")
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (result i32) i32.const 0)
  (func (export "process") (param i32 i32) (result i32)
    (call $put (i32.const 16) (i32.const 5) (i32.const 21) (i32.const 3) (i32.const 16) (i32.const 1))
    i32.const 0))
"#;

#[test]
fn state_that_was_not_granted_is_refused_when_used() {
    let dir = tempfile::tempdir().unwrap();
    let stray = crate::support::write_wasm(dir.path(), "stray.wasm", STRAYS);
    let text = format!(
        r#"[pipeline]
dead_letter_path = "dead-letter.jsonl"

[sources.ups.sim]
speed = 0
duration_ms = 10_000
rooms = [{{ name = "r" }}]

[operators.stray]
inputs = ["ups"]
plugin = {stray}
grants = {{ state = ["counts"] }}

[sinks.out]
inputs = ["stray"]
[sinks.out.stdout]
"#,
        stray = toml_path(&stray)
    );
    let dir = crate::support::run_in_folder(&text);
    let dead = crate::support::json_lines(&dir.path().join("dead-letter.jsonl"));
    assert!(!dead.is_empty(), "the stray write is refused");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("used state `other` through `state_put`, which is not granted to it"),
        "{reason}"
    );
}
