//! `cargo xtask bench --vs-flink`: eddy and Apache Flink side by side on the
//! same CSV file and the same windows, in one run.
//!
//! Flink 2.3 comes from PyPI (`apache-flink-libraries`, the jars of the
//! `apache-flink` package) into a virtual environment at
//! `target/flink/venv`; the job (`xtask/flink/WindowStats.java`) is compiled
//! with the JDK and run locally at parallelism 1. Both read a generated file
//! of `key,time_ms,value` lines (1000 keys, ten readings a key and second,
//! in time order), with watermarks 2 s behind, and compute count, sum, min
//! and max per key and 1 s tumbling window; the results are counted and
//! discarded. Each run is a child process: its CPU time (user + system) and
//! peak resident memory come from the kernel (`wait4`), and the window and
//! record counts of both are compared before any figure is printed.
//! Writes `target/bench/vs_flink.json`, then `BENCHMARKS.md`.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::json;
use xshell::{Shell, cmd};

use crate::{guests, prerequisites};

/// The Flink release compared against.
const FLINK: &str = "2.3.0";
/// Distinct keys in the generated file.
const KEYS: u64 = 1000;
/// Event time of the first reading (2026-01-01).
const START_MS: u64 = 1_767_225_600_000;

/// What one process took.
#[derive(Debug, Clone, Copy)]
struct Usage {
    cpu: Duration,
    wall: Duration,
    peak_rss_bytes: u64,
}

/// One case of the comparison.
struct Case {
    name: &'static str,
    usage: Usage,
    windows: u64,
    records: u64,
}

impl Case {
    fn records_per_cpu_second(&self, records: u64) -> f64 {
        records as f64 / self.usage.cpu.as_secs_f64()
    }
}

/// Runs the comparison on `records` generated records.
pub(crate) fn run(sh: &Shell, records: u64) -> anyhow::Result<()> {
    ensure!(
        records >= 10 * KEYS,
        "--records must be at least {}",
        10 * KEYS
    );
    let dir = crate::project_root().join("target/flink");
    sh.create_dir(&dir)?;
    let classpath = flink(sh, &dir)?;
    guests::run(sh)?;
    prerequisites::host_build(sh)?;
    let cargo = crate::cargo();
    cmd!(
        sh,
        "{cargo} build --quiet --release -p eddy-host --bin eddy"
    )
    .run()?;

    let csv = dir.join("readings.csv");
    eprintln!("vs-flink: writing {records} readings to {}", csv.display());
    write_readings(&csv, records)?;
    let expected_windows = expected_windows(records);

    let mut cases = Vec::new();
    eprintln!("vs-flink: Flink {FLINK}, AggregateFunction, 1 s tumbling windows");
    cases.push(flink_case(&classpath, &csv)?);
    let eddy_cases: [(&str, &str, &str); 3] = [
        (
            "eddy, window-stats-incremental",
            "window_stats_incremental",
            "window.tumbling = { size_ms = 1000 }",
        ),
        (
            "eddy, window-stats (full window)",
            "window_stats",
            "window.tumbling = { size_ms = 1000 }",
        ),
        (
            "eddy, window-stats-incremental, sliding 10 s every 1 s",
            "window_stats_incremental",
            "window.sliding = { size_ms = 10_000, slide_ms = 1000 }",
        ),
    ];
    for (name, plugin, window) in eddy_cases {
        eprintln!("vs-flink: {name}");
        cases.push(eddy_case(&dir, &csv, name, plugin, window)?);
    }

    // Both must have computed the same windows over every record.
    for case in &cases[..2] {
        ensure!(
            case.windows == expected_windows && case.records == records,
            "{}: {} windows over {} records, expected {expected_windows} over {records}",
            case.name,
            case.windows,
            case.records
        );
    }

    let flink = &cases[0];
    let flink_rate = flink.records_per_cpu_second(records);
    println!(
        "\n{records} records, {KEYS} keys, 1 s windows, parallelism 1 / one pipeline thread\n"
    );
    println!(
        "{:<56} {:>10} {:>10} {:>16} {:>10} {:>10} {:>9}",
        "", "CPU s", "wall s", "records/CPU-s", "× Flink", "peak RSS", "RSS/Flink"
    );
    let mut rows = Vec::new();
    for case in &cases {
        let rate = case.records_per_cpu_second(records);
        let rss_ratio = case.usage.peak_rss_bytes as f64 / flink.usage.peak_rss_bytes as f64;
        println!(
            "{:<56} {:>10.2} {:>10.2} {:>16.0} {:>10.2} {:>6.0} MiB {:>9.4}",
            case.name,
            case.usage.cpu.as_secs_f64(),
            case.usage.wall.as_secs_f64(),
            rate,
            rate / flink_rate,
            case.usage.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            rss_ratio,
        );
        rows.push(json!({
            "case": case.name,
            "cpu_s": case.usage.cpu.as_secs_f64(),
            "wall_s": case.usage.wall.as_secs_f64(),
            "records_per_cpu_s": rate,
            "over_flink": rate / flink_rate,
            "peak_rss_mib": case.usage.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            "rss_over_flink": rss_ratio,
            "windows": case.windows,
        }));
    }
    let tumbling = cases[1].records_per_cpu_second(records);
    let sliding = cases[3].records_per_cpu_second(records);
    println!(
        "\nsliding (10 windows a record) takes {:.2}× the CPU of tumbling",
        tumbling / sliding
    );
    let report = json!({
        "records": records,
        "keys": KEYS,
        "flink": FLINK,
        "java": java_version(sh),
        "cases": rows,
        "sliding_cpu_over_tumbling": tumbling / sliding,
    });
    sh.create_dir("target/bench")?;
    sh.write_file(
        "target/bench/vs_flink.json",
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("wrote target/bench/vs_flink.json");
    crate::report::write(sh)
}

/// Installs Flink's jars and the JDK if missing, compiles the job, and
/// returns the class path that runs it.
fn flink(sh: &Shell, dir: &Path) -> anyhow::Result<String> {
    if cmd!(sh, "javac -version")
        .quiet()
        .ignore_stderr()
        .read()
        .is_err()
    {
        prerequisites::apt(sh, &["openjdk-17-jdk-headless"])?;
    }
    prerequisites::apt(sh, &["python3-venv"])?;
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        cmd!(sh, "python3 -m venv {venv}").run()?;
    }
    let wanted = format!("apache-flink-libraries=={FLINK}");
    let have = cmd!(sh, "{python} -m pip freeze").quiet().read()?;
    if !have.lines().any(|l| l.trim() == wanted) {
        // Only the jars: the Python half of `apache-flink` is not used.
        cmd!(
            sh,
            "{python} -m pip install --quiet --disable-pip-version-check --no-deps {wanted}"
        )
        .run()?;
    }
    let lib = glob_one(&venv.join("lib"), "site-packages/pyflink/lib")?;
    let classes = dir.join("classes");
    sh.create_dir(&classes)?;
    let jars = format!("{}/*", lib.display());
    let source = crate::project_root().join("xtask/flink/WindowStats.java");
    cmd!(sh, "javac -nowarn -d {classes} -cp {jars} {source}").run()?;
    Ok(format!("{jars}:{}", classes.display()))
}

/// `root/python3.X/rest`: the one Python version folder of a virtual environment.
fn glob_one(root: &Path, rest: &str) -> anyhow::Result<PathBuf> {
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path().join(rest);
        if path.exists() {
            return Ok(path);
        }
    }
    bail!("no {rest} under {}", root.display())
}

fn java_version(sh: &Shell) -> String {
    cmd!(sh, "java -version")
        .quiet()
        .ignore_status()
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default()
}

/// Writes `records` lines `key,time_ms,value`: key `cell-NNNN` round robin
/// over [`KEYS`], ten readings a key and second in time order, values 20.00
/// to 29.99 in a fixed pseudo-random order.
fn write_readings(path: &Path, records: u64) -> anyhow::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for i in 0..records {
        let time = START_MS + i * 1000 / (10 * KEYS);
        let hundredths = i.wrapping_mul(7919) % 1000;
        writeln!(
            out,
            "cell-{:04},{time},{}.{:02}",
            i % KEYS,
            20 + hundredths / 100,
            hundredths % 100
        )?;
    }
    out.flush()?;
    Ok(())
}

/// Windows the file's readings fall in: one per key and second that has a
/// reading (times grow with the line, so a key's second changes only forward).
/// Counted in little memory: a child's peak resident memory as the kernel
/// reports it includes this process's own peak, which it shares until it
/// starts the program.
fn expected_windows(records: u64) -> u64 {
    let mut last_second = vec![u64::MAX; KEYS as usize];
    let mut windows = 0;
    for i in 0..records {
        let second = (START_MS + i * 1000 / (10 * KEYS)) / 1000;
        let last = &mut last_second[(i % KEYS) as usize];
        if *last != second {
            *last = second;
            windows += 1;
        }
    }
    windows
}

fn flink_case(classpath: &str, csv: &Path) -> anyhow::Result<Case> {
    let log = csv.with_file_name("flink.log");
    let mut command = Command::new("java");
    command
        .args(["-cp", classpath, "WindowStats"])
        .arg(csv)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?);
    let (usage, stdout) = measure(command)?;
    let counts: serde_json::Value = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("Flink printed no counts; see {}", log.display()))?;
    Ok(Case {
        name: "Flink 2.3, AggregateFunction",
        usage,
        windows: counts["windows"].as_u64().unwrap_or(0),
        records: counts["records"].as_u64().unwrap_or(0),
    })
}

/// Runs `eddy run` on the file with `plugin` windowed as `window`; the
/// windows are the results its null sink counted, the records those its
/// source read (both from the run's last log line).
fn eddy_case(
    dir: &Path,
    csv: &Path,
    name: &'static str,
    plugin: &str,
    window: &str,
) -> anyhow::Result<Case> {
    let root = crate::project_root();
    let pipeline = format!(
        r#"[pipeline]
name = "vs-flink"

[checkpoint]
enabled = false

[sources.readings]
bounded_out_of_orderness_ms = 2000
[sources.readings.file]
path = {csv:?}
format = "csv"
key_field = "key"
time_field = "time"
csv = {{ columns = ["key", "time", "value"] }}

[operators.stats]
inputs = ["readings"]
plugin = {plugin:?}
params = {{ fields = ["value"] }}
{window}

[sinks.counted]
inputs = ["stats"]
[sinks.counted.null]
"#,
        csv = csv.display().to_string(),
        plugin = root
            .join(format!("target/plugins/{plugin}.wasm"))
            .display()
            .to_string(),
    );
    let file = dir.join("eddy.toml");
    std::fs::write(&file, pipeline)?;
    let state = dir.join("state");
    let _ = std::fs::remove_dir_all(&state);
    let mut command = Command::new(root.join("target/release/eddy"));
    command
        .arg("--state-dir")
        .arg(&state)
        .arg("run")
        .arg(&file)
        .env("EDDY_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (usage, log) = measure(command)?;
    let stopped = log
        .lines()
        .find(|l| l.contains("pipeline stopped"))
        .with_context(|| format!("eddy did not say it stopped:\n{log}"))?;
    let field = |name: &str| -> u64 {
        stopped
            .split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (windows, records) = (field("results_written"), field("records_in"));
    Ok(Case {
        name,
        usage,
        windows,
        records,
    })
}

/// Spawns `command` and waits for it, with what the kernel counted for it
/// and what it wrote to the one output that is piped.
fn measure(mut command: Command) -> anyhow::Result<(Usage, String)> {
    let started = Instant::now();
    let mut child = command.spawn().context("cannot start the benchmark run")?;
    let mut output = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut output)?;
    } else if let Some(mut err) = child.stderr.take() {
        std::io::Read::read_to_string(&mut err, &mut output)?;
    }
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for; both pointers are valid.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    ensure!(waited == pid, "wait4: {}", std::io::Error::last_os_error());
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the benchmark run failed (status {status})"
    );
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok((
        Usage {
            cpu: time(usage.ru_utime) + time(usage.ru_stime),
            wall,
            peak_rss_bytes: usage.ru_maxrss as u64 * 1024,
        },
        output,
    ))
}
