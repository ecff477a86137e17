//! Plugins the host must refuse at load time, with a clear reason.

use crate::support::{plugin, run, stderr, toml_path, write_wasm};

/// A module whose manifest says ABI version 99; otherwise a plausible plugin.
pub(crate) const WRONG_ABI: &str = r#"
(module
  (@custom "eddy.manifest" "{\"name\":\"from-the-future\",\"version\":\"9.0.0\",\"abi_version\":99,\"kind\":\"process\"}")
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (result i32) i32.const 0)
  (func (export "process") (param i32 i32) (result i32) i32.const 0))
"#;

/// A current manifest, but no `process` export.
pub(crate) const MISSING_EXPORT: &str = r#"
(module
  (@custom "eddy.manifest" "{\"name\":\"half-done\",\"version\":\"0.1.0\",\"abi_version\":1,\"kind\":\"process\"}")
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (result i32) i32.const 0))
"#;

/// An aggregate whose optional `fold_result` takes no input.
const MISTYPED_FOLD_RESULT: &str = r#"
(module
  (@custom "eddy.manifest" "{\"name\":\"odd-fold\",\"version\":\"0.1.0\",\"abi_version\":1,\"kind\":\"aggregate\"}")
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (result i32) i32.const 0)
  (func (export "aggregate") (param i32 i32) (result i32) i32.const 0)
  (func (export "result") (param i32 i32) (result i32) i32.const 0)
  (func (export "fold_result") (result i32) i32.const 0))
"#;

/// Imports a host function that does not exist.
pub(crate) const UNKNOWN_IMPORT: &str = r#"
(module
  (@custom "eddy.manifest" "{\"name\":\"nosy\",\"version\":\"0.1.0\",\"abi_version\":1,\"kind\":\"process\"}")
  (import "eddy" "open_socket" (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (result i32) i32.const 0)
  (func (export "process") (param i32 i32) (result i32) i32.const 0))
"#;

#[test]
fn a_plugin_for_another_abi_version_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = write_wasm(dir.path(), "old.wasm", WRONG_ABI);

    let out = run(&["plugin", "inspect", "old.wasm"], dir.path());
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("built for eddy ABI version 99, but this host speaks ABI version 1"),
        "{err}"
    );

    let pipeline = format!(
        "[sources.s.sim]\nrooms = [{{ name = \"r\" }}]\n\n[operators.op]\ninputs = [\"s\"]\nplugin = {}\n",
        toml_path(&wasm)
    );
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let out = run(&["check", "p.toml"], dir.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("p.toml:6:10: operator `op`"), "{err}");
    assert!(
        err.contains("ABI version 99") && err.contains("ABI version 1"),
        "{err}"
    );
}

/// `eddy plugin inspect` of the module `wat`: its error output if it is
/// refused, `None` if it loads.
fn inspect_refusal(wat: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    write_wasm(dir.path(), "plugin.wasm", wat);
    let out = run(&["plugin", "inspect", "plugin.wasm"], dir.path());
    (!out.status.success()).then(|| stderr(&out))
}

#[test]
fn a_missing_entry_point_is_named() {
    let err = inspect_refusal(MISSING_EXPORT).expect("refused");
    assert!(
        err.contains("plugin `half-done` lacks the export `process`"),
        "{err}"
    );
}

#[test]
fn an_optional_entry_point_of_the_wrong_type_is_named() {
    let err = inspect_refusal(MISTYPED_FOLD_RESULT).expect("refused");
    assert!(
        err.contains("plugin `odd-fold` lacks the export `fold_result` (func (i32, i32) -> i32"),
        "{err}"
    );
    // Without it, the same aggregate loads.
    let plain = MISTYPED_FOLD_RESULT.replace(
        "\n  (func (export \"fold_result\") (result i32) i32.const 0)",
        "",
    );
    assert_ne!(plain, MISTYPED_FOLD_RESULT);
    assert_eq!(inspect_refusal(&plain), None);
}

#[test]
fn an_import_the_host_does_not_provide_is_named() {
    let err = inspect_refusal(UNKNOWN_IMPORT).expect("refused");
    assert!(
        err.contains("plugin `nosy` imports what this host does not provide"),
        "{err}"
    );
    assert!(err.contains("open_socket"), "{err}");
}

#[test]
fn inspect_prints_the_manifest_and_exports() {
    let out = run(
        &[
            "plugin",
            "inspect",
            plugin("threshold_alert").to_str().unwrap(),
        ],
        &crate::support::root(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = crate::support::stdout(&out);
    for expected in [
        "name:          threshold-alert",
        "abi version:   1 (this host: 1)",
        "kind:          process",
        "state:         alert",
        "side outputs:  cleared",
        "process",
        "alloc",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}
