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
//!
//! A compaction holds a lock beside the store (`NAME.eddy-lock`) from start
//! to end, and an open takes it while it looks for one to finish: an open
//! during a compaction (a service restarted in a loop) waits for it instead
//! of taking its copy for one left behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The lock beside a store that a compaction holds; see the module's notes.
/// Given up when dropped.
#[derive(Debug)]
pub(crate) struct CompactionLock {
    _file: Option<File>,
}

/// Waits for and takes the compaction lock of the store in `dir`; a
/// compaction makes the lock file (`make`), an open only takes one that is
/// there (no compaction ever ran: none is running). Where there is no
/// folder to put it in, or one eddy may not write to, no compaction can run
/// either: nothing is locked then. The file is left in place: removing it
/// while another process waits on it would let a third lock a new one.
pub(crate) fn lock(dir: &Path, make: bool) -> io::Result<CompactionLock> {
    let Some(path) = beside(dir, "eddy-lock") else {
        return Ok(CompactionLock { _file: None });
    };
    let file = match OpenOptions::new()
        .create(make)
        .truncate(false)
        .write(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound
                    | io::ErrorKind::PermissionDenied
                    | io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            return Ok(CompactionLock { _file: None });
        }
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::warn!(path = %dir.display(), "waiting for a compaction of the state directory to end");
            file.lock()?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    Ok(CompactionLock { _file: Some(file) })
}

/// The folders a compaction of `dir` works in, beside it: the compacted
/// copy being made, and the store it replaces. `None` for a path without a
/// folder name (`/`, `..`).
pub(crate) fn compaction_dirs(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    Some((
        beside(dir, "eddy-compacting")?,
        beside(dir, "eddy-compacted")?,
    ))
}

/// `NAME.SUFFIX` beside the store `dir`; `None` for a path without a
/// folder name.
fn beside(dir: &Path, suffix: &str) -> Option<PathBuf> {
    let name = dir.file_name()?.to_string_lossy();
    Some(dir.with_file_name(format!("{name}.{suffix}")))
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
fn move_host_files(from: &Path, to: &Path) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::StateStore;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn an_open_waits_for_a_running_compaction() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        drop(StateStore::open(&dir).unwrap());
        // A compaction has made its copy and let the database go.
        let held = lock(&dir, true).unwrap();
        let (fresh, _) = compaction_dirs(&dir).unwrap();
        std::fs::create_dir_all(&fresh).unwrap();
        let (opened, waited) = mpsc::channel();
        let opening = dir.clone();
        let open = std::thread::spawn(move || {
            let store = StateStore::open(&opening).map(drop);
            opened.send(()).unwrap();
            store
        });
        assert!(
            waited.recv_timeout(Duration::from_millis(300)).is_err(),
            "the open went on during the compaction"
        );
        assert!(fresh.exists(), "the compaction's copy is left alone");
        drop(held);
        waited.recv_timeout(Duration::from_secs(10)).unwrap();
        open.join().unwrap().unwrap();
        // The compaction did not finish: its leftover copy is cleared.
        assert!(!fresh.exists());
    }

    #[test]
    fn no_lock_where_none_can_be_made() {
        assert!(lock(Path::new("/"), true).unwrap()._file.is_none());
        let missing = Path::new("/nonexistent-eddy-parent/state");
        assert!(lock(missing, true).unwrap()._file.is_none());
        // An open makes none.
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        assert!(lock(&dir, false).unwrap()._file.is_none());
        drop(StateStore::open(&dir).unwrap());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }
}
