//! Loading plugins, from a bare `.wasm` or a bundle, checked against the
//! host's trust settings before anything is decoded, compiled or deserialized.
//!
//! - With trusted keys, only bundles signed by one of them load; the
//!   signature is checked over the raw bytes first.
//! - A bundle's artifact for this host's target and engine fingerprint is
//!   deserialized (only after that check); otherwise the `.wasm` is compiled,
//!   or, on a host built without the compiler, the plugin is refused.

use std::path::Path;
use std::sync::Arc;

use super::bundle::{self, Bundle};
use super::module::checked_manifest;
use super::signing::{SigningError, TrustedKeys};
use super::{LoadError, PluginEngine, PluginModule};

/// Loads plugins for one engine and trust setting. Cheap to clone.
#[derive(Clone)]
pub struct Loader {
    engine: PluginEngine,
    trust: Option<Arc<TrustedKeys>>,
}

impl Loader {
    /// A loader for `engine`; with `trust`, only signed bundles load.
    pub fn new(engine: PluginEngine, trust: Option<TrustedKeys>) -> Self {
        Loader {
            engine,
            trust: trust.map(Arc::new),
        }
    }

    /// The engine plugins are loaded into.
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// Reads and loads the plugin at `path`.
    pub fn load(&self, path: &Path) -> Result<PluginModule, LoadError> {
        self.load_bytes(&std::fs::read(path)?)
    }

    /// Loads a plugin from the bytes of a `.wasm` or a bundle.
    pub fn load_bytes(&self, bytes: &[u8]) -> Result<PluginModule, LoadError> {
        if !bundle::is_bundle(bytes) {
            if self.trust.is_some() {
                return Err(SigningError::Unsigned.into());
            }
            return PluginModule::from_bytes(&self.engine, bytes);
        }
        let bundle = Bundle::parse(bytes)?;
        if let Some(trust) = &self.trust {
            trust.verify(&bundle)?;
        }
        let body = bundle.decode()?;
        let manifest = checked_manifest(&body.wasm)?;
        if serde_json::from_str::<eddy_abi::Manifest>(&body.manifest).ok() != Some(manifest.clone())
        {
            return Err(LoadError::ManifestMismatch);
        }
        let target = PluginEngine::host_target();
        let fingerprint = PluginEngine::fingerprint(target);
        if let Some(artifact) = body
            .artifacts
            .iter()
            .find(|a| a.target == target && a.engine == fingerprint)
        {
            // SAFETY: the bundle's signature verified above when this host
            // requires one; without trusted keys the host trusts its files.
            let loaded = unsafe {
                PluginModule::from_artifact(&self.engine, manifest, target, &artifact.code)
            };
            match loaded {
                Ok(module) => {
                    tracing::debug!(plugin = %module.manifest().name, target, "plugin loaded from its precompiled artifact");
                    return Ok(module.precompiled());
                }
                Err(e) if cfg!(feature = "compiler") => {
                    tracing::warn!("{e}; compiling the plugin's .wasm instead");
                }
                Err(e) => return Err(e),
            }
        } else if cfg!(feature = "compiler") && !body.artifacts.is_empty() {
            tracing::info!(
                target,
                engine = %fingerprint,
                "the plugin has no artifact for this host's engine; compiling its .wasm"
            );
        }
        PluginModule::from_bytes(&self.engine, &body.wasm).map_err(|e| match e {
            LoadError::NeedsArtifact { target, engine, .. } => LoadError::NeedsArtifact {
                target,
                engine,
                have: describe_artifacts(&body.artifacts),
            },
            e => e,
        })
    }
}

/// What artifacts a bundle has, for an error.
fn describe_artifacts(artifacts: &[bundle::Artifact]) -> String {
    if artifacts.is_empty() {
        return "its bundle has no precompiled artifacts".into();
    }
    let have: Vec<String> = artifacts
        .iter()
        .map(|a| format!("{} (engine {})", a.target, a.engine))
        .collect();
    format!("its bundle has artifacts for {}", have.join(", "))
}
