//! Loading plugins: from a `.wasm` file or bytes, checked against this
//! host's trust settings before anything is compiled or deserialized.

use std::path::Path;

use super::{LoadError, PluginEngine, PluginModule};

/// Loads plugins for one engine. Cheap to clone.
#[derive(Clone)]
pub struct Loader {
    engine: PluginEngine,
}

impl Loader {
    /// A loader for `engine`.
    pub fn new(engine: PluginEngine) -> Self {
        Loader { engine }
    }

    /// The engine plugins are loaded into.
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// Reads and loads the plugin at `path`.
    pub fn load(&self, path: &Path) -> Result<PluginModule, LoadError> {
        self.load_bytes(&std::fs::read(path)?)
    }

    /// Loads a plugin from its bytes.
    pub fn load_bytes(&self, bytes: &[u8]) -> Result<PluginModule, LoadError> {
        PluginModule::from_bytes(&self.engine, bytes)
    }
}
