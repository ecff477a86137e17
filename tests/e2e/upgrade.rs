//! A new plugin version whose state layout changed: the host refuses to
//! restore old state into it unless the pipeline says to reset that operator.

use crate::crash::{job, write_input};
use crate::support::{plugin, run, run_logged, stderr, stdout, toml_path};

#[test]
fn a_changed_state_version_is_refused_unless_the_operator_is_reset() {
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path());
    std::fs::write(dir.path().join("job.toml"), job("off")).unwrap();
    // Stop early: the pipeline has checkpointed state, running counts included.
    let out = run(&["run", "job.toml", "--duration", "700ms"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let counted: Vec<i64> = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["output"] == "counts")
        .map(|r| r["fields"]["count"].as_i64().unwrap())
        .collect();
    assert!(!counted.is_empty(), "the first run counted");
    let ls = stdout(&run(&["state", "ls"], dir.path()));
    assert!(
        ls.contains("running or stopped"),
        "stopped before the end: {ls}"
    );

    // Version 2 of running-count: the same code, declaring a new state layout.
    let v1 = std::fs::read(plugin("running_count")).unwrap();
    let needle = br#""state_version":1,"#;
    let mut v2 = v1.clone();
    let mut patched = 0;
    for at in 0..v1.len() - needle.len() {
        if v1[at..].starts_with(needle) {
            v2[at + needle.len() - 2] = b'2';
            patched += 1;
        }
    }
    assert!(patched > 0, "the manifest declares state_version 1");
    let v2_path = dir.path().join("running_count_v2.wasm");
    std::fs::write(&v2_path, v2).unwrap();
    let text = job("off").replace(&toml_path(&plugin("running_count")), &toml_path(&v2_path));
    std::fs::write(dir.path().join("job.toml"), &text).unwrap();

    let out = run(&["run", "job.toml"], dir.path());
    assert_eq!(out.status.code(), Some(2), "refused as a usage error");
    let err = stderr(&out);
    assert!(
        err.contains("operator `counts`: its checkpointed state has state_version 1, but plugin `running-count` declares 2"),
        "{err}"
    );
    assert!(err.contains(r#"state_version_mismatch = "reset""#), "{err}");

    // Reset: the counts start again from zero; the other operators keep their state.
    let reset = text.replace(
        "params = { every = 500 }",
        "params = { every = 500 }\nstate_version_mismatch = \"reset\"",
    );
    std::fs::write(dir.path().join("job.toml"), reset).unwrap();
    let out = run_logged(&["run", "job.toml"], dir.path());
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("restoring from checkpoint"), "{err}");
    assert!(err.contains("state version changed"), "{err}");
    let first_counts: Vec<i64> = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["output"] == "counts")
        .map(|r| r["fields"]["count"].as_i64().unwrap())
        .take(3)
        .collect();
    assert_eq!(first_counts, [500, 500, 500], "counting starts afresh");
}
