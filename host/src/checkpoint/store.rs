//! The state store: checkpoints' manifests in a sled database, their
//! operator state blobs and the ingest journal in files beside it.
//!
//! Layout, per pipeline `P`:
//! - `P/checkpoints` (a tree): manifest by checkpoint id (big-endian `u64`);
//! - `checkpoints/P/ID.state` (files, see [`super::state_files`]): each
//!   checkpoint's operator blobs, back to back in manifest order. Older
//!   versions kept them in the trees `P/op/OPERATOR`, by checkpoint id and
//!   part (`u64` + `u32`, big endian), cut in parts of [`PART_BYTES`]:
//!   those are still read, and removed with their checkpoints;
//! - `journal/P/` (files, see [`super::journal_log`]): groups of
//!   ingest-journal entries, each with the sequence number of its last
//!   entry; a group is its entries back to back, each as its sequence number
//!   and its length-prefixed bytes. Older versions kept them in the tree
//!   `P/journal`; they are moved to the files when the pipeline is opened.
//!
//! A checkpoint writes its blobs first (synced) and its manifest last, then
//! flushes.
//! The manifest names the blobs' lengths and CRCs: a checkpoint whose manifest
//! is missing, or whose manifest or blobs do not match, is not used, and the
//! one before it is.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sled::Tree;

use super::compaction;
use super::journal_log::{JOURNAL_DIR, JournalLog};
use super::manifest::{Manifest, OperatorCheckpoint};
use super::state_files::{BlobReader, CHECKPOINT_DIR, StateFileWriter, StateFiles};
use super::streamed::DecodeError;

/// The most memory sled keeps pages of the database in.
const CACHE_BYTES: u64 = 16 << 20;

/// How long opening waits for another holder of the database's lock to
/// let go of it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether sled could not open the database because something holds its
/// lock. sled says so only in its message (an `io::Error` of kind `Other`,
/// "could not acquire lock on …").
fn is_locked(error: &sled::Error) -> bool {
    match error {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::WouldBlock
                || io.to_string().starts_with("could not acquire lock")
        }
        _ => false,
    }
}

/// The folder, inside the store's, of sinks' outboxes.
pub(crate) const OUTBOX_DIR: &str = "outbox";

/// Older versions stored state blobs in parts of at most this many bytes.
pub const PART_BYTES: usize = 4 << 20;

/// Why the state store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process has the database open.
    #[error(
        "state directory {} is in use by another eddy process (one eddy runs per state directory)",
        path.display()
    )]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// sled failed.
    #[error("state store {}: {error}", path.display())]
    Sled {
        /// The directory.
        path: PathBuf,
        /// sled's error.
        error: sled::Error,
    },
    /// The ingest journal's files could not be read or written.
    #[error("ingest journal {}: {error}", path.display())]
    Journal {
        /// The journal's folder.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// A compaction cut short could not be finished or undone.
    #[error("state directory {}: finishing a compaction that was cut short: {error}", path.display())]
    Compaction {
        /// The directory.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// A checkpoint's state file could not be read or written.
    #[error("checkpoint state {}: {error}", path.display())]
    StateFile {
        /// The pipeline's folder of state files.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
}

/// The host's state database: one per host, shared by its pipelines.
#[derive(Clone)]
pub struct StateStore {
    db: sled::Db,
    path: PathBuf,
    /// The journals of the pipelines opened, one per pipeline however often
    /// it is opened.
    journals: Arc<Mutex<HashMap<String, Arc<Mutex<JournalLog>>>>>,
}

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// What it holds does not match its manifest (a checksum, a length), or
    /// its manifest is missing or unreadable: verified damage, so an older
    /// checkpoint may be used instead.
    #[error("{0}")]
    Damaged(String),
    /// The store could not be read: nothing is known about the checkpoint.
    #[error(transparent)]
    Store(StoreError),
}

/// Checkpoints found damaged, newest first, with what was wrong with each.
pub type Damaged = Vec<(u64, String)>;

/// A checkpoint's state, decoded as it was read.
#[derive(Debug)]
pub struct Decoded<T> {
    /// Its manifest.
    pub manifest: Manifest,
    /// What the decoder made of each operator's blob, in manifest order
    /// (`None` for a blob it passed over).
    pub states: Vec<Option<T>>,
}

/// Why the newest checkpoint that reads back whole cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The store could not be read: nothing is known about the checkpoint.
    #[error(transparent)]
    Store(StoreError),
    /// An operator's blob is as it was written (its length and CRC match
    /// its manifest) yet does not decode.
    #[error("state of operator `{operator}`: {reason}")]
    Undecodable {
        /// The operator.
        operator: String,
        /// What the decoder said.
        reason: String,
    },
}

/// What decodes an operator's blob: given the checkpoint's manifest, the
/// operator's entry in it, and a reader of the blob (which may be left
/// unread, to pass over it).
pub type BlobDecoder<'d, T> =
    dyn FnMut(&Manifest, &OperatorCheckpoint, &mut dyn Read) -> Result<Option<T>, DecodeError> + 'd;

/// A checkpoint read back whole.
#[derive(Debug)]
pub struct Loaded {
    /// Its manifest.
    pub manifest: Manifest,
    /// Each operator's state blob, in manifest order.
    pub blobs: Vec<Vec<u8>>,
}

impl StateStore {
    /// Opens (creating if needed) the database in `dir`, first finishing
    /// or undoing a compaction of it that was cut short (and waiting for
    /// one that is running).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let lock = compaction::lock(dir, false).map_err(|error| StoreError::Compaction {
            path: dir.to_owned(),
            error,
        })?;
        Self::open_holding(dir, &lock)
    }

    /// [`StateStore::open`] by the holder of the compaction lock.
    pub(crate) fn open_holding(
        dir: &Path,
        _lock: &compaction::CompactionLock,
    ) -> Result<Self, StoreError> {
        let compaction_failed = |error| StoreError::Compaction {
            path: dir.to_owned(),
            error,
        };
        if compaction::put_back_replaced(dir).map_err(compaction_failed)? {
            tracing::warn!(
                path = %dir.display(),
                "a compaction of the state directory was cut short: the store it was replacing is put back"
            );
        }
        let config = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(500))
            // sled caches up to 1 GiB by default: an outbox's backlog on
            // disk would grow the process with it.
            .cache_capacity(CACHE_BYTES);
        // A store just closed holds its lock until sled's background
        // threads let go of the file (and a process until it has exited):
        // a moment's wait, before saying the directory is in use.
        let waiting = std::time::Instant::now();
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(error) if is_locked(&error) => {
                    if waiting.elapsed() >= LOCK_WAIT {
                        return Err(StoreError::Locked {
                            path: dir.to_owned(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(error) => {
                    return Err(StoreError::Sled {
                        path: dir.to_owned(),
                        error,
                    });
                }
            }
        };
        if compaction::finish(dir).map_err(compaction_failed)? {
            tracing::warn!(
                path = %dir.display(),
                "a compaction of the state directory was cut short: finished"
            );
        }
        Ok(StateStore {
            db,
            path: dir.to_owned(),
            journals: Arc::default(),
        })
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder of sinks' outboxes (their segment files), inside the
    /// store's folder.
    pub(crate) fn outbox_dir(&self) -> PathBuf {
        self.path.join(OUTBOX_DIR)
    }

    /// The database, for the parts of the host that keep trees of their
    /// own in it (sinks' outboxes).
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    pub(crate) fn fail(&self, error: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.path.clone(),
            error,
        }
    }

    /// The trees of pipeline `name`.
    pub fn pipeline(&self, name: &str) -> Result<PipelineStore, StoreError> {
        let tree = |suffix: &str| {
            self.db
                .open_tree(format!("{name}/{suffix}"))
                .map_err(|e| self.fail(e))
        };
        Ok(PipelineStore {
            store: self.clone(),
            name: name.to_owned(),
            files: StateFiles::new(
                self.path
                    .join(CHECKPOINT_DIR)
                    .join(crate::files::folder_name(name)),
            ),
            checkpoints: tree("checkpoints")?,
            journal: self.journal(name, &tree("journal")?)?,
            #[cfg(test)]
            fail_reads: Arc::default(),
        })
    }

    /// The folder of pipeline `name`'s journal.
    pub(crate) fn journal_dir(&self, name: &str) -> PathBuf {
        self.path
            .join(JOURNAL_DIR)
            .join(crate::files::folder_name(name))
    }

    /// The journal of pipeline `name`, opened once; groups an older version
    /// kept in the tree `older` are moved to it first.
    fn journal(&self, name: &str, older: &Tree) -> Result<Arc<Mutex<JournalLog>>, StoreError> {
        let mut journals = self.journals.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(journal) = journals.get(name) {
            return Ok(journal.clone());
        }
        let dir = self.journal_dir(name);
        let mut journal = JournalLog::open(&dir).map_err(|error| StoreError::Journal {
            path: dir.clone(),
            error,
        })?;
        if !older.is_empty() {
            self.move_older_journal(&mut journal, older)?;
        }
        let journal = Arc::new(Mutex::new(journal));
        journals.insert(name.to_owned(), journal.clone());
        Ok(journal)
    }

    /// Moves the groups an older version kept in the tree `older` to
    /// `journal`. They are the journal from their first entry on: a version
    /// that kept them there ran after the files were written (a rollback),
    /// or a move was cut short. Files from that entry on are cut (the
    /// entries before it of a group the cut goes through are kept), and the
    /// groups appended, until the tree is cleared.
    fn move_older_journal(&self, journal: &mut JournalLog, older: &Tree) -> Result<(), StoreError> {
        let dir = journal.dir().to_owned();
        let failed = |error| StoreError::Journal {
            path: dir.clone(),
            error,
        };
        let Some((key, first)) = older.first().map_err(|e| self.fail(e))? else {
            return Ok(());
        };
        let first_entry = eddy_abi::decode::Reader::new(&first)
            .varint()
            .unwrap_or_else(|_| id_of(&key));
        let through = journal
            .groups_after(first_entry.saturating_sub(1))
            .map_err(failed)?
            .into_iter()
            .next();
        journal.cut_from(first_entry).map_err(failed)?;
        if let Some((_, through)) = through {
            let mut kept = JournalGroup::default();
            let mut reader = eddy_abi::decode::Reader::new(&through);
            let mut last = None;
            while let (Ok(n), Ok(entry)) = (reader.varint(), reader.bytes())
                && n < first_entry
            {
                kept.push(n, entry);
                last = Some(n);
            }
            if let Some(last) = last {
                journal.append(last, &kept.bytes).map_err(failed)?;
            }
        }
        for group in older.iter() {
            let (key, group) = group.map_err(|e| self.fail(e))?;
            journal.append(id_of(&key), &group).map_err(failed)?;
        }
        journal.sync().map_err(failed)?;
        older.clear().map_err(|e| self.fail(e))?;
        self.flush()
    }

    /// Names of the pipelines that have checkpoints.
    pub fn pipelines(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .db
            .tree_names()
            .iter()
            .filter_map(|n| std::str::from_utf8(n).ok()?.strip_suffix("/checkpoints"))
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(drop).map_err(|e| self.fail(e))
    }

    /// Bytes the database and the checkpoints' state files take on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.database_bytes() + folder_bytes(&self.path.join(CHECKPOINT_DIR))
    }

    /// Bytes the database alone takes on disk (what a compaction shrinks).
    pub fn database_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Copies every tree into a fresh database at `dir` (the way to give
    /// back the space of deleted data; see `eddy state compact`).
    pub fn copy_to(&self, dir: &Path) -> Result<StateStore, StoreError> {
        let copy = StateStore::open(dir)?;
        copy.db.import(self.db.export());
        copy.flush()?;
        Ok(copy)
    }
}

/// Bytes of the files in `dir` and its folders (0 if there is none).
fn folder_bytes(dir: &Path) -> u64 {
    let Ok(items) = std::fs::read_dir(dir) else {
        return 0;
    };
    items
        .filter_map(Result::ok)
        .map(|item| match item.metadata() {
            Ok(m) if m.is_dir() => folder_bytes(&item.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Journal entries gathered to be appended as one value: each its number
/// and its bytes (length first).
#[derive(Debug, Default)]
pub struct JournalGroup {
    bytes: Vec<u8>,
    entries: usize,
    /// The length of the last entry written in place: the next is likely
    /// as long, so its length likely takes as many bytes.
    last_len: usize,
}

impl JournalGroup {
    /// Adds entry number `seq`.
    pub fn push(&mut self, seq: u64, entry: &[u8]) {
        eddy_abi::encode::varint(seq, &mut self.bytes);
        eddy_abi::encode::bytes(entry, &mut self.bytes);
        self.entries += 1;
    }

    /// Adds entry number `seq`, which `write` appends to the buffer it is
    /// given: the entry is written in place, not copied in.
    pub fn push_with(&mut self, seq: u64, write: impl FnOnce(&mut Vec<u8>)) {
        use eddy_abi::encode::{varint, varint_len};
        varint(seq, &mut self.bytes);
        let at = self.bytes.len();
        // Room for the length, whose size is known only after the entry:
        // the entry moves only if it was guessed wrong.
        let room = varint_len(self.last_len as u64);
        self.bytes.resize(at + room, 0);
        write(&mut self.bytes);
        let len = self.bytes.len() - at - room;
        let mut length = Vec::with_capacity(varint_len(len as u64));
        varint(len as u64, &mut length);
        self.bytes.splice(at..at + room, length);
        self.last_len = len;
        self.entries += 1;
    }

    /// Bytes gathered.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Drops its entries numbered up to `seq` (a checkpoint holds their
    /// records): entries are numbered in order, so those come first.
    pub fn drop_through(&mut self, seq: u64) {
        let mut reader = eddy_abi::decode::Reader::new(&self.bytes);
        let mut dropped = 0;
        let mut kept_from = 0;
        while !reader.is_empty() {
            let (Ok(n), Ok(_)) = (reader.varint(), reader.bytes()) else {
                break;
            };
            if n > seq {
                break;
            }
            dropped += 1;
            kept_from = self.bytes.len() - reader.remaining();
        }
        self.bytes.drain(..kept_from);
        self.entries -= dropped;
    }

    /// Empties it.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.entries = 0;
    }
}

/// One pipeline's checkpoints and journal.
#[derive(Clone)]
pub struct PipelineStore {
    store: StateStore,
    name: String,
    /// The checkpoints' state (an older version's is in operator trees).
    files: StateFiles,
    checkpoints: Tree,
    journal: Arc<Mutex<JournalLog>>,
    /// Makes every checkpoint read fail, as a store that cannot be read does.
    #[cfg(test)]
    fail_reads: Arc<std::sync::atomic::AtomicBool>,
}

fn blob_key(id: u64, part: u32) -> [u8; 12] {
    let mut key = [0; 12];
    key[..8].copy_from_slice(&id.to_be_bytes());
    key[8..].copy_from_slice(&part.to_be_bytes());
    key
}

fn id_of(key: &[u8]) -> u64 {
    key.first_chunk::<8>().map_or(0, |k| u64::from_be_bytes(*k))
}

impl PipelineStore {
    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store it belongs to.
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// The tree an older version kept `operator`'s blobs in, if there is
    /// one (never created here).
    fn operator_tree(&self, operator: &str) -> Result<Option<Tree>, StoreError> {
        let name = format!("{}/op/{operator}", self.name);
        if !self
            .store
            .db
            .tree_names()
            .iter()
            .any(|t| t.as_ref() == name.as_bytes())
        {
            return Ok(None);
        }
        self.store
            .db
            .open_tree(name)
            .map(Some)
            .map_err(|e| self.store.fail(e))
    }

    /// Every operator tree of the pipeline.
    fn operator_trees(&self) -> Result<Vec<Tree>, StoreError> {
        let prefix = format!("{}/op/", self.name);
        self.store
            .db
            .tree_names()
            .into_iter()
            .filter(|n| n.starts_with(prefix.as_bytes()))
            .map(|n| self.store.db.open_tree(n).map_err(|e| self.store.fail(e)))
            .collect()
    }

    /// Writes a checkpoint: the operators' blobs (in manifest order) into
    /// its state file, synced, then the manifest, then flushes. Only once
    /// this returns is it complete.
    pub fn write(&self, manifest: &Manifest, blobs: &[Vec<u8>]) -> Result<(), StoreError> {
        self.files
            .write(manifest.id, blobs)
            .map_err(|e| self.state_file_failed(e))?;
        self.write_manifest(manifest)
    }

    /// Starts checkpoint `id`'s state file, for its blobs to be written
    /// one after another as they are encoded; [`commit`](Self::commit)
    /// completes the checkpoint.
    pub fn state_file(&self, id: u64) -> Result<StateFileWriter, StoreError> {
        self.files.create(id).map_err(|e| self.state_file_failed(e))
    }

    /// Completes a checkpoint whose blobs `file` holds: syncs it, then
    /// writes the manifest (which names each blob's length and CRC), then
    /// flushes.
    pub fn commit(&self, manifest: &Manifest, file: StateFileWriter) -> Result<(), StoreError> {
        file.finish().map_err(|e| self.state_file_failed(e))?;
        self.write_manifest(manifest)
    }

    /// A failure to write or read a state file, as this store reports it.
    pub fn state_file_failed(&self, error: std::io::Error) -> StoreError {
        StoreError::StateFile {
            path: self.files.dir().to_owned(),
            error,
        }
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        self.checkpoints
            .insert(manifest.id.to_be_bytes(), manifest.to_bytes())
            .map_err(|e| self.store.fail(e))?;
        self.store.flush()
    }

    /// Checkpoint ids, newest first.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .checkpoints
            .iter()
            .keys()
            .filter_map(Result::ok)
            .map(|k| id_of(&k))
            .collect();
        ids.reverse();
        ids
    }

    /// The manifest of checkpoint `id`.
    pub fn manifest(&self, id: u64) -> Result<Manifest, LoadError> {
        let bytes = self
            .checkpoints
            .get(id.to_be_bytes())
            .map_err(|e| LoadError::Store(self.store.fail(e)))?
            .ok_or_else(|| LoadError::Damaged(format!("no checkpoint {id}")))?;
        let manifest = Manifest::from_bytes(&bytes).map_err(LoadError::Damaged)?;
        if manifest.id != id {
            return Err(LoadError::Damaged(format!(
                "manifest of checkpoint {id} says {}",
                manifest.id
            )));
        }
        Ok(manifest)
    }

    /// Reads checkpoint `id` whole, checking every blob against its manifest.
    pub fn load(&self, id: u64) -> Result<Loaded, LoadError> {
        let mut whole = |_: &Manifest, operator: &OperatorCheckpoint, input: &mut dyn Read| {
            // Its length is the manifest's, which the file's length bounds.
            let mut blob = Vec::with_capacity(usize::try_from(operator.len).unwrap_or(0));
            input.read_to_end(&mut blob).map_err(DecodeError::Read)?;
            Ok(Some(blob))
        };
        match self.decode_checkpoint(id, &mut whole) {
            Ok(Ok(Decoded { manifest, states })) => Ok(Loaded {
                manifest,
                blobs: states.into_iter().flatten().collect(),
            }),
            Ok(Err(reason)) => Err(LoadError::Damaged(reason)),
            Err(RestoreError::Store(e)) => Err(LoadError::Store(e)),
            // Cannot happen: bytes read as they are need no decoding.
            Err(e @ RestoreError::Undecodable { .. }) => Err(LoadError::Damaged(e.to_string())),
        }
    }

    /// The newest checkpoint that reads back whole, each operator's blob
    /// decoded by `decode` as it is read from its file, so that restoring
    /// state does not hold it twice (as its bytes and as what they decode
    /// to; a checkpoint an older version kept in the database is read
    /// whole first, as before); and the newer checkpoints found damaged,
    /// with what was wrong with each. A blob is checked against its manifest once read to the
    /// end: what was decoded from a damaged one is dropped, and the
    /// checkpoint before is read. A blob that is whole but does not decode,
    /// like a store that cannot be read, is an error: it says nothing about
    /// the checkpoints before it.
    pub fn decode_latest<T>(
        &self,
        decode: &mut BlobDecoder<'_, T>,
    ) -> Result<(Option<Decoded<T>>, Damaged), RestoreError> {
        let mut damaged = Vec::new();
        for id in self.ids() {
            match self.decode_checkpoint(id, decode)? {
                Ok(decoded) => return Ok((Some(decoded), damaged)),
                Err(reason) => damaged.push((id, reason)),
            }
        }
        Ok((None, damaged))
    }

    /// Checkpoint `id` decoded, or what damage was found in it.
    fn decode_checkpoint<T>(
        &self,
        id: u64,
        decode: &mut BlobDecoder<'_, T>,
    ) -> Result<Result<Decoded<T>, String>, RestoreError> {
        #[cfg(test)]
        if self.fail_reads.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(RestoreError::Store(self.store.fail(sled::Error::Io(
                std::io::Error::other("injected read error"),
            ))));
        }
        let manifest = match self.manifest(id) {
            Ok(manifest) => manifest,
            Err(LoadError::Damaged(reason)) => return Ok(Err(reason)),
            Err(LoadError::Store(e)) => return Err(RestoreError::Store(e)),
        };
        let lens: Vec<u64> = manifest.operators.iter().map(|o| o.len).collect();
        let failed = |e| RestoreError::Store(self.state_file_failed(e));
        // The state file, or the blobs an older version kept in the database.
        let (mut file, blobs) = match self.files.open(id, &lens) {
            Ok(Some(file)) => (Some(file), Vec::new()),
            Ok(None) => match self.load_from_trees(&manifest) {
                Ok(blobs) => (None, blobs),
                Err(LoadError::Damaged(reason)) => return Ok(Err(reason)),
                Err(LoadError::Store(e)) => return Err(RestoreError::Store(e)),
            },
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Ok(Err(format!("checkpoint {id}: {e}")));
            }
            Err(e) => return Err(failed(e)),
        };
        let mut states = Vec::with_capacity(manifest.operators.len());
        // The first whole blob that does not decode: an error only once
        // every blob after it is found whole too (damage anywhere means
        // the checkpoint before is read, as when blobs were checked first).
        let mut undecodable = None;
        for (i, operator) in manifest.operators.iter().enumerate() {
            let mut held: &[u8] = blobs.get(i).map_or(&[], Vec::as_slice);
            let longer = held.len() as u64 > operator.len;
            let input: &mut dyn Read = match &mut file {
                Some(file) => file,
                None => &mut held,
            };
            let mut blob = BlobReader::new(input, operator.len);
            let state = if undecodable.is_none() {
                decode(&manifest, operator, &mut blob)
            } else {
                Ok(None)
            };
            if let Err(DecodeError::Read(e)) = state {
                return Err(failed(e));
            }
            let (len, crc) = blob.finish().map_err(failed)?;
            if len != operator.len || longer || crc != operator.crc {
                return Ok(Err(format!(
                    "state of operator `{}` is damaged ({} bytes, expected {})",
                    operator.name,
                    if longer { blobs[i].len() as u64 } else { len },
                    operator.len
                )));
            }
            match state {
                Ok(state) => states.push(state),
                Err(e) => {
                    undecodable = Some(RestoreError::Undecodable {
                        operator: operator.name.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        match undecodable {
            Some(error) => Err(error),
            None => Ok(Ok(Decoded { manifest, states })),
        }
    }

    /// The blobs of a checkpoint an older version wrote into operator
    /// trees, in parts (one missing reads as empty).
    fn load_from_trees(&self, manifest: &Manifest) -> Result<Vec<Vec<u8>>, LoadError> {
        let id = manifest.id;
        let mut blobs = Vec::with_capacity(manifest.operators.len());
        for operator in &manifest.operators {
            let mut blob = Vec::new();
            if let Some(tree) = self
                .operator_tree(&operator.name)
                .map_err(LoadError::Store)?
            {
                for part in tree.range(blob_key(id, 0)..=blob_key(id, u32::MAX)) {
                    let (_, bytes) = part.map_err(|e| LoadError::Store(self.store.fail(e)))?;
                    blob.extend_from_slice(&bytes);
                }
            }
            blobs.push(blob);
        }
        Ok(blobs)
    }

    /// The newest checkpoint that reads back whole, and the newer ones found
    /// damaged (their content does not match their manifest), with what
    /// was wrong with each. A store that cannot be read is an error: it
    /// says nothing about the checkpoints, so none is passed over for it.
    pub fn latest(&self) -> Result<(Option<Loaded>, Damaged), StoreError> {
        let mut damaged = Vec::new();
        for id in self.ids() {
            match self.load(id) {
                Ok(loaded) => return Ok((Some(loaded), damaged)),
                Err(LoadError::Damaged(reason)) => damaged.push((id, reason)),
                Err(LoadError::Store(e)) => return Err(e),
            }
        }
        Ok((None, damaged))
    }

    /// Keeps the newest `retain` checkpoints and drops the rest with their
    /// blobs, and journal entries every kept checkpoint already holds.
    ///
    /// Blobs are removed by the keys their manifests name: sled reads a
    /// value when it iterates over it, and state blobs are large.
    ///
    /// Checkpoints in `damaged` (found so at recovery) go first and do not
    /// count: the newest `retain` that were not found damaged are kept, so
    /// a damaged checkpoint never pushes out a good one.
    pub fn prune(&self, retain: usize, damaged: &[u64]) -> Result<(), StoreError> {
        let fail = |e| self.store.fail(e);
        let ids: Vec<u64> = self.ids();
        let good: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| !damaged.contains(id))
            .collect();
        let kept = &good[..retain.max(1).min(good.len())];
        let dropped: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| !kept.contains(id))
            .collect();
        let mut unnamed = false;
        for &id in &dropped {
            match self.manifest(id) {
                Ok(manifest) => {
                    for operator in &manifest.operators {
                        let Some(tree) = self.operator_tree(&operator.name)? else {
                            continue;
                        };
                        let parts = (operator.len as usize).div_ceil(PART_BYTES);
                        let mut batch = sled::Batch::default();
                        for part in 0..parts {
                            batch.remove(&blob_key(id, part as u32));
                        }
                        tree.apply_batch(batch).map_err(fail)?;
                    }
                }
                Err(LoadError::Damaged(_)) => unnamed = true,
                Err(LoadError::Store(e)) => return Err(e),
            }
            self.checkpoints.remove(id.to_be_bytes()).map_err(fail)?;
        }
        // The dropped manifests are gone for good before their state files
        // and the journal they needed are.
        self.store.flush()?;
        self.files
            .remove(|id| dropped.contains(&id))
            .map_err(|e| self.state_file_failed(e))?;
        if unnamed {
            self.remove_orphans()?;
        }
        let keep_from = kept
            .iter()
            .filter_map(|id| self.manifest(*id).ok())
            .map(|m| m.journal_seq)
            .min();
        if let Some(keep_from) = keep_from {
            let mut journal = self.journal();
            journal
                .forget_through(keep_from)
                .map_err(|e| journal_failed(&journal, e))?;
        }
        Ok(())
    }

    /// Removes the blobs of a checkpoint whose manifest was never written
    /// (a crash in the middle of it): those with ids above the newest
    /// manifest, which the next checkpoint would otherwise reuse. Reads only
    /// those blobs, so it costs nothing at a normal start.
    pub fn remove_unfinished(&self) -> Result<(), StoreError> {
        let fail = |e| self.store.fail(e);
        let above = self.ids().first().map_or(0, |id| id + 1);
        self.files
            .remove(|id| id >= above)
            .map_err(|e| self.state_file_failed(e))?;
        for tree in self.operator_trees()? {
            let mut batch = sled::Batch::default();
            for key in tree.range(blob_key(above, 0)..).keys() {
                batch.remove(key.map_err(fail)?);
            }
            tree.apply_batch(batch).map_err(fail)?;
        }
        Ok(())
    }

    /// Removes every blob no manifest names (also those a damaged manifest
    /// named). Reads every blob: for `eddy state compact` and after pruning
    /// a damaged manifest.
    pub fn remove_orphans(&self) -> Result<(), StoreError> {
        let fail = |e| self.store.fail(e);
        let ids = self.ids();
        self.files
            .remove(|id| !ids.contains(&id))
            .map_err(|e| self.state_file_failed(e))?;
        for tree in self.operator_trees()? {
            let mut batch = sled::Batch::default();
            for key in tree.iter().keys() {
                let key = key.map_err(fail)?;
                if !ids.contains(&id_of(&key)) {
                    batch.remove(key);
                }
            }
            tree.apply_batch(batch).map_err(fail)?;
        }
        Ok(())
    }

    /// Appends a group of journal entries (see [`JournalGroup`]) whose
    /// last entry is number `last`.
    /// It reaches the disk within [`super::journal_log::SYNC_EVERY`], or at
    /// [`PipelineStore::journal_sync`].
    pub fn journal_append(&self, last: u64, group: &JournalGroup) -> Result<(), StoreError> {
        let mut journal = self.journal();
        journal
            .append(last, &group.bytes)
            .map_err(|e| journal_failed(&journal, e))
    }

    /// Makes the journal durable if it was last synced
    /// [`super::journal_log::SYNC_EVERY`] ago (for a writer with nothing
    /// new to append).
    pub fn journal_sync_if_due(&self) -> Result<(), StoreError> {
        let mut journal = self.journal();
        journal
            .sync_if_due()
            .map_err(|e| journal_failed(&journal, e))
    }

    /// Makes every journal group appended durable.
    pub fn journal_sync(&self) -> Result<(), StoreError> {
        let mut journal = self.journal();
        journal.sync().map_err(|e| journal_failed(&journal, e))
    }

    fn journal(&self) -> MutexGuard<'_, JournalLog> {
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Journal entries after `seq`, in order, with their numbers.
    pub fn journal_after(&self, seq: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut entries = Vec::new();
        let groups = {
            let mut journal = self.journal();
            journal
                .groups_after(seq)
                .map_err(|e| journal_failed(&journal, e))?
        };
        for (_, group) in groups {
            let mut reader = eddy_abi::decode::Reader::new(&group);
            while !reader.is_empty() {
                let (Ok(n), Ok(entry)) = (reader.varint(), reader.bytes()) else {
                    tracing::error!(pipeline = self.name, "a journal group is cut short");
                    break;
                };
                if n > seq {
                    entries.push((n, entry.to_vec()));
                }
            }
        }
        Ok(entries)
    }

    /// The newest journal sequence number, 0 when empty.
    pub fn journal_last(&self) -> u64 {
        self.journal().last()
    }

    /// Deletes every checkpoint, blob and journal entry of the pipeline.
    pub fn clear(&self) -> Result<(), StoreError> {
        let fail = |e| self.store.fail(e);
        for tree in self.operator_trees()? {
            tree.clear().map_err(fail)?;
        }
        self.checkpoints.clear().map_err(fail)?;
        // No checkpoint is left to need the journal or the state files
        // before they go.
        self.store.flush()?;
        self.files.clear().map_err(|e| self.state_file_failed(e))?;
        let mut journal = self.journal();
        journal.clear().map_err(|e| journal_failed(&journal, e))
    }
}

fn journal_failed(journal: &JournalLog, error: std::io::Error) -> StoreError {
    StoreError::Journal {
        path: journal.dir().to_owned(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_in_use_is_refused_as_such_and_one_let_go_of_meanwhile_is_opened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        let held = StateStore::open(&dir).unwrap();
        let asked = std::time::Instant::now();
        let refused = StateStore::open(&dir).err().expect("the store is in use");
        assert!(matches!(refused, StoreError::Locked { .. }), "{refused}");
        assert!(
            refused
                .to_string()
                .contains("in use by another eddy process")
        );
        assert!(asked.elapsed() >= LOCK_WAIT);
        // Let go of while another open waits: that one opens it.
        let closing = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        let reopened = StateStore::open(&dir);
        closing.join().unwrap();
        assert!(reopened.is_ok(), "{:?}", reopened.err());
    }

    fn checkpoint(id: u64, blob: &[u8]) -> (Manifest, Vec<Vec<u8>>) {
        let manifest = Manifest {
            id,
            created_ms: 0,
            finished: false,
            journal_seq: id * 10,
            sources: Vec::new(),
            sinks: Vec::new(),
            dead_letter: None,
            operators: vec![OperatorCheckpoint {
                name: "op".into(),
                plugin: "p".into(),
                plugin_version: "1".into(),
                state_version: 0,
                len: blob.len() as u64,
                crc: crc32fast::hash(blob),
                keys: 0,
                windows: 0,
                timers: 0,
            }],
        };
        (manifest, vec![blob.to_vec()])
    }

    #[test]
    fn a_store_that_cannot_be_read_is_an_error_not_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        let (m, b) = checkpoint(1, b"one");
        p.write(&m, &b).unwrap();
        p.fail_reads
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(p.latest(), Err(StoreError::Sled { .. })));
        p.fail_reads
            .store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(p.latest().unwrap().0.unwrap().manifest.id, 1);
    }

    #[test]
    fn pruning_keeps_good_checkpoints_and_drops_damaged_ones_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        for id in 1..=3 {
            let (m, b) = checkpoint(id, format!("blob {id}").as_bytes());
            p.write(&m, &b).unwrap();
        }
        // 3 is new and good, 2 was found damaged, 1 is the one restored.
        p.prune(2, &[2]).unwrap();
        assert_eq!(p.ids(), [3, 1]);
        assert_eq!(p.load(1).unwrap().blobs[0], b"blob 1");
    }

    #[test]
    fn a_damaged_newest_checkpoint_falls_back_to_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        let big: Vec<u8> = (0..PART_BYTES + 10).map(|i| (i % 251) as u8).collect();
        for (id, blob) in [(1, &b"one"[..]), (2, &big[..])] {
            let (m, b) = checkpoint(id, blob);
            p.write(&m, &b).unwrap();
        }
        let (loaded, damaged) = p.latest().unwrap();
        assert_eq!(
            loaded.unwrap().blobs[0],
            big,
            "a large blob reads back whole"
        );
        assert!(damaged.is_empty());

        // A flipped byte in checkpoint 2's state file.
        let file = state_file(dir.path(), "p", 2);
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[PART_BYTES] ^= 0x10;
        std::fs::write(&file, &bytes).unwrap();
        let (loaded, damaged) = p.latest().unwrap();
        assert_eq!(loaded.unwrap().manifest.id, 1);
        assert_eq!(damaged.len(), 1);
        assert!(damaged[0].1.contains("damaged"), "{damaged:?}");

        // Cut short, it is damaged too.
        std::fs::write(&file, &bytes[..100]).unwrap();
        let (_, damaged) = p.latest().unwrap();
        assert!(damaged[0].1.contains("100 bytes"), "{damaged:?}");

        // A damaged manifest too.
        p.checkpoints
            .insert(1u64.to_be_bytes(), &b"garbage!"[..])
            .unwrap();
        let (loaded, damaged) = p.latest().unwrap();
        assert!(loaded.is_none());
        assert_eq!(damaged.len(), 2);
    }

    #[test]
    fn an_unfinished_checkpoint_leaves_no_blobs_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        let (m, b) = checkpoint(1, b"state");
        p.write(&m, &b).unwrap();
        // Checkpoint 2 crashed while its state file was written, and
        // checkpoint 3 after its state file, before its manifest.
        let folder = state_file(dir.path(), "p", 1).parent().unwrap().to_owned();
        std::fs::write(folder.join(format!("{:020}.partial", 2)), b"torn").unwrap();
        std::fs::write(state_file(dir.path(), "p", 3), b"unnamed").unwrap();
        p.remove_unfinished().unwrap();
        let left: Vec<_> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|f| f.unwrap().path())
            .collect();
        assert_eq!(
            left,
            [state_file(dir.path(), "p", 1)],
            "only checkpoint 1's state is left"
        );
        // Checkpoint 2 written again reads back whole.
        let (m, b) = checkpoint(2, b"again");
        p.write(&m, &b).unwrap();
        assert_eq!(p.load(2).unwrap().blobs[0], b"again");
    }

    #[test]
    fn an_entry_written_in_place_is_the_bytes_of_one_copied_in() {
        // Lengths whose varints take one, two and three bytes, in an order
        // that makes the guessed room too small, right and too large.
        let lengths = [3, 200, 201, 70_000, 5, 0, 16_384, 127, 128, 70_000];
        let (mut copied, mut in_place) = (JournalGroup::default(), JournalGroup::default());
        for (seq, len) in lengths.into_iter().enumerate() {
            let entry: Vec<u8> = (0..len).map(|i| (i * 7 + seq) as u8).collect();
            copied.push(seq as u64 + 1, &entry);
            in_place.push_with(seq as u64 + 1, |out| out.extend_from_slice(&entry));
        }
        assert_eq!(in_place.bytes, copied.bytes);
        assert_eq!(in_place.entries, lengths.len());
        // And each reads back: number, then the entry.
        let mut reader = eddy_abi::decode::Reader::new(&in_place.bytes);
        for (seq, len) in lengths.into_iter().enumerate() {
            assert_eq!(reader.varint().unwrap(), seq as u64 + 1);
            assert_eq!(reader.bytes().unwrap().len(), len);
        }
        assert!(reader.is_empty());
    }

    /// A blob's value in the decoding tests.
    type Pair = (String, serde_bytes::ByteBuf);

    fn pair(name: &str, bytes: usize) -> Pair {
        let bytes: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
        (name.to_owned(), serde_bytes::ByteBuf::from(bytes))
    }

    /// The newest checkpoint whose blob decodes as a [`Pair`], read whole.
    fn decode_pairs(p: &PipelineStore) -> Result<(Option<Decoded<Pair>>, Damaged), RestoreError> {
        p.decode_latest(&mut |_, operator, input| {
            super::super::decode_from(input, operator.len).map(Some)
        })
    }

    /// The newest checkpoint whose blob reads, its bytes read whole (as
    /// they are, not decoded).
    fn read_whole(p: &PipelineStore) -> (Option<Decoded<Vec<u8>>>, Damaged) {
        p.decode_latest(&mut |_, _, input| {
            let mut bytes = Vec::new();
            input.read_to_end(&mut bytes).map_err(DecodeError::Read)?;
            Ok(Some(bytes))
        })
        .unwrap()
    }

    #[test]
    fn the_newest_whole_checkpoint_is_decoded_as_it_is_read_past_damaged_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        let small = pair("one", 3);
        let large = pair("two", 3 << 20);
        for (id, value) in [(1, &small), (2, &large)] {
            let (m, b) = checkpoint(id, &postcard::to_allocvec(value).unwrap());
            p.write(&m, &b).unwrap();
        }
        let (decoded, damaged) = decode_pairs(&p).unwrap();
        let decoded = decoded.unwrap();
        assert_eq!(decoded.manifest.id, 2);
        assert!(decoded.states == [Some(large.clone())]);
        assert!(damaged.is_empty());

        // A flipped byte inside the large byte string: it decodes, but not
        // to what was written, and the checkpoint before is read.
        let file = state_file(dir.path(), "p", 2);
        let whole = std::fs::read(&file).unwrap();
        let mut bytes = whole.clone();
        bytes[2 << 20] ^= 0x10;
        std::fs::write(&file, &bytes).unwrap();
        let (decoded, damaged) = decode_pairs(&p).unwrap();
        assert!(decoded.unwrap().states == [Some(small.clone())]);
        assert_eq!(damaged.len(), 1);
        assert_eq!(damaged[0].0, 2);
        assert!(damaged[0].1.contains("damaged"), "{damaged:?}");

        // A flipped length: the value claims more than the blob holds, and
        // is damage too, not an error.
        let mut bytes = whole.clone();
        bytes[4] ^= 0x7f;
        std::fs::write(&file, &bytes).unwrap();
        let (decoded, damaged) = decode_pairs(&p).unwrap();
        assert_eq!(decoded.unwrap().manifest.id, 1);
        assert_eq!(damaged[0].0, 2);

        // A blob passed over unread is checked all the same.
        let (decoded, damaged) = p.decode_latest(&mut |_, _, _| Ok(None::<()>)).unwrap();
        assert_eq!(decoded.unwrap().manifest.id, 1);
        assert_eq!(damaged[0].0, 2);

        // Cut short.
        std::fs::write(&file, &whole[..100]).unwrap();
        let (_, damaged) = decode_pairs(&p).unwrap();
        assert!(damaged[0].1.contains("100 bytes"), "{damaged:?}");
    }

    /// Checkpoint `id` of one operator a blob, named `op0`, `op1`…
    fn checkpoint_of(id: u64, blobs: &[&[u8]]) -> (Manifest, Vec<Vec<u8>>) {
        let (mut manifest, _) = checkpoint(id, b"");
        let template = manifest.operators.remove(0);
        for (i, blob) in blobs.iter().enumerate() {
            manifest.operators.push(OperatorCheckpoint {
                name: format!("op{i}"),
                len: blob.len() as u64,
                crc: crc32fast::hash(blob),
                ..template.clone()
            });
        }
        (manifest, blobs.iter().map(|b| b.to_vec()).collect())
    }

    #[test]
    fn each_operators_blob_is_decoded_from_its_own_bytes_and_damage_in_any_drops_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        let values = [pair("a", 10), pair("b", 100_000), pair("c", 0)];
        let encoded: Vec<Vec<u8>> = values
            .iter()
            .map(|v| postcard::to_allocvec(v).unwrap())
            .collect();
        let blobs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let (m, b) = checkpoint_of(1, &blobs);
        p.write(&m, &b).unwrap();
        // Checkpoint 2: a good first blob, an undecodable second one and a
        // damaged third one: damage, not an error, and nothing of it is kept.
        let (m, b) = checkpoint_of(2, &[blobs[0], &[2, 0xff, 0xfe, 0], blobs[2]]);
        p.write(&m, &b).unwrap();
        let file = state_file(dir.path(), "p", 2);
        let mut bytes = std::fs::read(&file).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let (decoded, damaged) = decode_pairs(&p).unwrap();
        let decoded = decoded.unwrap();
        assert_eq!(decoded.manifest.id, 1);
        assert!(decoded.states == values.map(Some));
        assert_eq!(damaged.len(), 1);
        assert!(damaged[0].1.contains("`op2` is damaged"), "{damaged:?}");
        // Whole, the undecodable blob is the error, named.
        std::fs::write(&file, b.concat()).unwrap();
        match decode_pairs(&p) {
            Err(RestoreError::Undecodable { operator, .. }) => assert_eq!(operator, "op1"),
            other => panic!("{other:?}"),
        }
        // A decoder's read error is the store's, not damage.
        let failing = p.decode_latest(&mut |_, _, _| {
            Err::<Option<()>, _>(DecodeError::Read(std::io::Error::other(
                "the disk went away",
            )))
        });
        assert!(
            matches!(
                failing,
                Err(RestoreError::Store(StoreError::StateFile { .. }))
            ),
            "{failing:?}"
        );
    }

    #[test]
    fn a_whole_blob_that_does_not_decode_is_an_error_not_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        let (m, b) = checkpoint(1, &postcard::to_allocvec(&pair("one", 3)).unwrap());
        p.write(&m, &b).unwrap();
        // Written as it is (its CRC matches), but no `Pair`: a string
        // that is not UTF-8.
        let (m, b) = checkpoint(2, &[2, 0xff, 0xfe, 0]);
        p.write(&m, &b).unwrap();
        match decode_pairs(&p) {
            Err(RestoreError::Undecodable { operator, reason }) => {
                assert_eq!(operator, "op");
                assert!(reason.contains("state unreadable"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        p.fail_reads
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(
            decode_pairs(&p),
            Err(RestoreError::Store(StoreError::Sled { .. }))
        ));
    }

    /// Where checkpoint `id` of `pipeline` keeps its state.
    fn state_file(store: &Path, pipeline: &str, id: u64) -> PathBuf {
        store
            .join(CHECKPOINT_DIR)
            .join(pipeline)
            .join(format!("{id:020}.state"))
    }

    #[test]
    fn checkpoints_an_older_version_kept_in_the_database_load_and_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        // The older layout: the blob in parts in the operator's tree, then
        // the manifest.
        let old: Vec<u8> = (0..PART_BYTES + 5).map(|i| (i % 13) as u8).collect();
        let (m, _) = checkpoint(1, &old);
        let tree = store.db.open_tree("p/op/op").unwrap();
        for (part, bytes) in old.chunks(PART_BYTES).enumerate() {
            tree.insert(blob_key(1, part as u32), bytes).unwrap();
        }
        p.checkpoints
            .insert(1u64.to_be_bytes(), m.to_bytes())
            .unwrap();
        assert_eq!(p.latest().unwrap().0.unwrap().blobs[0], old);
        assert!(read_whole(&p).0.unwrap().states == [Some(old.clone())]);
        // A part more than the manifest says is damage, as in a file.
        tree.insert(blob_key(1, 99), &b"more"[..]).unwrap();
        let (decoded, damaged) = read_whole(&p);
        assert!(decoded.is_none());
        assert!(damaged[0].1.contains("damaged"), "{damaged:?}");
        tree.remove(blob_key(1, 99)).unwrap();
        assert!(read_whole(&p).0.unwrap().states == [Some(old.clone())]);
        // Newer checkpoints go to files; the old one is pruned from the tree.
        for id in 2..=3 {
            let (m, b) = checkpoint(id, format!("new {id}").as_bytes());
            p.write(&m, &b).unwrap();
        }
        assert_eq!(p.load(3).unwrap().blobs[0], b"new 3");
        p.prune(2, &[]).unwrap();
        assert_eq!(p.ids(), [3, 2]);
        assert!(tree.is_empty(), "the older checkpoint's parts are gone");
    }

    fn group(seqs: std::ops::RangeInclusive<u64>) -> JournalGroup {
        let mut group = JournalGroup::default();
        for seq in seqs {
            group.push(seq, format!("entry {seq}").as_bytes());
        }
        group
    }

    fn entries_after(p: &PipelineStore, seq: u64) -> Vec<(u64, String)> {
        p.journal_after(seq)
            .unwrap()
            .into_iter()
            .map(|(n, e)| (n, String::from_utf8(e).unwrap()))
            .collect()
    }

    fn expected(seqs: std::ops::RangeInclusive<u64>) -> Vec<(u64, String)> {
        seqs.map(|n| (n, format!("entry {n}"))).collect()
    }

    #[test]
    fn reading_a_pipeline_without_a_journal_makes_no_journal_folder() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join(JOURNAL_DIR);
        {
            let store = StateStore::open(dir.path()).unwrap();
            let p = store.pipeline("p").unwrap();
            assert!(p.journal_after(0).unwrap().is_empty());
            assert_eq!(p.journal_last(), 0);
        }
        assert!(!journal.exists(), "opened and read: nothing written");
        // The first group makes the folders, and is there after a restart.
        {
            let store = StateStore::open(dir.path()).unwrap();
            let p = store.pipeline("p").unwrap();
            p.journal_append(2, &group(1..=2)).unwrap();
            p.journal_sync().unwrap();
        }
        assert!(journal.join("p").is_dir());
        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        assert_eq!(entries_after(&p, 0), expected(1..=2));
    }

    #[test]
    fn the_journal_survives_a_restart_without_the_group_being_written_when_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StateStore::open(dir.path()).unwrap();
            let p = store.pipeline("p").unwrap();
            p.journal_append(3, &group(1..=3)).unwrap();
            p.journal_append(5, &group(4..=5)).unwrap();
            p.journal_sync().unwrap();
        }
        // A group cut short at the end of the file, as a crash leaves it.
        let segment = std::fs::read_dir(dir.path().join(JOURNAL_DIR).join("p"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&segment).unwrap();
        let whole = bytes.len();
        bytes.extend_from_slice(&[0, 0, 0, 40, 1, 2, 3]);
        std::fs::write(&segment, &bytes).unwrap();

        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        assert_eq!(std::fs::metadata(&segment).unwrap().len(), whole as u64);
        assert_eq!(p.journal_last(), 5);
        assert_eq!(entries_after(&p, 0), expected(1..=5));
        assert_eq!(entries_after(&p, 3), expected(4..=5));
        // The same journal, however often the pipeline is opened.
        let again = store.pipeline("p").unwrap();
        again.journal_append(7, &group(6..=7)).unwrap();
        assert_eq!(p.journal_last(), 7);
        assert_eq!(entries_after(&p, 5), expected(6..=7));
    }

    #[test]
    fn a_journal_an_older_version_kept_in_the_database_is_moved_to_the_files() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StateStore::open(dir.path()).unwrap();
            let older = store.db.open_tree("p/journal").unwrap();
            older
                .insert(9u64.to_be_bytes(), group(5..=9).bytes)
                .unwrap();
            older
                .insert(4u64.to_be_bytes(), group(1..=4).bytes)
                .unwrap();
            store.flush().unwrap();
        }
        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        assert_eq!(p.journal_last(), 9);
        assert_eq!(entries_after(&p, 2), expected(3..=9));
        assert!(store.db.open_tree("p/journal").unwrap().is_empty());
        drop((p, store));
        // Moved once: opened again, the journal is the same.
        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        assert_eq!(entries_after(&p, 0), expected(1..=9));
        drop((p, store));

        // An older version run again (a rollback) numbered its entries from
        // its checkpoint's, 6, into the database: those are the journal
        // from 6 on, not what the files hold from there.
        {
            let store = StateStore::open(dir.path()).unwrap();
            let older = store.db.open_tree("p/journal").unwrap();
            let mut again = JournalGroup::default();
            for seq in 6..=7 {
                again.push(seq, format!("again {seq}").as_bytes());
            }
            older.insert(7u64.to_be_bytes(), again.bytes).unwrap();
            store.flush().unwrap();
        }
        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        // Group 5..=9 of the files is cut from 6 on; 5 stays.
        let mut journal = expected(1..=5);
        journal.extend((6..=7).map(|n| (n, format!("again {n}"))));
        assert_eq!(entries_after(&p, 0), journal);
        assert_eq!(p.journal_last(), 7);
    }

    #[test]
    fn prune_keeps_the_newest_and_the_journal_they_need() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        // 30 entries of 512 KiB: 15 MiB of journal, several segment files.
        let entry = vec![7u8; 512 << 10];
        for seq in 1..=30 {
            let mut group = JournalGroup::default();
            group.push(seq, &entry);
            p.journal_append(seq, &group).unwrap();
        }
        let journal_bytes = || {
            std::fs::read_dir(dir.path().join(JOURNAL_DIR).join("p"))
                .unwrap()
                .map(|f| f.unwrap().metadata().unwrap().len())
                .sum::<u64>()
        };
        let written = journal_bytes();
        assert!(written >= 30 * (512 << 10), "{written} bytes");
        for id in 1..=3 {
            let (m, b) = checkpoint(id, b"state");
            p.write(&m, &b).unwrap();
        }
        p.prune(2, &[]).unwrap();
        assert_eq!(p.ids(), [3, 2]);
        // Checkpoint 2 holds journal entries up to 20: later ones stay,
        // whole, and files holding only earlier ones are gone.
        let numbers = |after| -> Vec<u64> {
            let entries = p.journal_after(after).unwrap();
            assert!(entries.iter().all(|(_, e)| *e == entry));
            entries.into_iter().map(|(s, _)| s).collect()
        };
        assert_eq!(numbers(20), (21..=30).collect::<Vec<_>>());
        let left = numbers(0);
        assert!(left[0] > 1 && left[0] <= 21, "{left:?}");
        assert_eq!(left, (left[0]..=30).collect::<Vec<_>>());
        assert!(journal_bytes() < written);
        let files = std::fs::read_dir(state_file(dir.path(), "p", 3).parent().unwrap())
            .unwrap()
            .count();
        assert_eq!(files, 2, "the dropped checkpoint's state file is gone");
        assert_eq!(store.pipelines(), ["p"]);
    }

    #[test]
    fn a_group_drops_the_entries_a_checkpoint_holds_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let p = store.pipeline("p").unwrap();
        let mut group = JournalGroup::default();
        for seq in 11..=15 {
            group.push(seq, format!("entry {seq}").as_bytes());
        }
        group.drop_through(9);
        assert_eq!(group.entries, 5, "nothing at or before 9");
        group.drop_through(13);
        assert_eq!(group.entries, 2);
        p.journal_append(15, &group).unwrap();
        let left = p.journal_after(0).unwrap();
        assert_eq!(
            left,
            [(14, b"entry 14".to_vec()), (15, b"entry 15".to_vec())]
        );
        group.drop_through(15);
        assert!(group.is_empty());
        assert_eq!(group.bytes.len(), 0);
    }
}
