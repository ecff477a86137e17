//! `eddy keys gen`, `eddy plugin sign` and `eddy plugin precompile`: making
//! plugin bundles for devices.

use std::path::{Path, PathBuf};

use super::Failure;
#[cfg(feature = "compiler")]
use crate::plugin::PluginEngine;
use crate::plugin::bundle::{self, Bundle, BundleBody};
use crate::plugin::read_manifest;
use crate::plugin::signing::{self, SecretKey};

/// Makes a key pair in `dir`.
pub(crate) fn keys_gen(dir: &Path, name: &str) -> Result<(), Failure> {
    let (secret, public, id) = signing::generate(dir, name).map_err(Failure::usage)?;
    println!("key {id}");
    println!("  secret: {} (keep it off devices)", secret.display());
    println!(
        "  public: {} (list it in [trust] keys on devices)",
        public.display()
    );
    Ok(())
}

/// The body of a `.wasm` or bundle file: a bundle's own (its signature
/// dropped), or a new one around a bare `.wasm`.
fn body_of(file: &Path) -> Result<BundleBody, Failure> {
    let bytes =
        std::fs::read(file).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    let at_file = |e: &dyn std::fmt::Display| Failure::usage(format!("{}: {e}", file.display()));
    if bundle::is_bundle(&bytes) {
        return Bundle::parse(&bytes)
            .and_then(|b| b.decode())
            .map_err(|e| at_file(&e));
    }
    let manifest = read_manifest(&bytes).map_err(|e| at_file(&e))?;
    Ok(BundleBody {
        manifest: serde_json::to_string(&manifest).map_err(|e| at_file(&e))?,
        wasm: bytes,
        artifacts: Vec::new(),
    })
}

/// `plugin.wasm` → `plugin.bundle`.
fn default_output(file: &Path) -> PathBuf {
    file.with_extension("bundle")
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes).map_err(|e| Failure::runtime(format!("{}: {e}", path.display())))
}

/// Signs a `.wasm` or bundle (with whatever artifacts it has) with `key`.
pub(crate) fn sign(file: &Path, key: &Path, output: Option<&Path>) -> Result<(), Failure> {
    let key = SecretKey::read(key).map_err(Failure::usage)?;
    let body = body_of(file)?;
    let out = output.map_or_else(|| default_output(file), Path::to_owned);
    write(&out, &bundle::encode(&body, |m| Some(key.sign(m))))?;
    let targets: Vec<&str> = body.artifacts.iter().map(|a| a.target.as_str()).collect();
    println!(
        "signed {} with key {} → {} (artifacts: {})",
        file.display(),
        key.id(),
        out.display(),
        if targets.is_empty() {
            "none".into()
        } else {
            targets.join(", ")
        }
    );
    Ok(())
}

/// Compiles a plugin ahead of time for `targets`; writes an unsigned bundle.
#[cfg(feature = "compiler")]
pub(crate) fn precompile(
    file: &Path,
    targets: &[String],
    output: Option<&Path>,
) -> Result<(), Failure> {
    let mut body = body_of(file)?;
    for target in targets {
        let engine = PluginEngine::precompiler(target).map_err(|e| {
            Failure::usage(format!(
                "cannot compile for {target}: {e:#} (a host built with the `all-arch` feature compiles for every target)"
            ))
        })?;
        let code = engine
            .precompile_module(&body.wasm)
            .map_err(|e| Failure::usage(format!("{}: {e:#}", file.display())))?;
        body.artifacts.retain(|a| &a.target != target);
        body.artifacts.push(bundle::Artifact {
            target: target.clone(),
            engine: PluginEngine::fingerprint(target),
            code,
        });
    }
    let out = output.map_or_else(|| default_output(file), Path::to_owned);
    write(&out, &bundle::encode(&body, |_| None))?;
    println!(
        "precompiled {} for {} → {} (unsigned: sign it with `eddy plugin sign`)",
        file.display(),
        targets.join(", "),
        out.display()
    );
    Ok(())
}
