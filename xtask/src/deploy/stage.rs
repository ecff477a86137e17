//! A device's release, made on the build machine: eddy for its target, its
//! pipeline with the device's overrides, the plugins the pipeline names and
//! the keys it trusts, under a release id that is a digest of all of it
//! (the same content gives the same id, so deploying it again changes
//! nothing).
//!
//! ```text
//! eddy
//! pipelines/NAME.toml   plugin and key paths rewritten to ../plugins, ../keys
//! plugins/FILE
//! keys/FILE
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::inventory::{Plan, apply_overrides};

/// A release ready to ship.
#[derive(Debug, Clone)]
pub(crate) struct Staged {
    /// Its id: `r` and 12 hex digits of the digest of its files.
    pub(crate) id: String,
    /// Its files: path inside the release → content (the eddy binary
    /// shared by every release of a target).
    pub(crate) files: BTreeMap<String, Arc<[u8]>>,
    /// The pipeline, inside the release (`pipelines/NAME.toml`).
    pub(crate) pipeline: String,
    /// The pipeline's name (for `eddy plugin swap`).
    pub(crate) pipeline_name: String,
    /// Each operator's plugin, inside the release.
    pub(crate) operator_plugins: BTreeMap<String, String>,
}

/// FNV-1a, 64 bits: a digest that stays the same across builds of xtask.
fn fnv(hash: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *hash ^= u64::from(*b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

/// Where `file` goes in the release's `folder`, by its name.
fn ship(
    files: &mut BTreeMap<String, Arc<[u8]>>,
    folder: &str,
    file: &Path,
) -> anyhow::Result<String> {
    let name = file
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{} has no file name", file.display()))?
        .to_string_lossy()
        .into_owned();
    let content: Arc<[u8]> = std::fs::read(file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
        .into();
    let inside = format!("{folder}/{name}");
    if let Some(other) = files.get(&inside)
        && *other != content
    {
        anyhow::bail!("two different files are named {name}: rename one");
    }
    files.insert(inside.clone(), content);
    Ok(inside)
}

/// Makes `plan`'s release with `eddy`, the binary for its target (read
/// once for all its devices);
/// `plugin_for` gives the file shipped for a plugin the pipeline names (a
/// device without the compiler gets the target's precompiled bundle).
pub(crate) fn stage(
    plan: &Plan,
    eddy: &Arc<[u8]>,
    plugin_for: &dyn Fn(&Path) -> PathBuf,
) -> anyhow::Result<Staged> {
    let text = std::fs::read_to_string(&plan.pipeline)
        .map_err(|e| anyhow::anyhow!("{}: {e}", plan.pipeline.display()))?;
    let text = apply_overrides(&text, &plan.overrides)
        .map_err(|e| anyhow::anyhow!("device `{}`: {e}", plan.name))?;
    let mut doc: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", plan.pipeline.display()))?;
    let base = plan.pipeline.parent().unwrap_or(Path::new("."));
    let mut files = BTreeMap::new();
    let mut operator_plugins = BTreeMap::new();
    if let Some(operators) = doc.get_mut("operators").and_then(|o| o.as_table_mut()) {
        for (name, operator) in operators.iter_mut() {
            let Some(plugin) = operator.get_mut("plugin") else {
                continue;
            };
            let Some(path) = plugin.as_str() else {
                continue;
            };
            let inside = ship(&mut files, "plugins", &plugin_for(&base.join(path)))?;
            *plugin = toml::Value::String(format!("../{inside}"));
            operator_plugins.insert(name.clone(), inside);
        }
    }
    if let Some(keys) = doc
        .get_mut("trust")
        .and_then(|t| t.get_mut("keys"))
        .and_then(|k| k.as_array_mut())
    {
        for key in keys.iter_mut() {
            if let Some(path) = key.as_str() {
                let inside = ship(&mut files, "keys", &base.join(path))?;
                *key = toml::Value::String(format!("../{inside}"));
            }
        }
    }
    for extra in &plan.plugins {
        ship(&mut files, "plugins", &plugin_for(extra))?;
    }
    let stem = plan
        .pipeline
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "site".into());
    let pipeline_name = doc
        .get("pipeline")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map_or_else(|| stem.clone(), str::to_owned);
    let pipeline = format!("pipelines/{stem}.toml");
    let body = toml::to_string(&doc)?;
    files.insert(
        pipeline.clone(),
        format!(
            "# Made by cargo xtask deploy from {}.\n{body}",
            plan.pipeline.display()
        )
        .into_bytes()
        .into(),
    );
    files.insert("eddy".into(), eddy.clone());
    let mut hash = 0xcbf2_9ce4_8422_2325;
    for (path, content) in &files {
        fnv(&mut hash, path.as_bytes());
        fnv(&mut hash, &(content.len() as u64).to_le_bytes());
        fnv(&mut hash, content);
    }
    Ok(Staged {
        id: format!("r{:012x}", hash >> 16),
        files,
        pipeline,
        pipeline_name,
        operator_plugins,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dir: &Path, overrides: &[(&str, toml::Value)]) -> Plan {
        Plan {
            name: "a".into(),
            ssh: "a".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            groups: vec![],
            root: "/opt/eddy".into(),
            pipeline: dir.join("conf/site.toml"),
            plugins: vec![],
            overrides: overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            ssh_config: None,
            service: Default::default(),
        }
    }

    #[test]
    fn the_release_holds_what_the_pipeline_names_under_a_digest_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("conf")).unwrap();
        std::fs::create_dir_all(d.join("build")).unwrap();
        std::fs::write(d.join("build/stats.wasm"), b"\0asm-stats").unwrap();
        std::fs::write(d.join("fleet.pub"), b"key").unwrap();
        let eddy: Arc<[u8]> = Arc::from(&b"ELF"[..]);
        std::fs::write(
            d.join("conf/site.toml"),
            "[pipeline]\nname = \"room\"\n[trust]\nkeys = [\"../fleet.pub\"]\n\
             [operators.stats]\ninputs = [\"ups\"]\nplugin = \"../build/stats.wasm\"\nparams = { limit = 1 }\n",
        )
        .unwrap();
        let same = |p: &Path| p.to_owned();
        let a = stage(&plan(d, &[]), &eddy, &same).unwrap();
        assert_eq!(
            a.files.keys().collect::<Vec<_>>(),
            [
                "eddy",
                "keys/fleet.pub",
                "pipelines/site.toml",
                "plugins/stats.wasm"
            ]
        );
        assert_eq!(a.pipeline_name, "room");
        assert_eq!(a.operator_plugins["stats"], "plugins/stats.wasm");
        let shipped: toml::Table =
            toml::from_str(std::str::from_utf8(&a.files["pipelines/site.toml"]).unwrap()).unwrap();
        assert_eq!(
            shipped["operators"]["stats"]["plugin"].as_str(),
            Some("../plugins/stats.wasm")
        );
        assert_eq!(
            shipped["trust"]["keys"][0].as_str(),
            Some("../keys/fleet.pub")
        );
        // The same content, the same id; an override, another.
        assert_eq!(stage(&plan(d, &[]), &eddy, &same).unwrap().id, a.id);
        let b = stage(
            &plan(
                d,
                &[("operators.stats.params.limit", toml::Value::Integer(2))],
            ),
            &eddy,
            &same,
        )
        .unwrap();
        assert_ne!(b.id, a.id);
        // A device without the compiler gets the bundles instead.
        std::fs::write(d.join("build/stats.bundle"), b"bundle").unwrap();
        let bundles = |p: &Path| p.with_extension("bundle");
        let c = stage(&plan(d, &[]), &eddy, &bundles).unwrap();
        assert_eq!(&c.files["plugins/stats.bundle"][..], b"bundle");
    }
}
