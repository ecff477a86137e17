//! The inventory: the devices a deploy reaches, in a TOML file.
//!
//! ```toml
//! [defaults]
//! root = "/opt/eddy"                      # where releases live on the device
//! target = "aarch64-unknown-linux-gnu"
//! pipeline = "examples/ups-monitor.toml"  # the pipeline each device runs
//! plugins = ["target/plugins/window_stats.wasm", "target/plugins/threshold_alert.wasm"]
//!
//! ssh_config = "ssh_config"              # optional: `ssh -F` for every device
//!
//! [rollout]
//! canary = "canary"         # this group first; the rest only if it went well
//! max_failures = 0          # stop the rollout once more devices than this fail
//! parallel = 8              # devices deployed at once
//! health_timeout_s = 60     # a new release must be healthy within this
//! settle_s = 5              # and stay healthy this long
//!
//! [devices.site-7]
//! ssh = "root@10.0.7.2"
//! groups = ["canary"]
//! # Settings of the pipeline file changed for this device only.
//! overrides = { "sources.meter.modbus.tcp" = "10.0.7.5:502" }
//! # Without systemd: how eddy-start is restarted, and where its log is
//! # ({root} is the device's root).
//! service = { restart = "sv restart /etc/service/eddy", logs = "tail -n 40 {root}/service.log" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// The whole inventory file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Inventory {
    /// What every device gets unless it says otherwise.
    #[serde(default)]
    pub(crate) defaults: Defaults,
    /// How the rollout goes.
    #[serde(default)]
    pub(crate) rollout: Rollout,
    /// The devices, by name.
    pub(crate) devices: BTreeMap<String, Spanned<Device>>,
}

/// `[rollout]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rollout {
    /// The group deployed first, as a wave of its own; the other devices
    /// follow only if it stayed within `max_failures`.
    pub(crate) canary: Option<String>,
    /// The rollout stops once more devices than this have failed (and been
    /// rolled back); the devices not reached yet are skipped.
    #[serde(default)]
    pub(crate) max_failures: usize,
    /// Devices deployed at once.
    #[serde(default = "default_parallel")]
    pub(crate) parallel: usize,
    /// A new release must be healthy within this many seconds of its start.
    #[serde(default = "default_health_timeout_s")]
    pub(crate) health_timeout_s: u64,
    /// And then stay healthy this many seconds (a release that crashes
    /// soon after starting is caught).
    #[serde(default = "default_settle_s")]
    pub(crate) settle_s: u64,
}

fn default_parallel() -> usize {
    8
}

fn default_health_timeout_s() -> u64 {
    60
}

fn default_settle_s() -> u64 {
    5
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            canary: None,
            max_failures: 0,
            parallel: default_parallel(),
            health_timeout_s: default_health_timeout_s(),
            settle_s: default_settle_s(),
        }
    }
}

/// How eddy runs as a service on a device.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Service {
    /// The command that restarts eddy-start. Without it, systemd: the unit
    /// is installed as `/etc/systemd/system/eddy.service` and restarted
    /// with `systemctl`. `{root}` is the device's root.
    pub(crate) restart: Option<String>,
    /// The command that prints eddy's last log lines (default
    /// `journalctl -u eddy -n 40 --no-pager`).
    pub(crate) logs: Option<String>,
}

/// `[defaults]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Defaults {
    /// Where releases live on the device (default `/opt/eddy`).
    pub(crate) root: Option<String>,
    /// The target triple eddy is built for.
    pub(crate) target: Option<Spanned<String>>,
    /// The pipeline file each device runs, relative to the inventory.
    pub(crate) pipeline: Option<Spanned<String>>,
    /// Plugin files shipped with the pipeline, relative to the inventory,
    /// besides those its operators name.
    #[serde(default)]
    pub(crate) plugins: Vec<Spanned<String>>,
    /// An SSH configuration file for every device (`ssh -F`), relative to
    /// the inventory.
    pub(crate) ssh_config: Option<Spanned<String>>,
    /// How eddy runs as a service.
    #[serde(default)]
    pub(crate) service: Service,
}

/// `[devices.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Device {
    /// The SSH destination: `user@host` or `host`, or a `Host` of the SSH
    /// configuration.
    pub(crate) ssh: String,
    /// Overrides `[defaults] target`.
    pub(crate) target: Option<Spanned<String>>,
    /// Groups it belongs to, for `--group` and canary waves.
    #[serde(default)]
    pub(crate) groups: Vec<String>,
    /// Overrides `[defaults] root`.
    pub(crate) root: Option<String>,
    /// Overrides `[defaults] pipeline`.
    pub(crate) pipeline: Option<Spanned<String>>,
    /// Overrides `[defaults] plugins`.
    pub(crate) plugins: Option<Vec<Spanned<String>>>,
    /// Settings of the pipeline file changed for this device: dotted paths
    /// to values.
    #[serde(default)]
    pub(crate) overrides: BTreeMap<String, toml::Value>,
    /// Overrides `[defaults] service`.
    pub(crate) service: Option<Service>,
}

/// The targets eddy is built for.
pub(crate) const TARGETS: [&str; 2] = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"];

/// What one device gets, resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// Its name.
    pub(crate) name: String,
    /// Its SSH destination.
    pub(crate) ssh: String,
    /// Its target triple.
    pub(crate) target: String,
    /// Its groups.
    pub(crate) groups: Vec<String>,
    /// Where releases live on it.
    pub(crate) root: String,
    /// The pipeline file.
    pub(crate) pipeline: PathBuf,
    /// The plugin files.
    pub(crate) plugins: Vec<PathBuf>,
    /// Settings changed in its pipeline.
    pub(crate) overrides: BTreeMap<String, toml::Value>,
    /// `ssh -F` file.
    pub(crate) ssh_config: Option<PathBuf>,
    /// How eddy runs as a service there.
    pub(crate) service: Service,
}

/// A mistake in the inventory, at its place.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub(crate) struct InventoryError {
    file: PathBuf,
    line: usize,
    column: usize,
    message: String,
}

fn located(file: &Path, text: &str, offset: usize, message: impl Into<String>) -> InventoryError {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    InventoryError {
        file: file.to_owned(),
        line,
        column,
        message: message.into(),
    }
}

impl Inventory {
    /// Reads and checks the inventory at `file`; every device resolved.
    pub(crate) fn load(file: &Path) -> Result<(Vec<Plan>, Rollout), InventoryError> {
        let text = std::fs::read_to_string(file).map_err(|e| InventoryError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            message: e.to_string(),
        })?;
        Self::parse(file, &text)
    }

    /// Checks the inventory `text` (read from `file`).
    pub(crate) fn parse(file: &Path, text: &str) -> Result<(Vec<Plan>, Rollout), InventoryError> {
        let inventory: Inventory = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            located(file, text, at, e.message())
        })?;
        let base = file.parent().unwrap_or(Path::new("."));
        let d = &inventory.defaults;
        let rollout = &inventory.rollout;
        if rollout.parallel == 0 {
            return Err(located(file, text, 0, "[rollout] parallel is at least 1"));
        }
        let ssh_config = match &d.ssh_config {
            Some(c) => {
                let path = base.join(c.get_ref());
                if !path.exists() {
                    return Err(located(
                        file,
                        text,
                        c.span().start,
                        format!("no SSH configuration file {}", path.display()),
                    ));
                }
                Some(path)
            }
            None => None,
        };
        let mut plans = Vec::new();
        for (name, device) in &inventory.devices {
            let at = device.span().start;
            let device = device.get_ref();
            let target = device.target.as_ref().or(d.target.as_ref());
            let target = match target {
                Some(t) if TARGETS.contains(&t.get_ref().as_str()) => t.get_ref().clone(),
                Some(t) => {
                    return Err(located(
                        file,
                        text,
                        t.span().start,
                        format!("target is one of {}", TARGETS.join(", ")),
                    ));
                }
                None => TARGETS[0].to_owned(),
            };
            let Some(pipeline) = device.pipeline.as_ref().or(d.pipeline.as_ref()) else {
                return Err(located(
                    file,
                    text,
                    at,
                    format!("device `{name}` has no pipeline (set it here or in [defaults])"),
                ));
            };
            let pipeline_path = base.join(pipeline.get_ref());
            if !pipeline_path.exists() {
                return Err(located(
                    file,
                    text,
                    pipeline.span().start,
                    format!("no pipeline file {}", pipeline_path.display()),
                ));
            }
            let plugins = device.plugins.as_ref().unwrap_or(&d.plugins);
            let mut plugin_paths = Vec::new();
            for plugin in plugins {
                let path = base.join(plugin.get_ref());
                if !path.exists() {
                    return Err(located(
                        file,
                        text,
                        plugin.span().start,
                        format!(
                            "no plugin file {} (cargo xtask guests builds them)",
                            path.display()
                        ),
                    ));
                }
                plugin_paths.push(path);
            }
            if device.ssh.is_empty() {
                return Err(located(
                    file,
                    text,
                    at,
                    format!("device `{name}` has no ssh destination"),
                ));
            }
            plans.push(Plan {
                name: name.clone(),
                ssh: device.ssh.clone(),
                target,
                groups: device.groups.clone(),
                root: device
                    .root
                    .clone()
                    .or_else(|| d.root.clone())
                    .unwrap_or_else(|| "/opt/eddy".into()),
                pipeline: pipeline_path,
                plugins: plugin_paths,
                overrides: device.overrides.clone(),
                ssh_config: ssh_config.clone(),
                service: device.service.clone().unwrap_or_else(|| d.service.clone()),
            });
        }
        if let Some(canary) = &rollout.canary
            && !plans.iter().any(|p| p.groups.contains(canary))
        {
            return Err(located(
                file,
                text,
                0,
                format!("[rollout] canary: no device is in group `{canary}`"),
            ));
        }
        Ok((plans, inventory.rollout))
    }
}

/// `text` (a pipeline file) with `overrides` applied: each dotted path set
/// to its value, tables made where missing.
pub(crate) fn apply_overrides(
    text: &str,
    overrides: &BTreeMap<String, toml::Value>,
) -> Result<String, String> {
    if overrides.is_empty() {
        return Ok(text.to_owned());
    }
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    for (path, value) in overrides {
        let names: Vec<&str> = path.split('.').collect();
        let (last, tables) = names.split_last().ok_or("an empty override path")?;
        let mut table = &mut doc;
        for name in tables {
            let entry = table
                .entry((*name).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry
                .as_table_mut()
                .ok_or_else(|| format!("override `{path}`: `{name}` is not a table"))?;
        }
        table.insert((*last).to_owned(), value.clone());
    }
    toml::to_string(&doc).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("site.toml"),
            "[pipeline]\nname = \"site\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("stats.wasm"), b"\0asm").unwrap();
        dir
    }

    #[test]
    fn devices_take_the_defaults_unless_they_say_otherwise() {
        let dir = folder();
        let file = dir.path().join("fleet.toml");
        let (plans, rollout) = Inventory::parse(
            &file,
            r#"
[defaults]
pipeline = "site.toml"
plugins = ["stats.wasm"]
[devices.a]
ssh = "root@10.0.0.1"
groups = ["canary"]
[devices.b]
ssh = "root@10.0.0.2"
target = "aarch64-unknown-linux-gnu"
root = "/srv/eddy"
overrides = { "sources.meter.modbus.tcp" = "10.0.7.5:502" }
"#,
        )
        .unwrap();
        assert_eq!(plans.len(), 2);
        assert_eq!(rollout, Rollout::default());
        assert_eq!(plans[0].target, "x86_64-unknown-linux-gnu");
        assert_eq!(plans[0].root, "/opt/eddy");
        assert_eq!(plans[0].groups, ["canary"]);
        assert_eq!(plans[1].target, "aarch64-unknown-linux-gnu");
        assert_eq!(plans[1].root, "/srv/eddy");
        assert_eq!(plans[1].plugins, [dir.path().join("stats.wasm")]);
        assert_eq!(
            plans[1].overrides["sources.meter.modbus.tcp"].as_str(),
            Some("10.0.7.5:502")
        );
    }

    #[test]
    fn mistakes_name_their_place() {
        let dir = folder();
        let file = dir.path().join("fleet.toml");
        let error = |text: &str| Inventory::parse(&file, text).unwrap_err().to_string();
        let unknown = error("[devices.a]\nssh = \"x\"\npipeline = \"site.toml\"\nport = 22\n");
        assert!(
            unknown.contains("fleet.toml:4:1") && unknown.contains("unknown field `port`"),
            "{unknown}"
        );
        let target =
            error("[devices.a]\nssh = \"x\"\npipeline = \"site.toml\"\ntarget = \"mips\"\n");
        assert!(
            target.contains("fleet.toml:4:10") && target.contains("target is one of"),
            "{target}"
        );
        let missing = error("[devices.a]\nssh = \"x\"\npipeline = \"nope.toml\"\n");
        assert!(
            missing.contains("fleet.toml:3:12") && missing.contains("no pipeline file"),
            "{missing}"
        );
        let plugin = error(
            "[devices.a]\nssh = \"x\"\npipeline = \"site.toml\"\nplugins = [\"gone.wasm\"]\n",
        );
        assert!(
            plugin.contains("fleet.toml:4:12") && plugin.contains("cargo xtask guests"),
            "{plugin}"
        );
    }

    #[test]
    fn overrides_set_settings_of_the_pipeline_file() {
        let mut overrides = BTreeMap::new();
        overrides.insert(
            "sources.meter.modbus.tcp".to_owned(),
            toml::Value::from("10.0.7.5:502"),
        );
        overrides.insert("pipeline.name".to_owned(), toml::Value::from("site-7"));
        let text = "[pipeline]\nname = \"site\"\n[sources.meter.modbus]\ntcp = \"127.0.0.1:502\"\ntimeout_ms = 400\n";
        let out: toml::Table = toml::from_str(&apply_overrides(text, &overrides).unwrap()).unwrap();
        assert_eq!(
            out["sources"]["meter"]["modbus"]["tcp"].as_str(),
            Some("10.0.7.5:502")
        );
        assert_eq!(
            out["sources"]["meter"]["modbus"]["timeout_ms"].as_integer(),
            Some(400)
        );
        assert_eq!(out["pipeline"]["name"].as_str(), Some("site-7"));
        let mut bad = BTreeMap::new();
        bad.insert("pipeline.name.first".to_owned(), toml::Value::from(1));
        assert!(
            apply_overrides(text, &bad)
                .unwrap_err()
                .contains("is not a table")
        );
    }
}
