//! A compiled plugin, checked and linked once, ready to instantiate.

use std::path::Path;

use eddy_abi::{ABI_VERSION, Manifest, OperatorKind, names};
use wasmtime::{ExternType, InstancePre, Linker, Module, ValType};

use super::PluginEngine;
#[cfg(feature = "compiler")]
use super::compile;
use super::compile::CompileLimits;
use super::imports::{self, StoreData};
use super::manifest::read_manifest;

/// Why a plugin cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read the plugin: {0}")]
    Read(#[from] std::io::Error),
    /// The bytes are not a WebAssembly module.
    #[error("not a WebAssembly module: {0}")]
    NotWasm(String),
    /// No manifest section.
    #[error(
        "no `{}` custom section: build the plugin with eddy-sdk",
        eddy_abi::MANIFEST_SECTION
    )]
    NoManifest,
    /// The manifest is not valid JSON of the right shape.
    #[error("malformed manifest: {0}")]
    BadManifest(String),
    /// Built for another ABI version.
    #[error(
        "plugin `{name}` was built for eddy ABI version {plugin}, but this host speaks ABI version {host}: rebuild it against eddy-sdk for ABI {host}"
    )]
    AbiMismatch {
        /// The plugin's name.
        name: String,
        /// The plugin's ABI version.
        plugin: u32,
        /// This host's ABI version.
        host: u32,
    },
    /// Cranelift could not compile it.
    #[error("does not compile: {0}")]
    Compile(String),
    /// Too large to compile.
    #[error("{what} has {bytes} bytes, over the limit of {limit} (`{setting}`)")]
    TooLarge {
        /// The module, or which function.
        what: String,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
        /// The setting that sets the limit.
        setting: &'static str,
    },
    /// Its memory or table starts larger than any operator may have.
    #[error("its {what} starts at {size} {unit}, over the cap of {limit} (`{setting}`)")]
    StartsTooLarge {
        /// `memory` or `table`.
        what: &'static str,
        /// What it starts at.
        size: u64,
        /// Bytes or elements.
        unit: &'static str,
        /// The cap.
        limit: usize,
        /// The setting that sets the cap.
        setting: &'static str,
    },
    /// Compiling it went past a limit on compile time or memory.
    #[error("is refused: {0}")]
    CompileLimit(String),
    /// This host has no compiler, and the plugin brings no artifact it can load.
    #[error(
        "this host was built without a compiler and runs only plugins precompiled for it \
         (target {target}, engine {engine}); {have}: precompile it on a build machine with \
         `eddy plugin precompile --target {target}` or `cargo xtask precompile --target {target}`"
    )]
    NeedsArtifact {
        /// This host's target.
        target: &'static str,
        /// This host's engine fingerprint.
        engine: String,
        /// What the plugin brings.
        have: String,
    },
    /// Precompiled code arrived over the network unsigned by a trusted key,
    /// and this host cannot compile the `.wasm` instead.
    #[error(
        "its precompiled code is not signed by a key in [trust] keys, and this host, built without a compiler, \
         runs uploaded plugins only from bundles signed by one"
    )]
    UntrustedArtifact,
    /// A precompiled artifact that does not load.
    #[error("its precompiled artifact for {target} does not load: {reason}")]
    Artifact {
        /// The artifact's target.
        target: String,
        /// Wasmtime's reason.
        reason: String,
    },
    /// The bundle is not readable.
    #[error(transparent)]
    Bundle(#[from] super::bundle::BundleError),
    /// The signature is missing, untrusted or wrong.
    #[error(transparent)]
    Signature(#[from] super::signing::SigningError),
    /// The bundle's manifest is not the one in its `.wasm`.
    #[error("the bundle's manifest differs from the one inside its .wasm")]
    ManifestMismatch,
    /// A required export is missing or has the wrong type.
    #[error("plugin `{name}` lacks the export `{export}` ({expected})")]
    MissingExport {
        /// The plugin's name.
        name: String,
        /// The export.
        export: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// An import the host does not provide.
    #[error("plugin `{name}` imports what this host does not provide: {detail}")]
    Link {
        /// The plugin's name.
        name: String,
        /// Wasmtime's account of the import.
        detail: String,
    },
}

/// Which guest entry point a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// `process`
    Process,
    /// `window`
    Window,
    /// `on_timer`
    OnTimer,
    /// `aggregate`
    Aggregate,
    /// `result`
    Result,
    /// `fold_result` (optional: see [`PluginModule::has_fold_result`])
    FoldResult,
}

impl Entry {
    /// The export's name.
    pub fn export(self) -> &'static str {
        match self {
            Entry::Process => names::PROCESS,
            Entry::Window => names::WINDOW,
            Entry::OnTimer => names::ON_TIMER,
            Entry::Aggregate => names::AGGREGATE,
            Entry::Result => names::RESULT,
            Entry::FoldResult => names::FOLD_RESULT,
        }
    }
}

/// Whether `types` are `n` `i32`s.
fn i32s(mut types: impl ExactSizeIterator<Item = ValType>, n: usize) -> bool {
    types.len() == n && types.all(|t| matches!(t, ValType::I32))
}

/// A plugin compiled for this host: its manifest, exports and `InstancePre`.
pub struct PluginModule {
    manifest: Manifest,
    exports: Vec<(String, String)>,
    /// Names of the host functions it imports.
    imports: Vec<String>,
    has_on_timer: bool,
    has_snapshot: bool,
    /// An aggregate exporting `fold_result` (plugins built with an older SDK do not).
    has_fold_result: bool,
    /// Whether it was loaded from a precompiled artifact.
    precompiled: bool,
    /// What an instance starts with: the largest memory (bytes) and table (elements) it declares.
    initial: InitialSizes,
    pre: InstancePre<StoreData>,
}

/// What an instance of a module starts with, before any code runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct InitialSizes {
    /// Its largest memory, in bytes.
    pub(crate) memory_bytes: u64,
    /// Its largest table, in elements.
    pub(crate) table_elements: u64,
}

impl PluginModule {
    /// Reads, checks and compiles the `.wasm` at `path`, within the default [`CompileLimits`].
    pub fn load(engine: &PluginEngine, path: &Path) -> Result<Self, LoadError> {
        Self::from_bytes(engine, &std::fs::read(path)?, &CompileLimits::default())
    }

    /// Checks and compiles a plugin from its `.wasm` bytes.
    ///
    /// The manifest and ABI version are checked before compiling, so a plugin
    /// for another ABI is refused with both versions named, whatever else is
    /// wrong with it. Its size and the size of each function are checked
    /// against `limits` before the compiler sees it (see [`CompileLimits`]).
    pub fn from_bytes(
        engine: &PluginEngine,
        bytes: &[u8],
        limits: &CompileLimits,
    ) -> Result<Self, LoadError> {
        let manifest = checked_manifest(bytes)?;
        #[cfg(feature = "compiler")]
        {
            compile::check_size(bytes, limits)?;
            let module = compile::compile(engine.engine(), bytes, limits)?;
            Self::from_module(engine, manifest, module)
        }
        #[cfg(not(feature = "compiler"))]
        {
            let _ = (engine, manifest, limits);
            Err(LoadError::NeedsArtifact {
                target: PluginEngine::host_target(),
                engine: PluginEngine::fingerprint(PluginEngine::host_target()),
                have: "it is a bare .wasm".into(),
            })
        }
    }

    /// Loads a plugin precompiled for this host, with the manifest of its `.wasm`.
    ///
    /// # Safety
    ///
    /// Wasmtime trusts precompiled code: `code` must come from
    /// `eddy plugin precompile`, which callers make sure of by verifying the
    /// bundle's signature first (or, on a host without trusted keys, by
    /// trusting the files it is given).
    pub(crate) unsafe fn from_artifact(
        engine: &PluginEngine,
        manifest: Manifest,
        target: &str,
        code: &[u8],
    ) -> Result<Self, LoadError> {
        // SAFETY: the caller vouches for `code`, as above.
        let module = unsafe { Module::deserialize(engine.engine(), code) }.map_err(|e| {
            LoadError::Artifact {
                target: target.to_owned(),
                reason: format!("{e:#}"),
            }
        })?;
        Self::from_module(engine, manifest, module)
    }

    /// Checks a compiled module's exports and links it.
    fn from_module(
        engine: &PluginEngine,
        manifest: Manifest,
        module: Module,
    ) -> Result<Self, LoadError> {
        let missing = |export, expected| LoadError::MissingExport {
            name: manifest.name.clone(),
            export,
            expected,
        };
        let func = |name: &str| matches!(module.get_export(name), Some(ExternType::Func(_)));
        if !matches!(
            module.get_export(names::MEMORY),
            Some(ExternType::Memory(_))
        ) {
            return Err(missing(names::MEMORY, "a memory"));
        }
        for (export, expected) in [
            (names::ALLOC, "func (i32) -> i32"),
            (names::DEALLOC, "func (i32, i32)"),
            (names::INIT, "func () -> i32"),
        ] {
            if !func(export) {
                return Err(missing(export, expected));
            }
        }
        let entry = manifest.kind.entry_point();
        if !func(entry) {
            return Err(missing(
                entry,
                "func (i32, i32) -> i32, as the manifest's kind requires",
            ));
        }
        if manifest.kind == OperatorKind::Aggregate && !func(names::RESULT) {
            return Err(missing(
                names::RESULT,
                "func (i32, i32) -> i32, as an aggregate requires",
            ));
        }
        if manifest.capabilities.timers && !func(names::ON_TIMER) {
            return Err(missing(
                names::ON_TIMER,
                "func (i32, i32) -> i32, as the manifest declares timers",
            ));
        }
        // Optional, but called with a `FoldResultInput` when present: an
        // export of that name with another type is refused here, not at
        // every start of an instance.
        let has_fold_result = manifest.kind == OperatorKind::Aggregate
            && match module.get_export(names::FOLD_RESULT) {
                Some(ExternType::Func(f)) => {
                    if !i32s(f.params(), 2) || !i32s(f.results(), 1) {
                        return Err(missing(
                            names::FOLD_RESULT,
                            "func (i32, i32) -> i32, as an aggregate's optional `fold_result` is",
                        ));
                    }
                    true
                }
                _ => false,
            };
        let has_snapshot = func(names::SNAPSHOT);
        if has_snapshot != func(names::RESTORE) {
            let (export, expected) = if has_snapshot {
                (
                    names::RESTORE,
                    "func (i32, i32) -> i32, as the plugin exports `snapshot`",
                )
            } else {
                (
                    names::SNAPSHOT,
                    "func () -> i32, as the plugin exports `restore`",
                )
            };
            return Err(missing(export, expected));
        }
        let mut linker = Linker::new(engine.engine());
        imports::define(&mut linker).map_err(|e| LoadError::Link {
            name: manifest.name.clone(),
            detail: format!("{e:#}"),
        })?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Link {
                name: manifest.name.clone(),
                detail: format!("{e:#}"),
            })?;
        let exports = module
            .exports()
            .map(|e| (e.name().to_owned(), describe(&e.ty())))
            .collect();
        let resources = module.resources_required();
        let initial = InitialSizes {
            memory_bytes: resources
                .max_initial_memory_size
                .unwrap_or(0)
                .saturating_mul(1 << 16),
            table_elements: resources.max_initial_table_size.unwrap_or(0),
        };
        Ok(PluginModule {
            initial,
            imports: module.imports().map(|i| i.name().to_owned()).collect(),
            has_on_timer: func(names::ON_TIMER),
            has_snapshot,
            has_fold_result,
            precompiled: false,
            manifest,
            exports,
            pre,
        })
    }

    /// Marks it as loaded from a precompiled artifact.
    pub(crate) fn precompiled(self) -> Self {
        PluginModule {
            precompiled: true,
            ..self
        }
    }

    /// Whether it was loaded from a precompiled artifact rather than compiled here.
    pub fn is_precompiled(&self) -> bool {
        self.precompiled
    }

    /// What the plugin says about itself.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The plugin's kind.
    pub fn kind(&self) -> OperatorKind {
        self.manifest.kind
    }

    /// Every export, as `(name, type)`.
    pub fn exports(&self) -> &[(String, String)] {
        &self.exports
    }

    /// Names of the host functions (module `eddy`) it imports.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// Whether the plugin handles timers.
    pub fn has_on_timer(&self) -> bool {
        self.has_on_timer
    }

    /// Whether the plugin keeps state in its own memory, saved with `snapshot`.
    pub fn has_snapshot(&self) -> bool {
        self.has_snapshot
    }

    /// Whether it is an aggregate that folds fired windows and emits their
    /// results in one `fold_result` call.
    pub fn has_fold_result(&self) -> bool {
        self.has_fold_result
    }

    /// What an instance starts with.
    pub(crate) fn initial(&self) -> InitialSizes {
        self.initial
    }

    pub(crate) fn pre(&self) -> &InstancePre<StoreData> {
        &self.pre
    }
}

/// The manifest of a `.wasm`, refused if it is for another ABI version.
pub(crate) fn checked_manifest(wasm: &[u8]) -> Result<Manifest, LoadError> {
    let manifest = read_manifest(wasm)?;
    if manifest.abi_version != ABI_VERSION {
        return Err(LoadError::AbiMismatch {
            name: manifest.name,
            plugin: manifest.abi_version,
            host: ABI_VERSION,
        });
    }
    Ok(manifest)
}

/// A short, readable description of an export's type.
fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => {
            let params: Vec<String> = f.params().map(|p| p.to_string()).collect();
            let results: Vec<String> = f.results().map(|r| r.to_string()).collect();
            format!("func ({}) -> ({})", params.join(", "), results.join(", "))
        }
        ExternType::Memory(m) => format!("memory ({} pages minimum)", m.minimum()),
        ExternType::Global(g) => format!("global {}", g.content()),
        ExternType::Table(t) => format!("table of {}", t.element()),
        ExternType::Tag(_) => "tag".to_owned(),
    }
}
