//! Loading plugins, from a bare `.wasm` or a bundle, checked against the
//! host's trust settings before anything is decoded, compiled or deserialized.
//!
//! - With trusted keys, only bundles signed by one of them load; the
//!   signature is checked over the raw bytes first.
//! - A bundle's artifact for this host's target and engine fingerprint is
//!   deserialized (only after that check); otherwise the `.wasm` is compiled,
//!   or, on a host built without the compiler, the plugin is refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::bundle::{self, Bundle};
use super::compile::{CompileLimits, check_initial_sizes, check_size};
use super::module::checked_manifest;
use super::signing::{SigningError, TrustedKeys};
use super::{LoadError, PluginEngine, PluginModule};

/// Loads plugins for one engine and trust setting. Cheap to clone.
#[derive(Clone)]
pub struct Loader {
    engine: PluginEngine,
    trust: Option<Arc<TrustedKeys>>,
    /// Compile limits of plugins for no operator in particular.
    limits: CompileLimits,
    /// Compile limits per operator.
    operators: Arc<BTreeMap<String, CompileLimits>>,
}

impl Loader {
    /// A loader for `engine`; with `trust`, only signed bundles load.
    pub fn new(engine: PluginEngine, trust: Option<TrustedKeys>) -> Self {
        Loader {
            engine,
            trust: trust.map(Arc::new),
            limits: CompileLimits::default(),
            operators: Arc::default(),
        }
    }

    /// Compiles within `limits`, and within `operators`' for their plugins.
    pub fn with_limits(
        self,
        limits: CompileLimits,
        operators: BTreeMap<String, CompileLimits>,
    ) -> Self {
        Loader {
            limits,
            operators: Arc::new(operators),
            ..self
        }
    }

    /// The compile limits of `operator`'s plugins.
    pub fn limits_of(&self, operator: &str) -> &CompileLimits {
        self.operators.get(operator).unwrap_or(&self.limits)
    }

    /// The engine plugins are loaded into.
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// Reads and loads the plugin at `path`.
    pub fn load(&self, path: &Path) -> Result<PluginModule, LoadError> {
        self.load_bytes(&std::fs::read(path)?)
    }

    /// Loads a plugin from the bytes of a `.wasm` or a bundle the host was
    /// given (its files): without trusted keys, their precompiled code is
    /// trusted as the files are.
    pub fn load_bytes(&self, bytes: &[u8]) -> Result<PluginModule, LoadError> {
        self.load_with(bytes, Source::Files, &self.limits)
    }

    /// [`Loader::load_bytes`] for `operator`, within its compile limits.
    pub fn load_for(&self, operator: &str, bytes: &[u8]) -> Result<PluginModule, LoadError> {
        self.load_with(bytes, Source::Files, self.limits_of(operator))
    }

    /// Loads a plugin that arrived over the network (the local API). Its
    /// precompiled code, native code outside the sandbox, is used only when
    /// a key in `[trust]` signed it; otherwise its `.wasm` is compiled here,
    /// or, on a host without the compiler, the upload is refused.
    pub fn load_uploaded(&self, operator: &str, bytes: &[u8]) -> Result<PluginModule, LoadError> {
        self.load_with(bytes, Source::Network, self.limits_of(operator))
    }

    /// Refuses a plugin whose memory or table starts over every operator's cap.
    fn check_initial_sizes(&self, wasm: &[u8]) -> Result<(), LoadError> {
        match self.engine.bounds() {
            Some(bounds) => check_initial_sizes(wasm, bounds),
            None => Ok(()),
        }
    }

    fn load_with(
        &self,
        bytes: &[u8],
        source: Source,
        limits: &CompileLimits,
    ) -> Result<PluginModule, LoadError> {
        if !bundle::is_bundle(bytes) {
            if self.trust.is_some() {
                return Err(SigningError::Unsigned.into());
            }
            self.check_initial_sizes(bytes)?;
            return PluginModule::from_bytes(&self.engine, bytes, limits);
        }
        let bundle = Bundle::parse(bytes)?;
        if let Some(trust) = &self.trust {
            trust.verify(&bundle)?;
        }
        let body = bundle.view()?;
        check_size(body.wasm, limits)?;
        let manifest = checked_manifest(body.wasm)?;
        self.check_initial_sizes(body.wasm)?;
        if serde_json::from_str::<eddy_abi::Manifest>(body.manifest).ok() != Some(manifest.clone())
        {
            return Err(LoadError::ManifestMismatch);
        }
        let target = PluginEngine::host_target();
        let fingerprint = PluginEngine::fingerprint(target);
        // Signed by a trusted key (verified above), or the host's own files.
        let artifacts_trusted = self.trust.is_some() || source == Source::Files;
        if !artifacts_trusted && !body.artifacts.is_empty() {
            if !cfg!(feature = "compiler") {
                return Err(LoadError::UntrustedArtifact);
            }
            tracing::warn!(
                "an uploaded plugin's precompiled code is not signed by a trusted key; compiling its .wasm instead"
            );
        }
        if let Some(artifact) = body
            .artifacts
            .iter()
            .filter(|_| artifacts_trusted)
            .find(|a| a.target == target && a.engine == fingerprint)
        {
            // SAFETY: the bundle's signature verified above when this host
            // requires one; without trusted keys the host trusts its own
            // files, and only those.
            let loaded = unsafe {
                PluginModule::from_artifact(&self.engine, manifest, target, artifact.code)
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
        PluginModule::from_bytes(&self.engine, body.wasm, limits).map_err(|e| match e {
            LoadError::NeedsArtifact { target, engine, .. } => LoadError::NeedsArtifact {
                target,
                engine,
                have: describe_artifacts(&body.artifacts),
            },
            e => e,
        })
    }
}

/// Where plugin bytes come from: the trust they get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Files the host was given (the pipeline's, a swap kept before).
    Files,
    /// Bytes that arrived over the network.
    Network,
}

/// What artifacts a bundle has, for an error.
fn describe_artifacts(artifacts: &[bundle::ArtifactView<'_>]) -> String {
    if artifacts.is_empty() {
        return "its bundle has no precompiled artifacts".into();
    }
    let have: Vec<String> = artifacts
        .iter()
        .map(|a| format!("{} (engine {})", a.target, a.engine))
        .collect();
    format!("its bundle has artifacts for {}", have.join(", "))
}
