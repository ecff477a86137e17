//! `cargo xtask deploy`: eddy, its pipelines and plugins to a fleet.
//!
//! The device side is in `deploy/`: `eddy-start` (what the service runs:
//! the boot counter and the rollback of a release that never becomes
//! healthy) and `eddy.service` (the systemd unit). [`inventory`] reads the
//! fleet, [`stage`] makes each device's release, [`device`] ships it over
//! SSH, switches, restarts and judges it ([`health`]), [`summary`] prints
//! the outcome.
//!
//! With `--plugins-only`, the plugins go into the running pipelines as hot
//! swaps through each device's local API (no restart, no record lost),
//! with the same health check, swapped back when it fails; the release
//! with them becomes `current` only once healthy, so a restart runs them
//! too.
//!
//! Devices are deployed in waves: the `[rollout] canary` group first, then
//! the rest, each wave `parallel` devices at a time; once more than
//! `max_failures` devices have failed, the devices not reached yet are
//! skipped.

pub(crate) mod device;
pub(crate) mod health;
pub(crate) mod inventory;
pub(crate) mod stage;
pub(crate) mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use xshell::Shell;

use crate::build::Target;
use device::{Outcome, Verdict};
use inventory::{Inventory, Plan, Rollout, apply_overrides};
use stage::Staged;

/// The devices of `plans` that `devices` or `group` choose (all without
/// either); an unknown device name is an error.
pub(crate) fn choose(
    plans: Vec<Plan>,
    devices: &[String],
    group: Option<&str>,
) -> anyhow::Result<Vec<Plan>> {
    if let Some(unknown) = devices
        .iter()
        .find(|d| !plans.iter().any(|p| &p.name == *d))
    {
        anyhow::bail!("the inventory has no device `{unknown}`");
    }
    let chosen: Vec<Plan> = plans
        .into_iter()
        .filter(|p| devices.is_empty() || devices.contains(&p.name))
        .filter(|p| group.is_none_or(|g| p.groups.iter().any(|x| x == g)))
        .collect();
    if chosen.is_empty() {
        anyhow::bail!("no device of the inventory is chosen");
    }
    Ok(chosen)
}

/// What `cargo xtask deploy` was asked.
#[derive(Debug)]
pub(crate) struct Options {
    /// The inventory file.
    pub(crate) inventory: PathBuf,
    /// Only these devices.
    pub(crate) devices: Vec<String>,
    /// Only this group.
    pub(crate) group: Option<String>,
    /// Print the plan and stop.
    pub(crate) plan: bool,
    /// Ship this eddy binary instead of building one per target.
    pub(crate) eddy: Option<PathBuf>,
    /// Sign the precompiled plugins with this secret key.
    pub(crate) key: Option<PathBuf>,
    /// Swap plugins into the running pipelines through each device's API
    /// instead of restarting.
    pub(crate) plugins_only: bool,
}

/// The eddy binary and the plugin files each target gets.
struct Artifacts {
    eddy: PathBuf,
    /// Where a target's precompiled bundles are (None: ship `.wasm` files
    /// as they are, for an eddy with the compiler).
    bundles: Option<PathBuf>,
}

fn artifacts(
    sh: &Shell,
    plans: &[Plan],
    options: &Options,
) -> anyhow::Result<BTreeMap<String, Artifacts>> {
    let mut out = BTreeMap::new();
    let targets: std::collections::BTreeSet<&str> =
        plans.iter().map(|p| p.target.as_str()).collect();
    if let Some(eddy) = &options.eddy {
        if targets.len() > 1 {
            anyhow::bail!(
                "--eddy ships one binary, and the chosen devices have targets {}",
                targets.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
        for target in targets {
            out.insert(
                target.to_owned(),
                Artifacts {
                    eddy: eddy.canonicalize()?,
                    bundles: None,
                },
            );
        }
        return Ok(out);
    }
    for target in targets {
        let t = if target == Target::Aarch64.triple() {
            Target::Aarch64
        } else {
            Target::X86_64
        };
        let eddy = crate::build::run(sh, t, false)?;
        crate::precompile::run(sh, t, options.key.as_deref())?;
        out.insert(
            target.to_owned(),
            Artifacts {
                eddy: sh.current_dir().join(eddy),
                bundles: Some(sh.current_dir().join("target/plugins").join(target)),
            },
        );
    }
    Ok(out)
}

/// `cargo xtask deploy`.
pub(crate) fn run(sh: &Shell, options: &Options) -> anyhow::Result<()> {
    let (plans, rollout) = Inventory::load(&options.inventory)?;
    let plans = choose(plans, &options.devices, options.group.as_deref())?;
    if options.plan {
        for p in &plans {
            let text = std::fs::read_to_string(&p.pipeline)?;
            apply_overrides(&text, &p.overrides)
                .map_err(|e| anyhow::anyhow!("device `{}`: {e}", p.name))?;
            println!(
                "{:<16} {:<28} {:<28} {} ({} plugins{}) -> {}",
                p.name,
                p.ssh,
                p.target,
                p.pipeline.display(),
                p.plugins.len(),
                if p.overrides.is_empty() {
                    String::new()
                } else {
                    format!(", {} overrides", p.overrides.len())
                },
                p.root
            );
        }
        return Ok(());
    }
    let artifacts = artifacts(sh, &plans, options)?;
    let mut binaries: BTreeMap<&str, Arc<[u8]>> = BTreeMap::new();
    for (target, a) in &artifacts {
        let bytes =
            std::fs::read(&a.eddy).map_err(|e| anyhow::anyhow!("{}: {e}", a.eddy.display()))?;
        binaries.insert(target, bytes.into());
    }
    let mut staged = Vec::new();
    for plan in &plans {
        let a = &artifacts[&plan.target];
        let bundles = a.bundles.clone();
        let plugin_for = move |p: &Path| -> PathBuf {
            match (&bundles, p.extension().and_then(|e| e.to_str())) {
                (Some(dir), Some("wasm")) => dir
                    .join(p.file_stem().unwrap_or_default())
                    .with_extension("bundle"),
                _ => p.to_owned(),
            }
        };
        staged.push((
            plan.clone(),
            stage::stage(plan, &binaries[plan.target.as_str()], &plugin_for)?,
        ));
    }
    let started = Instant::now();
    let outcomes = rollout_waves(staged, &rollout, options.plugins_only)?;
    let elapsed = started.elapsed();
    print!("{}", summary::table(&outcomes, elapsed));
    let bad = outcomes
        .iter()
        .filter(|o| !matches!(o.verdict, Verdict::Updated | Verdict::Unchanged))
        .count();
    if bad > 0 {
        anyhow::bail!(
            "{bad} of {} devices do not run the new release",
            outcomes.len()
        );
    }
    Ok(())
}

/// The waves: the canary group, then the rest.
fn waves(staged: Vec<(Plan, Staged)>, rollout: &Rollout) -> Vec<Vec<(Plan, Staged)>> {
    match &rollout.canary {
        Some(canary) => {
            let (first, rest): (Vec<_>, Vec<_>) = staged
                .into_iter()
                .partition(|(p, _)| p.groups.contains(canary));
            [first, rest]
                .into_iter()
                .filter(|w| !w.is_empty())
                .collect()
        }
        None => vec![staged],
    }
}

fn rollout_waves(
    staged: Vec<(Plan, Staged)>,
    rollout: &Rollout,
    plugins_only: bool,
) -> anyhow::Result<Vec<Outcome>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let progress = MultiProgress::new();
    let style = ProgressStyle::with_template("{spinner} {prefix:<16} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut outcomes = Vec::new();
    // Devices failed so far: once past max_failures, a device whose turn
    // comes is skipped, in this wave and the next.
    let failed = Arc::new(AtomicUsize::new(0));
    for wave in waves(staged, rollout) {
        let failures = failed.load(Ordering::SeqCst);
        if failures > rollout.max_failures {
            outcomes.extend(
                wave.into_iter()
                    .map(|(plan, release)| skipped(plan.name, release.id, failures, rollout)),
            );
            continue;
        }
        let limit = Arc::new(tokio::sync::Semaphore::new(rollout.parallel));
        let tasks: Vec<_> = wave
            .into_iter()
            .map(|(plan, release)| {
                let bar = progress.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(plan.name.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar.set_message("waiting");
                let (limit, rollout, failed) = (limit.clone(), rollout.clone(), failed.clone());
                let (device, id) = (plan.name.clone(), release.id.clone());
                let handle = runtime.spawn(async move {
                    let _turn = limit.acquire_owned().await;
                    let failures = failed.load(Ordering::SeqCst);
                    if failures > rollout.max_failures {
                        let outcome = skipped(plan.name, release.id, failures, &rollout);
                        bar.finish_with_message(summary::short(&outcome));
                        return outcome;
                    }
                    let mode = if plugins_only {
                        device::Mode::PluginsOnly
                    } else {
                        device::Mode::Full
                    };
                    let outcome = device::deploy(&plan, &release, &rollout, &bar, mode).await;
                    if matches!(outcome.verdict, Verdict::RolledBack | Verdict::Failed) {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                    bar.finish_with_message(summary::short(&outcome));
                    outcome
                });
                (device, id, handle)
            })
            .collect();
        for (device, id, task) in tasks {
            let outcome = runtime.block_on(task).unwrap_or_else(|e| {
                failed.fetch_add(1, Ordering::SeqCst);
                Outcome {
                    device,
                    old: None,
                    new: id,
                    verdict: Verdict::Failed,
                    health: "-".into(),
                    error: Some(format!("the deploy to it stopped: {e}")),
                    elapsed: Duration::ZERO,
                }
            });
            outcomes.push(outcome);
        }
    }
    Ok(outcomes)
}

/// A device the rollout did not reach.
fn skipped(device: String, new: String, failures: usize, rollout: &Rollout) -> Outcome {
    Outcome {
        device,
        old: None,
        new,
        verdict: Verdict::Skipped,
        health: "-".into(),
        error: Some(format!(
            "the rollout stopped: {failures} devices failed (max_failures = {})",
            rollout.max_failures
        )),
        elapsed: Duration::ZERO,
    }
}
