//! Signed plugin bundles and precompiled artifacts: a host with trusted keys
//! runs what they signed and refuses anything unsigned, signed by another
//! key, or altered, naming the reason, at load and at a swap; an artifact is
//! used only when it was compiled for this host's engine.

use std::path::{Path, PathBuf};

use crate::support::{json_lines, plugin, run, run_logged, sign, stderr, toml_path};

const HOST: &str = if cfg!(target_arch = "aarch64") {
    "aarch64-unknown-linux-gnu"
} else {
    "x86_64-unknown-linux-gnu"
};
const OTHER: &str = if cfg!(target_arch = "aarch64") {
    "x86_64-unknown-linux-gnu"
} else {
    "aarch64-unknown-linux-gnu"
};

fn ok(args: &[&str], dir: &Path) -> String {
    let out = run(args, dir);
    assert!(out.status.success(), "eddy {args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `window-stats` precompiled for `target`, then signed with `key` if given.
fn bundle(dir: &Path, name: &str, target: &str, key: Option<&str>) -> PathBuf {
    let wasm = plugin("window_stats");
    let unsigned = dir.join(format!("{name}.unsigned.bundle"));
    let out = run(
        &[
            "plugin",
            "precompile",
            wasm.to_str().unwrap(),
            "--target",
            target,
            "--output",
            unsigned.to_str().unwrap(),
        ],
        dir,
    );
    assert!(
        out.status.success(),
        "precompile for {target} (the tests need eddy built with --features eddy-host/all-arch, as `cargo xtask test` does): {}",
        stderr(&out)
    );
    let Some(key) = key else {
        return unsigned;
    };
    sign(dir, &unsigned, key, name)
}

fn pipeline(dir: &Path, plugin: &Path, trusted: &[&str]) -> PathBuf {
    let keys: Vec<String> = trusted.iter().map(|k| format!("{k:?}")).collect();
    let text = format!(
        r#"[pipeline]
name = "signed"

[trust]
keys = [{keys}]

[sources.ups]
bounded_out_of_orderness_ms = 1000
[sources.ups.sim]
seed = 9
start_time_ms = 1_767_225_600_000
speed = 0
duration_ms = 120_000
ups = [{{ name = "ups-1", cells_per_string = 4 }}]

[operators.stats]
inputs = ["ups"]
plugin = {plugin}
window.tumbling = {{ size_ms = 10_000 }}

[sinks.out]
inputs = ["stats"]
[sinks.out.file]
path = "out.jsonl"
"#,
        keys = keys.join(", "),
        plugin = toml_path(plugin),
    );
    let path = dir.join("p.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `eddy check` on a pipeline with `plugin`; returns its error.
fn refused(dir: &Path, plugin: &Path, trusted: &[&str]) -> String {
    pipeline(dir, plugin, trusted);
    let out = run(&["check", "p.toml"], dir);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    stderr(&out)
}

#[test]
fn a_host_with_trusted_keys_runs_only_what_they_signed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["keys", "gen", "site"], d);
    ok(&["keys", "gen", "stranger"], d);
    let signed = bundle(d, "stats", HOST, Some("site.key"));
    let by_stranger = bundle(d, "stranger", HOST, Some("stranger.key"));
    let unsigned = bundle(d, "plain", HOST, None);
    let mut bytes = std::fs::read(&signed).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let tampered = d.join("tampered.bundle");
    std::fs::write(&tampered, bytes).unwrap();

    // Without [trust], the bare plugin: the expected output.
    pipeline(d, &plugin("window_stats"), &[]);
    ok(&["run", "p.toml"], d);
    let expected = json_lines(&d.join("out.jsonl"));
    assert_eq!(expected.len(), 4 * 12);
    std::fs::remove_file(d.join("out.jsonl")).unwrap();
    std::fs::remove_dir_all(d.join("state")).unwrap();

    // The signed bundle runs from its artifact, with the same output.
    pipeline(d, &signed, &["site.pub"]);
    let out = run_logged(&["run", "p.toml"], d);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&d.join("out.jsonl")), expected);
    let text = ok(&["plugin", "inspect", signed.to_str().unwrap()], d);
    assert!(text.contains("signed:        by key"), "{text}");
    assert!(text.contains(&format!("artifact:      {HOST}")), "{text}");
    assert!(text.contains("loads on this host"), "{text}");
    assert!(
        text.contains("runs from:     its precompiled artifact"),
        "{text}"
    );

    let error = refused(d, &plugin("window_stats"), &["site.pub"]);
    assert!(error.contains("is not signed"), "{error}");
    let error = refused(d, &unsigned, &["site.pub"]);
    assert!(error.contains("is not signed"), "{error}");
    let error = refused(d, &by_stranger, &["site.pub"]);
    assert!(error.contains("which this host does not trust"), "{error}");
    let error = refused(d, &tampered, &["site.pub"]);
    assert!(
        error.contains("does not verify: the bundle was altered after it was signed"),
        "{error}"
    );
    assert!(
        error.contains("p.toml:"),
        "the error points into the file: {error}"
    );
    let error = refused(d, &signed, &["nowhere.pub"]);
    assert!(error.contains("[trust] keys: "), "{error}");
}

#[test]
fn an_artifact_for_another_engine_is_not_loaded_and_the_wasm_is_compiled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let foreign = bundle(d, "foreign", OTHER, None);
    let text = ok(&["plugin", "inspect", foreign.to_str().unwrap()], d);
    assert!(text.contains(&format!("artifact:      {OTHER}")), "{text}");
    assert!(text.contains("not for this host"), "{text}");
    assert!(
        text.contains("runs from:     its .wasm, compiled here"),
        "{text}"
    );
    pipeline(d, &foreign, &[]);
    let out = run_logged(&["run", "p.toml"], d);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no artifact for this host's engine; compiling its .wasm"),
        "{}",
        stderr(&out)
    );
    assert_eq!(json_lines(&d.join("out.jsonl")).len(), 4 * 12);
}

#[test]
fn precompiled_code_uploaded_unsigned_is_not_run_the_wasm_is_compiled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A host without trusted keys, running a plugin from its own files.
    let text = format!(
        r#"[pipeline]
name = "site"
[checkpoint]
enabled = false
[plugins]
probation_calls = 1
[sources.ups.sim]
speed = 20
ups = [{{ name = "ups-1", cells_per_string = 4 }}]
[operators.stats]
inputs = ["ups"]
plugin = {plugin}
window.tumbling = {{ size_ms = 10_000 }}
[sinks.out]
inputs = ["stats"]
[sinks.out.null]
"#,
        plugin = crate::support::toml_path(&plugin("window_stats"))
    );
    std::fs::write(d.join("p.toml"), text).unwrap();
    // Unsigned, with native code for this very host.
    let upload = bundle(d, "native", HOST, None);
    let child = crate::support::start(d);
    let out = run(
        &["plugin", "swap", "site", "stats", upload.to_str().unwrap()],
        d,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // SAFETY: kill(2) with a pid this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    crate::support::finish(child, d);
    let log = std::fs::read_to_string(d.join("eddy.log")).unwrap();
    assert!(
        log.contains("an uploaded plugin's precompiled code is not signed by a trusted key; compiling its .wasm instead"),
        "{log}"
    );
}
