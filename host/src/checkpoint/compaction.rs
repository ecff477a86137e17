//! The folders of a store's compaction, and finishing one that was cut short.
//!
//! `eddy state compact` copies the database into a folder beside the store
//! (`NAME.eddy-compacting`), then renames the store to `NAME.eddy-compacted`
//! and the copy to the store's name, moves the host's files (outboxes,
//! journals, kept plugin swaps) from the replaced store into the new one,
//! and removes the replaced one. A power cut can stop it between any two of
//! these steps; whoever opens the store next (a run or a state command)
//! finishes or undoes it first, so that no run starts on an empty store
//! while the real one waits beside it.

use std::io;
use std::path::{Path, PathBuf};

/// The folders a compaction of `dir` works in, beside it: the compacted
/// copy being made, and the store it replaces. `None` for a path without a
/// folder name (`/`, `..`).
pub(crate) fn compaction_dirs(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let name = dir.file_name()?.to_string_lossy();
    let beside = |suffix: &str| dir.with_file_name(format!("{name}.{suffix}"));
    Some((beside("eddy-compacting"), beside("eddy-compacted")))
}

/// sled's own files in a store's folder. Everything else there (sinks'
/// outboxes, the journals, kept plugin swaps, the API's files) is the
/// host's, beside the database, and moves with the store.
fn is_database_file(name: &str) -> bool {
    matches!(name, "conf" | "db" | "blobs") || name.starts_with("snap.")
}

/// Whether `dir` holds a database.
fn has_database(dir: &Path) -> bool {
    dir.join("db").exists()
}

/// Moves the host's files (not the database's) from `from` into `to`,
/// where `to` has none of that name.
pub(crate) fn move_host_files(from: &Path, to: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if !is_database_file(&name.to_string_lossy()) && !to.join(&name).exists() {
            std::fs::rename(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// Before the database of `dir` is opened: a compaction stopped between
/// its two renames left the store under the replaced name, and no database
/// (or an empty folder) in `dir`. Puts it back; says whether it did.
pub(crate) fn put_back_replaced(dir: &Path) -> io::Result<bool> {
    let Some((_, old)) = compaction_dirs(dir) else {
        return Ok(false);
    };
    if !has_database(&old) || has_database(dir) {
        return Ok(false);
    }
    if dir.exists() {
        // Empty, or it would hold a database: fails otherwise, and the
        // folders are left for the operator to look at.
        std::fs::remove_dir(dir)?;
    }
    std::fs::rename(&old, dir)?;
    Ok(true)
}

/// After the database of `dir` is opened (so no compaction of it is
/// copying): moves the host's files left in the replaced store into `dir`
/// and removes it, and removes a partial copy. Says whether there was
/// anything to finish.
pub(crate) fn finish(dir: &Path) -> io::Result<bool> {
    let Some((fresh, old)) = compaction_dirs(dir) else {
        return Ok(false);
    };
    let mut finished = false;
    if old.exists() {
        move_host_files(&old, dir)?;
        std::fs::remove_dir_all(&old)?;
        finished = true;
    }
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh)?;
        finished = true;
    }
    Ok(finished)
}
