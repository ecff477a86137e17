//! `cargo xtask fuzz`: the fuzz properties (every test named `fuzz_…`: the
//! codec, the file source, the window assigners, the plugin ABI's decoders,
//! journal entries, snapshots, signed bundles, pipeline files, the BLE
//! decoders, Modbus points and plans) run pass after pass, each pass with
//! fresh random inputs, for a given time.

use std::time::{Duration, Instant};

use anyhow::bail;
use xshell::{Shell, cmd};

/// Runs passes of `cases` inputs per property until `minutes` have gone by.
pub(crate) fn run(sh: &Shell, minutes: u64, cases: u32) -> anyhow::Result<()> {
    crate::prerequisites::host_build(sh)?;
    let cargo = crate::cargo();
    cmd!(
        sh,
        "{cargo} test --quiet --workspace --lib --tests --no-run"
    )
    .run()?;
    let budget = Duration::from_secs(minutes * 60);
    let started = Instant::now();
    let (mut passes, mut properties) = (0u64, 0usize);
    while passes == 0 || started.elapsed() < budget {
        let output = cmd!(sh, "{cargo} test --workspace --lib --tests -- fuzz_")
            .env("PROPTEST_CASES", cases.to_string())
            .ignore_status()
            .quiet()
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
            bail!(
                "a fuzz property failed in pass {} (after {:.0} s); the smallest input is above",
                passes + 1,
                started.elapsed().as_secs_f64()
            );
        }
        properties = stdout
            .lines()
            .filter(|l| l.contains("fuzz_") && l.ends_with("... ok"))
            .count();
        if properties == 0 {
            bail!("no test named fuzz_… ran:\n{stdout}");
        }
        passes += 1;
    }
    let total = passes * properties as u64 * u64::from(cases);
    println!(
        "fuzz: {passes} passes of {properties} properties, {cases} inputs each: {total} inputs in {:.1} min, no failure",
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}
