//! `cargo xtask precompile --target T [--key K]`: compiles every guest plugin
//! ahead of time for a device target, into `target/plugins/T/NAME.bundle`,
//! signed with the secret key `K` when given.
//!
//! The compiling `eddy` is the build machine's own, built with the `all-arch`
//! feature so that it has every target's code generator; it uses the very
//! engine settings the device's `eddy` will check the bundles against.

use std::path::{Path, PathBuf};

use xshell::{Shell, cmd};

use crate::build::Target;
use crate::guests;

/// Where the `all-arch` eddy that precompiles is built: by [`run`], and by
/// the tests (`--workspace --features eddy-host/all-arch`).
pub(crate) const COMPILER: &str = "target/debug/eddy";

/// Builds the guests and an `all-arch` eddy, then precompiles every plugin
/// for `target` (and signs it with `key`, if given); returns the bundles.
pub(crate) fn run(sh: &Shell, target: Target, key: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    crate::prerequisites::host_build(sh)?;
    let cargo = crate::cargo();
    cmd!(
        sh,
        "{cargo} build --quiet -p eddy-host --bin eddy --features all-arch"
    )
    .run()?;
    with(sh, Path::new(COMPILER), target, key)
}

/// Builds the guests, then precompiles them for `target` with `eddy`, an
/// `all-arch` build that is already there (the tests' own).
pub(crate) fn with(
    sh: &Shell,
    eddy: &Path,
    target: Target,
    key: Option<&Path>,
) -> anyhow::Result<Vec<PathBuf>> {
    if !sh.path_exists(eddy) {
        anyhow::bail!(
            "{} is missing: the precompiling eddy is built with the `all-arch` feature first",
            eddy.display()
        );
    }
    let plugins = guests::run(sh)?;
    let triple = target.triple();
    let out_dir = PathBuf::from("target/plugins").join(triple);
    sh.create_dir(&out_dir)?;
    let mut bundles = Vec::new();
    for plugin in plugins {
        let name = plugin
            .file_stem()
            .ok_or_else(|| anyhow::anyhow!("{} has no name", plugin.display()))?;
        let bundle = out_dir.join(name).with_extension("bundle");
        cmd!(
            sh,
            "{eddy} plugin precompile {plugin} --target {triple} --output {bundle}"
        )
        .quiet()
        .ignore_stdout()
        .run()?;
        if let Some(key) = key {
            cmd!(
                sh,
                "{eddy} plugin sign {bundle} --key {key} --output {bundle}"
            )
            .quiet()
            .ignore_stdout()
            .run()?;
        }
        bundles.push(bundle);
    }
    eprintln!(
        "precompiled {} plugins for {triple} into {}{}",
        bundles.len(),
        out_dir.display(),
        if key.is_some() {
            ", signed"
        } else {
            ", unsigned"
        }
    );
    Ok(bundles)
}
