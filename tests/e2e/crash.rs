//! Crashes: the real `eddy` binary killed with SIGKILL at random moments and
//! started again, twenty times in a row, must produce exactly what one
//! uninterrupted run produces. Output that a killed run had already written
//! comes again on replay with the same ids; dropping repeated ids must leave
//! the uninterrupted run's output, record for record and in order. The file
//! sink, which checkpoints truncate back, must hold no duplicate at all.
//!
//! The workload: seeded simulated UPS cells (out-of-order and very late
//! readings, one overheating cell) written to a file first, then read by the
//! seeds' job: 1 s tumbling windows with 5 s allowed lateness and a late
//! side output, and alerts on two consecutive hot windows; besides, a running
//! count per key kept in plugin memory and restored from memory snapshots.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Rng, eddy, plugin, run, run_logged, stderr, toml_path};

/// Kills in a row.
const KILLS: usize = 20;

/// The simulation of the input: seeded UPS cells with out-of-order and very
/// late readings, one of them overheating a third of the way through.
/// `speed`: simulated ms per wall-clock ms, 0 for as fast as it is read.
fn sim_table(duration_ms: u64, speed: u64) -> String {
    format!(
        r#"[sources.ups.sim]
seed = 11
interval_ms = 100
speed = {speed}
start_time_ms = 1_767_225_600_000
duration_ms = {duration_ms}
disorder = {{ probability = 0.02, max_delay_ms = 12_000 }}
ups = [{{ name = "ups-1", strings = 2, cells_per_string = 8 }}]
faults = [{{ kind = "cell_overheat", device = "ups-1/string-2/cell-05", start_after_ms = {hot}, rise_c_per_min = 20.0, max_rise_c = 12.0 }}]
"#,
        hot = duration_ms / 3
    )
}

/// Writes the input: the simulation's readings in arrival order.
pub(crate) fn write_input(dir: &Path) {
    let text = format!(
        r#"
[pipeline]
name = "input"
[checkpoint]
enabled = false
[sources.ups]
{sim}[sinks.raw]
inputs = ["ups"]
[sinks.raw.file]
path = "input.jsonl"
"#,
        sim = sim_table(900_000, 0)
    );
    std::fs::write(dir.join("input.toml"), text).unwrap();
    let out = run(&["run", "input.toml"], dir);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The seeds' job over the input file, checkpointing every 100 ms, and a
/// running count per key that the plugin keeps in its own memory.
pub(crate) fn job(journal: &str) -> String {
    format!(
        r#"
[pipeline]
name = "crash"
batch_size = 256
[checkpoint]
interval_ms = 100
[sources.ups]
bounded_out_of_orderness_ms = 2000
journal = "{journal}"
[sources.ups.file]
path = "input.jsonl"
[operators.stats]
inputs = ["ups"]
plugin = {stats}
params = {{ fields = ["temperature"] }}
window.tumbling = {{ size_ms = 1000 }}
allowed_lateness_ms = 5000
[operators.counts]
inputs = ["ups"]
plugin = {counts}
params = {{ every = 500 }}
[operators.alerts]
inputs = ["stats"]
plugin = {alerts}
params = {{ field = "temperature_max", threshold = 35.0, within_ms = 2000, clear_below = 32.0 }}
[sinks.console]
inputs = ["stats", "stats.late", "alerts", "alerts.cleared", "counts"]
[sinks.console.stdout]
[sinks.results]
inputs = ["stats", "alerts"]
[sinks.results.file]
path = "results.jsonl"
"#,
        stats = toml_path(&plugin("window_stats")),
        alerts = toml_path(&plugin("threshold_alert")),
        counts = toml_path(&plugin("running_count")),
    )
}

/// The complete JSON lines of a killed run's output (a line cut by the kill is dropped).
fn complete_lines(text: &str) -> Vec<serde_json::Value> {
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n') && !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits until a run has written some output (at most 60 s).
fn wait_for_output(stdout: &Path) {
    for _ in 0..6000 {
        if std::fs::metadata(stdout).is_ok_and(|m| m.len() > 0) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} stayed empty for 60 s", stdout.display());
}

fn start(dir: &Path, stdout: &Path) -> std::process::Child {
    let mut cmd: Command = eddy();
    cmd.args(["run", "job.toml"])
        .current_dir(dir)
        .env("EDDY_STATE_DIR", dir.join("state"))
        .env("EDDY_LOG", "info")
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(std::fs::File::create(stdout.with_extension("err")).unwrap())
        .stdin(Stdio::null());
    cmd.spawn().expect("eddy starts")
}

/// Runs the job once without interruption, then again killed `KILLS` times
/// and restarted after each kill, and compares what the two wrote.
fn crash_and_compare(journal: &str) {
    let input = tempfile::tempdir().unwrap();
    write_input(input.path());
    let prepare = |dir: &Path| {
        std::fs::copy(input.path().join("input.jsonl"), dir.join("input.jsonl")).unwrap();
        std::fs::write(dir.join("job.toml"), job(journal)).unwrap();
    };

    let whole = tempfile::tempdir().unwrap();
    prepare(whole.path());
    let started = std::time::Instant::now();
    let out = run(&["run", "job.toml"], whole.path());
    let uninterrupted = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = complete_lines(&String::from_utf8_lossy(&out.stdout));
    let ids: Vec<&str> = expected.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let unique: std::collections::HashSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "ids are unique in one run");
    assert!(
        expected.iter().any(|r| r["output"] == "alerts"),
        "the workload raises alerts"
    );
    assert!(
        expected.iter().any(|r| r["output"] == "stats.late"),
        "the workload has late records"
    );
    assert!(
        expected.iter().any(|r| r["fields"]["update"] == true),
        "the workload has lateness updates"
    );
    assert!(
        expected.iter().any(|r| r["output"] == "counts"),
        "the workload has running counts"
    );

    let crashed = tempfile::tempdir().unwrap();
    prepare(crashed.path());
    // Most kills come a random moment after the run has written output (it
    // has restored and gets somewhat further, so the kills land all over the
    // input); every fourth comes at a random moment of its start, while it
    // restores or takes its first checkpoint.
    let span = (uninterrupted.as_millis() as u64 / 25).max(50);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut union = Vec::new();
    let mut kills = 0;
    let mut run_no = 0;
    loop {
        run_no += 1;
        let stdout = crashed.path().join(format!("run-{run_no}.out"));
        let mut child = start(crashed.path(), &stdout);
        let finished = if kills < KILLS {
            if kills % 4 == 3 {
                std::thread::sleep(Duration::from_millis(rng.below(300)));
            } else {
                wait_for_output(&stdout);
                std::thread::sleep(Duration::from_millis(rng.below(span)));
            }
            match child.try_wait().unwrap() {
                Some(status) => Some(status),
                None => {
                    child.kill().unwrap(); // SIGKILL
                    child.wait().unwrap();
                    kills += 1;
                    None
                }
            }
        } else {
            Some(child.wait().unwrap())
        };
        union.extend(complete_lines(&std::fs::read_to_string(&stdout).unwrap()));
        if let Some(status) = finished {
            let log = std::fs::read_to_string(stdout.with_extension("err")).unwrap();
            assert!(status.success(), "run {run_no} failed: {log}");
            break;
        }
    }
    assert_eq!(
        kills, KILLS,
        "the input is long enough for {KILLS} kills before the job ends"
    );

    // Drop repeated ids; a repeated id must repeat the same record.
    let mut seen: HashMap<String, serde_json::Value> = HashMap::new();
    let mut deduplicated = Vec::new();
    let mut duplicates = 0;
    for record in union {
        let id = record["id"].as_str().unwrap().to_owned();
        match seen.get(&id) {
            Some(first) => {
                assert_eq!(first, &record, "id {id} came twice with different records");
                duplicates += 1;
            }
            None => {
                seen.insert(id, record.clone());
                deduplicated.push(record);
            }
        }
    }
    println!(
        "journal {journal}: {KILLS} kills over {run_no} runs, {} records, {duplicates} duplicate ids from replay",
        expected.len()
    );
    assert_eq!(deduplicated.len(), expected.len(), "as many records");
    assert!(deduplicated == expected, "record for record, in order");

    // The file sink was cut back to each checkpoint: no duplicates at all.
    let results = std::fs::read_to_string(crashed.path().join("results.jsonl")).unwrap();
    let reference = std::fs::read_to_string(whole.path().join("results.jsonl")).unwrap();
    assert!(
        results == reference,
        "the file sink equals the uninterrupted run's byte for byte"
    );

    // Every restart that got as far as writing output had restored a
    // checkpoint first and said so (a run killed while still starting may not have).
    let file = |n: usize, ext: &str| {
        std::fs::read_to_string(crashed.path().join(format!("run-{n}.{ext}"))).unwrap()
    };
    let mut restored = 0;
    let mut had_output = !file(1, "out").is_empty();
    for n in 2..=run_no {
        let output = !file(n, "out").is_empty();
        if had_output && (output || n == run_no) {
            assert!(
                file(n, "err").contains("restoring from checkpoint"),
                "run {n}: {}",
                file(n, "err")
            );
            restored += 1;
        }
        had_output |= output;
    }
    println!("journal {journal}: {restored} restarts wrote output after restoring");
}

#[test]
fn twenty_kills_with_a_rewinding_source_change_nothing() {
    crash_and_compare("off");
}

#[test]
fn twenty_kills_with_the_ingest_journal_change_nothing() {
    crash_and_compare("sync");
}

/// Stops the job early (cleanly), damages its newest checkpoint with `damage`
/// (given the database, the state folder and the checkpoint id),
/// and runs it to the end: it must restore the checkpoint before, say so, and
/// write exactly what an uninterrupted run writes.
fn recover_past(damage: impl Fn(&sled::Db, &Path, u64)) {
    let input = tempfile::tempdir().unwrap();
    write_input(input.path());
    let prepare = |dir: &Path| {
        std::fs::copy(input.path().join("input.jsonl"), dir.join("input.jsonl")).unwrap();
        std::fs::write(dir.join("job.toml"), job("off")).unwrap();
    };
    let whole = tempfile::tempdir().unwrap();
    prepare(whole.path());
    assert!(run(&["run", "job.toml"], whole.path()).status.success());

    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let out = run(&["run", "job.toml", "--duration", "700ms"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let newest = {
        let db = sled::open(dir.path().join("state")).unwrap();
        let checkpoints = db.open_tree("crash/checkpoints").unwrap();
        let (key, _) = checkpoints.last().unwrap().expect("checkpoints were taken");
        let newest = u64::from_be_bytes(key.as_ref().try_into().unwrap());
        assert!(newest >= 2, "a checkpoint before the newest exists");
        damage(&db, &dir.path().join("state"), newest);
        db.flush().unwrap();
        newest
    };
    let out = run_logged(&["run", "job.toml"], dir.path());
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let logged = |message: &str, id: u64| {
        let field = format!("checkpoint={id}");
        log.lines()
            .any(|l| l.contains(message) && l.split_whitespace().any(|t| t == field))
    };
    assert!(logged("checkpoint is damaged", newest), "{log}");
    assert!(logged("restoring from checkpoint", newest - 1), "{log}");
    let results = std::fs::read_to_string(dir.path().join("results.jsonl")).unwrap();
    let reference = std::fs::read_to_string(whole.path().join("results.jsonl")).unwrap();
    assert!(
        results == reference,
        "the file sink equals the uninterrupted run's byte for byte"
    );
}

#[test]
fn a_corrupt_newest_checkpoint_falls_back_to_the_one_before() {
    // A flipped byte in the newest manifest (bit rot): its checksum fails.
    recover_past(|db, _, newest| {
        let checkpoints = db.open_tree("crash/checkpoints").unwrap();
        let mut manifest = checkpoints
            .get(newest.to_be_bytes())
            .unwrap()
            .unwrap()
            .to_vec();
        let middle = manifest.len() / 2;
        manifest[middle] ^= 0x40;
        checkpoints.insert(newest.to_be_bytes(), manifest).unwrap();
    });
}

#[test]
fn a_torn_newest_checkpoint_falls_back_to_the_one_before() {
    // The newest checkpoint's operator state is cut short: written in
    // part only.
    recover_past(|_, state, newest| {
        let file = state
            .join("checkpoints")
            .join("crash")
            .join(format!("{newest:020}.state"));
        let len = std::fs::metadata(&file).unwrap().len();
        assert!(len > 0);
        let file = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        file.set_len(len / 2).unwrap();
    });
}

/// A seeded simulation with a start time, as in the demo, goes back to its
/// checkpoint's place when run again on the same state: stopped after a
/// moment, killed once, then run to its end, it writes (repeated ids
/// dropped) what one uninterrupted run writes, with nothing dead-lettered.
/// Before, each run started the simulation over, and every reading of the
/// runs after the first came too late for its closed window.
#[test]
fn a_simulation_run_again_goes_on_where_it_stopped() {
    // Unpaced, so that every run cuts the same batches (a paced source's
    // batches follow the wall clock, and the interleaving of outputs with
    // them), and long enough (192k readings) that the first run surely
    // stops before the end.
    let sim = sim_table(1_200_000, 0);
    // The seeds' job, reading the simulation itself, without a journal
    // (none is needed for a source that goes back), and dead letters kept.
    let text = job("off")
        .replace("journal = \"off\"\n", "")
        .replace("[sources.ups.file]\npath = \"input.jsonl\"\n", &sim)
        .replace(
            "batch_size = 256\n",
            "batch_size = 256\ndead_letter_path = \"dead.jsonl\"\n",
        );
    assert!(text.contains("[sources.ups.sim]") && !text.contains("journal"));
    let whole = tempfile::tempdir().unwrap();
    std::fs::write(whole.path().join("job.toml"), &text).unwrap();
    let out = run(&["run", "job.toml"], whole.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = complete_lines(&String::from_utf8_lossy(&out.stdout));
    assert!(expected.iter().any(|r| r["output"] == "alerts"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.toml"), &text).unwrap();
    // Stopped, as an operator stops it.
    let first = run(&["run", "job.toml", "--duration", "300ms"], dir.path());
    assert!(first.status.success(), "{}", stderr(&first));
    let mut union = complete_lines(&String::from_utf8_lossy(&first.stdout));
    assert!(
        union.len() < expected.len(),
        "the first run stopped before the end"
    );
    // Killed a moment after it wrote output.
    let stdout = dir.path().join("killed.out");
    let mut child = start(dir.path(), &stdout);
    wait_for_output(&stdout);
    std::thread::sleep(Duration::from_millis(50));
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
    }
    child.wait().unwrap();
    union.extend(complete_lines(&std::fs::read_to_string(&stdout).unwrap()));
    // Run to the end.
    let last = run_logged(&["run", "job.toml"], dir.path());
    assert!(last.status.success(), "{}", stderr(&last));
    assert!(stderr(&last).contains("restoring from checkpoint"));
    union.extend(complete_lines(&String::from_utf8_lossy(&last.stdout)));

    let mut seen = std::collections::HashSet::new();
    let deduplicated: Vec<serde_json::Value> = union
        .into_iter()
        .filter(|r| seen.insert(r["id"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(deduplicated.len(), expected.len(), "as many records");
    assert!(deduplicated == expected, "record for record, in order");
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap_or_default();
    assert!(dead.is_empty(), "nothing dead-lettered: {dead}");
}
