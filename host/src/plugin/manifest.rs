//! Reading a plugin's manifest from its custom section.

use eddy_abi::{MANIFEST_SECTION, Manifest};
use wasmparser::{Parser, Payload};

use super::LoadError;

/// Reads the [`Manifest`] from a module's bytes, without compiling it.
pub fn read_manifest(bytes: &[u8]) -> Result<Manifest, LoadError> {
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| LoadError::NotWasm(e.to_string()))?;
        if let Payload::CustomSection(section) = payload
            && section.name() == MANIFEST_SECTION
        {
            return serde_json::from_slice(section.data())
                .map_err(|e| LoadError::BadManifest(e.to_string()));
        }
    }
    Err(LoadError::NoManifest)
}
