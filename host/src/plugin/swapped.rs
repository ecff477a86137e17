//! Plugin versions swapped in at run time, kept in the state directory so
//! that a restart (a reboot, a crash) runs them again rather than the older
//! version the pipeline file names, until the file deploys something else.
//!
//! Per pipeline and operator: `swapped/PIPELINE/OPERATOR.plugin` (the bytes
//! that were uploaded, `.wasm` or bundle) and `OPERATOR.json`, which records
//! the SHA-256 of the file the pipeline named at the time. When that file's
//! content has changed since, the file wins and the kept version is dropped.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::files::write_atomically;

/// What is kept about a swapped-in version.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// The SHA-256 of the pipeline file's plugin when the swap was kept.
    replaces_sha256: String,
    /// The swapped-in version, for logs.
    version: String,
}

/// The swapped-in versions of one pipeline's operators.
#[derive(Debug, Clone)]
pub struct SwappedPlugins {
    dir: PathBuf,
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An operator's name as a file name.
fn file_name(operator: &str) -> String {
    operator
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl SwappedPlugins {
    /// The swapped-in versions of `pipeline`, under `state_dir`.
    pub fn new(state_dir: &Path, pipeline: &str) -> Self {
        SwappedPlugins {
            dir: state_dir.join("swapped").join(file_name(pipeline)),
        }
    }

    fn paths(&self, operator: &str) -> (PathBuf, PathBuf) {
        let name = file_name(operator);
        (
            self.dir.join(format!("{name}.plugin")),
            self.dir.join(format!("{name}.json")),
        )
    }

    /// Keeps `plugin` (version `version`) as `operator`'s, in place of the
    /// pipeline file's plugin whose content is `file_bytes`.
    pub fn keep(
        &self,
        operator: &str,
        plugin: &[u8],
        version: &str,
        file_bytes: &[u8],
    ) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let (plugin_path, record_path) = self.paths(operator);
        let record = Record {
            replaces_sha256: sha256(file_bytes),
            version: version.to_owned(),
        };
        write_atomically(&plugin_path, plugin)?;
        write_atomically(
            &record_path,
            &serde_json::to_vec(&record).map_err(io::Error::other)?,
        )
    }

    /// The plugin to run for `operator` instead of the file's (whose content
    /// is `file_bytes`), with its version: a swapped-in version kept while
    /// the file has not changed. A kept version the file has since replaced
    /// is dropped.
    pub fn take_over(&self, operator: &str, file_bytes: &[u8]) -> Option<(Vec<u8>, String)> {
        let (plugin_path, record_path) = self.paths(operator);
        let record: Record = serde_json::from_slice(&std::fs::read(&record_path).ok()?).ok()?;
        if record.replaces_sha256 != sha256(file_bytes) {
            tracing::info!(
                operator,
                swapped_in = %record.version,
                "the pipeline file's plugin changed since a swap; running the file's"
            );
            self.forget(operator);
            return None;
        }
        Some((std::fs::read(plugin_path).ok()?, record.version))
    }

    /// Drops what is kept for `operator`.
    pub fn forget(&self, operator: &str) {
        let (plugin_path, record_path) = self.paths(operator);
        let _ = std::fs::remove_file(record_path);
        let _ = std::fs::remove_file(plugin_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_version_takes_over_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let swapped = SwappedPlugins::new(dir.path(), "site");
        assert!(swapped.take_over("counts", b"v1").is_none());
        swapped.keep("counts", b"v2", "0.2.0", b"v1").unwrap();
        assert_eq!(
            swapped.take_over("counts", b"v1"),
            Some((b"v2".to_vec(), "0.2.0".to_owned()))
        );
        assert!(swapped.take_over("other", b"v1").is_none());
        // The file now deploys v3: it wins, and the kept version is gone.
        assert!(swapped.take_over("counts", b"v3").is_none());
        assert!(swapped.take_over("counts", b"v1").is_none());
    }
}

/// Where swaps that pass probation are kept, so that a restart runs them:
/// the store, and each operator's plugin file in the pipeline (a kept
/// version runs until that file's content changes).
#[derive(Clone)]
pub struct KeptSwaps {
    /// The store.
    pub store: SwappedPlugins,
    /// Operator → the plugin file the pipeline names.
    pub files: std::collections::BTreeMap<String, std::path::PathBuf>,
}

impl KeptSwaps {
    /// Keeps `plugin` (version `version`) as `operator`'s.
    pub fn keep(&self, operator: &str, plugin: &[u8], version: &str) -> io::Result<()> {
        let file = self.files.get(operator).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no operator `{operator}`"))
        })?;
        let file_bytes = std::fs::read(file)?;
        self.store.keep(operator, plugin, version, &file_bytes)
    }
}
