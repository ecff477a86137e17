//! `eddy state …` on a pipeline stopped part-way: listing, reading keyed
//! state, moving it to another device, resetting an operator, compacting.

use crate::crash::{job, write_input};
use crate::support::{run, stderr, stdout};

#[test]
fn state_can_be_listed_read_moved_reset_and_compacted() {
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path());
    std::fs::write(dir.path().join("job.toml"), job("off")).unwrap();
    let out = run(&["run", "job.toml", "--duration", "700ms"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let eddy = |args: &[&str], dir: &std::path::Path| {
        let out = run(args, dir);
        assert!(out.status.success(), "eddy {args:?}: {}", stderr(&out));
        stdout(&out)
    };

    let ls = eddy(&["state", "ls"], dir.path());
    assert!(ls.contains("crash"), "{ls}");
    let operators = eddy(&["state", "ls", "crash"], dir.path());
    for operator in ["stats ", "alerts ", "counts "] {
        assert!(operators.contains(operator), "{operators}");
    }

    // The alert operator keeps pattern state per cell.
    let keyed = eddy(&["state", "get", "crash", "alerts"], dir.path());
    let entries: Vec<serde_json::Value> = keyed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!entries.is_empty(), "alerts keeps keyed state");
    let key = entries[0]["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ups-1/"), "{key}");
    let one = eddy(&["state", "get", "crash", "alerts", &key], dir.path());
    assert_eq!(
        one.lines().count(),
        entries.iter().filter(|e| e["key"] == key.as_str()).count()
    );

    // Move it to another device: the same operators and keys there.
    eddy(
        &["state", "export", "crash", "-o", "crash.state"],
        dir.path(),
    );
    let other = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.path().join("crash.state"),
        other.path().join("crash.state"),
    )
    .unwrap();
    eddy(&["state", "import", "crash", "crash.state"], other.path());
    let there = eddy(&["state", "get", "crash", "alerts"], other.path());
    assert_eq!(there, keyed);

    // Reset one operator: it is gone from the newest checkpoint; the others stay.
    eddy(&["state", "clear", "crash", "counts"], dir.path());
    let operators = eddy(&["state", "ls", "crash"], dir.path());
    assert!(!operators.contains("counts "), "{operators}");
    assert!(operators.contains("stats "), "{operators}");

    let compacted = eddy(&["state", "compact"], dir.path());
    assert!(compacted.contains("compacted"), "{compacted}");
    assert_eq!(
        eddy(&["state", "get", "crash", "alerts"], dir.path()),
        keyed
    );

    eddy(&["state", "clear", "crash"], dir.path());
    let out = run(&["state", "get", "crash", "alerts"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has no checkpoint"),
        "{}",
        stderr(&out)
    );
}
