//! `cargo xtask guests`: every folder of `guest-examples/` built as a plugin.

use std::path::PathBuf;

use anyhow::Context;
use xshell::{Shell, cmd};

use crate::prerequisites;

/// Where the plugins are collected.
pub(crate) const PLUGIN_DIR: &str = "target/plugins";

/// Builds the guests and returns the paths of the collected `.wasm` files.
pub(crate) fn run(sh: &Shell) -> anyhow::Result<Vec<PathBuf>> {
    prerequisites::rustup_target(sh, "wasm32-unknown-unknown")?;
    let mut packages = Vec::new();
    for entry in sh.read_dir("guest-examples")? {
        if entry.join("Cargo.toml").exists() {
            let name = entry
                .file_name()
                .context("guest folder without a name")?
                .to_string_lossy()
                .into_owned();
            packages.push(name);
        }
    }
    packages.sort();
    let cargo = crate::cargo();
    let package_args: Vec<String> = packages
        .iter()
        .flat_map(|p| ["-p".to_owned(), p.clone()])
        .collect();
    cmd!(
        sh,
        "{cargo} build --quiet --target wasm32-unknown-unknown --profile guest {package_args...}"
    )
    .run()?;
    sh.create_dir(PLUGIN_DIR)?;
    let mut plugins = Vec::new();
    for package in &packages {
        let file = format!("{}.wasm", package.replace('-', "_"));
        let from = PathBuf::from("target/wasm32-unknown-unknown/guest").join(&file);
        let to = PathBuf::from(PLUGIN_DIR).join(&file);
        sh.copy_file(&from, &to)?;
        plugins.push(to);
    }
    eprintln!("built {} plugins into {PLUGIN_DIR}/", plugins.len());
    Ok(plugins)
}
