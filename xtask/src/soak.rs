//! `cargo xtask soak`: resident memory of a long run with churning keys.
//!
//! Runs the release `eddy` on simulated devices that all report under new
//! keys every simulated minute (old keys never come back), through
//! `threshold-alert` (keyed state per key, with a state TTL) and
//! `window-stats`, checkpointing every second with the ingest journal on.
//! Samples the process's resident memory every 10 s and compares the last
//! minute with the second one: flat means within 10 %. With `--no-ttl` the
//! same run keeps every key's state, to show the growth the TTL prevents.
//! Writes `target/soak/rss.json`.

use std::time::{Duration, Instant};

use anyhow::bail;
use xshell::{Shell, cmd};

use crate::guests;

/// Resident memory may grow this much from the second minute to the last.
const FLAT: f64 = 0.10;

const PIPELINE: &str = r#"
[pipeline]
name = "soak"
dead_letter_path = "dead-letter.jsonl"

[checkpoint]
interval_ms = 1000

[sources.ups]
bounded_out_of_orderness_ms = 1000

[sources.ups.sim]
seed = 3
interval_ms = 1000
speed = 60
key_churn_ms = 60_000
ups = [{ name = "ups", strings = 20, cells_per_string = 50 }]

[operators.stats]
inputs = ["ups"]
plugin = "../plugins/window_stats.wasm"
params = { fields = ["temperature"] }
window.tumbling = { size_ms = 10_000 }

[operators.alerts]
inputs = ["ups"]
plugin = "../plugins/threshold_alert.wasm"
params = { field = "temperature", threshold = 1000.0 }
TTL

[sinks.none]
inputs = ["stats", "alerts"]
[sinks.none.null]
"#;

/// Runs the soak for `minutes`; fails if memory is not flat (with the TTL on).
pub(crate) fn run(sh: &Shell, minutes: u64, ttl: bool) -> anyhow::Result<()> {
    guests::run(sh)?;
    crate::prerequisites::host_build(sh)?;
    let cargo = crate::cargo();
    cmd!(sh, "{cargo} build --quiet --release -p eddy-host").run()?;
    let dir = sh.current_dir().join("target/soak");
    sh.remove_path(&dir)?;
    sh.create_dir(&dir)?;
    // Keys churn every simulated minute; state unwritten for two expires.
    let ttl_line = if ttl { "state_ttl_ms = 120_000" } else { "" };
    sh.write_file(dir.join("soak.toml"), PIPELINE.replace("TTL", ttl_line))?;
    let eddy = sh.current_dir().join("target/release/eddy");
    let mut child = std::process::Command::new(eddy)
        .args(["--state-dir", "state", "run", "soak.toml"])
        .args(["--duration", &format!("{minutes}m")])
        .current_dir(&dir)
        .env("EDDY_LOG", "warn")
        .spawn()?;
    let started = Instant::now();
    let mut samples: Vec<(u64, u64)> = Vec::new();
    eprintln!(
        "soak: {minutes} min, 1000 devices at 60x, new keys every simulated minute, TTL {}",
        if ttl { "2 min" } else { "off" }
    );
    while child.try_wait()?.is_none() {
        std::thread::sleep(Duration::from_secs(10));
        let Some(rss) = rss_kib(child.id()) else {
            continue;
        };
        let at = started.elapsed().as_secs();
        eprintln!("{at:>5} s  {:>8.1} MiB", rss as f64 / 1024.0);
        samples.push((at, rss));
    }
    if !child.wait()?.success() {
        bail!("eddy failed during the soak");
    }
    let window = |from: u64, to: u64| -> Vec<u64> {
        samples
            .iter()
            .filter(|(at, _)| (from..to).contains(at))
            .map(|(_, rss)| *rss)
            .collect()
    };
    let end = minutes * 60;
    let (second, last) = (window(60, 120), window(end.saturating_sub(60), end + 60));
    if second.is_empty() || last.is_empty() {
        bail!("too few samples: run the soak for at least 3 minutes");
    }
    let (second, last) = (median(second), median(last));
    let growth = last as f64 / second as f64 - 1.0;
    println!(
        "resident memory: {:.1} MiB in minute 2, {:.1} MiB in the last minute: {:+.1} %",
        second as f64 / 1024.0,
        last as f64 / 1024.0,
        growth * 100.0
    );
    sh.write_file(
        dir.join("rss.json"),
        serde_json::json!({
            "minutes": minutes,
            "ttl": ttl,
            "samples_s_kib": samples,
            "minute_2_kib": second,
            "last_minute_kib": last,
            "growth": growth,
        })
        .to_string(),
    )?;
    if ttl && growth > FLAT {
        bail!(
            "resident memory grew {:.1} % (more than 10 %)",
            growth * 100.0
        );
    }
    Ok(())
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}
