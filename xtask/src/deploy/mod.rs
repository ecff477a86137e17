//! `cargo xtask deploy`: eddy, its pipelines and plugins to a fleet.
//!
//! The device side is in `deploy/`: `eddy-start` (what the service runs:
//! the boot counter and the rollback of a release that never becomes
//! healthy) and `eddy.service` (the systemd unit). [`inventory`] reads the
//! fleet.

pub(crate) mod inventory;

use std::path::Path;

use inventory::{Inventory, Plan, apply_overrides};

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

/// `cargo xtask deploy`.
pub(crate) fn run(
    inventory: &Path,
    devices: &[String],
    group: Option<&str>,
    plan: bool,
) -> anyhow::Result<()> {
    let plans = choose(Inventory::load(inventory)?, devices, group)?;
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
    if !plan {
        anyhow::bail!("shipping to devices is not built yet: `--plan` shows what would go where");
    }
    Ok(())
}
