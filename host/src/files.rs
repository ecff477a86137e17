//! Small file-writing helpers shared by the API's token, signing keys and
//! kept plugin versions.

use std::io::{self, Write};
use std::path::Path;

/// Whether a written file must survive a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lasting {
    /// Synced to disk before the write returns: a signing key.
    Synced,
    /// Only for the running process, which writes it afresh when it starts
    /// again (the API's token): no sync, which on an SD card can take tens
    /// of milliseconds of a cold start.
    ThisRun,
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &Path, bytes: &[u8], lasting: Lasting) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    match lasting {
        Lasting::Synced => file.sync_all(),
        Lasting::ThisRun => Ok(()),
    }
}

/// Writes `bytes` to `path` through a temporary file, so that a crash leaves
/// the old content or the new, never half of it.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// A name as one folder name: letters, digits, `-` and `_` as they are,
/// every other byte as `%XX` (so no name reaches outside its folder).
pub(crate) fn folder_name(name: &str) -> String {
    let mut folder = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            folder.push(b as char);
        } else {
            folder.push_str(&format!("%{b:02X}"));
        }
    }
    folder
}
