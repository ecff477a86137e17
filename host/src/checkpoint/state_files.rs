//! The state of a pipeline's checkpoints, one file per checkpoint
//! (`checkpoints/P/ID.state` in the state folder): the operators' blobs one
//! after another, in manifest order. The manifest, in the database, gives
//! each blob's length and checksum, and is written only once the file is
//! on disk, so a checkpoint is whole or not there.
//!
//! Kept out of the database: sled keeps the values it was given in its
//! tree nodes, so the state of the checkpoints retained (megabytes each)
//! stayed in the process's memory; a file costs nothing once written.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::writeback::Writeback;

/// The folder, inside the store's, of the checkpoints' state files.
pub(crate) const CHECKPOINT_DIR: &str = "checkpoints";

/// The extension of a whole state file.
const EXTENSION: &str = "state";

/// The extension of a state file being written.
const PARTIAL: &str = "partial";

/// One pipeline's state files.
#[derive(Debug, Clone)]
pub(crate) struct StateFiles {
    dir: PathBuf,
}

/// What a folder holds: whole state files by checkpoint id, and files
/// never finished.
struct Listing {
    whole: Vec<(u64, PathBuf)>,
    partial: Vec<PathBuf>,
}

/// A state file being written: blobs one after another, each one's length
/// and CRC counted as its bytes go by, so that no blob need be held whole
/// in memory. It is named as a whole state file only by
/// [`finish`](Self::finish); dropped before, it is removed. It goes to the
/// disk as it is written, and out of the page cache (see [`Writeback`]).
pub struct StateFileWriter {
    file: File,
    writeback: Writeback,
    partial: PathBuf,
    whole: PathBuf,
    dir: PathBuf,
    blob_len: u64,
    blob_crc: crc32fast::Hasher,
    written: u64,
    finished: bool,
}

impl StateFileWriter {
    /// Ends the blob being written: its length and CRC. The next bytes
    /// start the next blob.
    pub fn end_blob(&mut self) -> (u64, u32) {
        let crc = std::mem::take(&mut self.blob_crc).finalize();
        (std::mem::take(&mut self.blob_len), crc)
    }

    /// Bytes written in all.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Makes the file durable under its whole name.
    pub fn finish(mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.writeback.synced(&self.file);
        std::fs::rename(&self.partial, &self.whole)?;
        self.finished = true;
        // The rename is durable before the manifest names the file.
        File::open(&self.dir)?.sync_all()
    }
}

impl Write for StateFileWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.file.write(bytes)?;
        self.blob_crc.update(&bytes[..n]);
        self.blob_len += n as u64;
        self.written += n as u64;
        self.writeback.wrote(&self.file, self.written);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for StateFileWriter {
    /// A file never finished is removed (or, failing that, by the next
    /// [`StateFiles::remove`]).
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Reads one blob of a state file (or any reader) as it goes: at most its
/// length, each byte counted into its CRC, so that once it has been read
/// to the end ([`finish`](Self::finish)) it can be checked against its
/// manifest without having been held whole.
pub(crate) struct BlobReader<R> {
    input: io::Take<R>,
    crc: crc32fast::Hasher,
    read: u64,
}

impl<R: Read> BlobReader<R> {
    /// The next `len` bytes of `input`.
    pub(crate) fn new(input: R, len: u64) -> Self {
        BlobReader {
            input: input.take(len),
            crc: crc32fast::Hasher::new(),
            read: 0,
        }
    }

    /// Reads what is left of the blob; its length and CRC as read (short
    /// if the input ended before the blob).
    pub(crate) fn finish(mut self) -> io::Result<(u64, u32)> {
        // In large reads: a blob passed over may be gigabytes.
        let mut buf = vec![0; 64 << 10];
        loop {
            match self.read(&mut buf) {
                Ok(0) => return Ok((self.read, self.crc.finalize())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<R: Read> Read for BlobReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        self.crc.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

impl StateFiles {
    /// The state files in `dir` (created when the first is written).
    pub(crate) fn new(dir: PathBuf) -> StateFiles {
        StateFiles { dir }
    }

    /// Its folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: u64, extension: &str) -> PathBuf {
        self.dir.join(format!("{id:020}.{extension}"))
    }

    /// Starts checkpoint `id`'s state file, to be written blob by blob.
    pub(crate) fn create(&self, id: u64) -> io::Result<StateFileWriter> {
        std::fs::create_dir_all(&self.dir)?;
        let partial = self.path(id, PARTIAL);
        Ok(StateFileWriter {
            file: File::create(&partial)?,
            writeback: Writeback::default(),
            partial,
            whole: self.path(id, EXTENSION),
            dir: self.dir.clone(),
            blob_len: 0,
            blob_crc: crc32fast::Hasher::new(),
            written: 0,
            finished: false,
        })
    }

    /// Writes checkpoint `id`'s blobs and makes them durable.
    pub(crate) fn write(&self, id: u64, blobs: &[Vec<u8>]) -> io::Result<()> {
        let mut file = self.create(id)?;
        for blob in blobs {
            file.write_all(blob)?;
            file.end_blob();
        }
        file.finish()
    }

    /// Checkpoint `id`'s state file, to be read blob by blob with
    /// [`BlobReader`]s, or `None` if it has no file. `InvalidData` if the
    /// file is not as long as the blobs of the lengths `lens` together.
    pub(crate) fn open(&self, id: u64, lens: &[u64]) -> io::Result<Option<File>> {
        let file = match File::open(self.path(id, EXTENSION)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let total = lens.iter().try_fold(0u64, |sum, &len| sum.checked_add(len));
        let on_disk = file.metadata()?.len();
        if total != Some(on_disk) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                match total {
                    Some(total) => {
                        format!("its state file has {on_disk} bytes, the manifest says {total}")
                    }
                    None => "its manifest's blob lengths add up past 2^64".to_owned(),
                },
            ));
        }
        Ok(Some(file))
    }

    /// Removes the state files of the checkpoints `gone` says, and every
    /// file never finished.
    pub(crate) fn remove(&self, gone: impl Fn(u64) -> bool) -> io::Result<()> {
        let listing = self.list()?;
        let doomed = listing
            .whole
            .into_iter()
            .filter(|(id, _)| gone(*id))
            .map(|(_, path)| path);
        for path in doomed.chain(listing.partial) {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes every state file and the folder.
    pub(crate) fn clear(&self) -> io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn list(&self) -> io::Result<Listing> {
        let mut listing = Listing {
            whole: Vec::new(),
            partial: Vec::new(),
        };
        let items = match std::fs::read_dir(&self.dir) {
            Ok(items) => items,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(listing),
            Err(e) => return Err(e),
        };
        for item in items {
            let path = item?.path();
            let id = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok());
            let extension = path.extension().and_then(|e| e.to_str());
            match (id, extension) {
                (Some(id), Some(EXTENSION)) => listing.whole.push((id, path)),
                (Some(_), Some(PARTIAL)) => listing.partial.push(path),
                _ => {}
            }
        }
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checkpoint `id`'s blobs of the lengths `lens`, if it has a file.
    fn read(files: &StateFiles, id: u64, lens: &[u64]) -> Option<Vec<Vec<u8>>> {
        let mut file = files.open(id, lens).unwrap()?;
        let blobs = lens.iter().map(|&len| {
            let mut blob = Vec::new();
            BlobReader::new(&mut file, len)
                .read_to_end(&mut blob)
                .unwrap();
            blob
        });
        Some(blobs.collect())
    }

    #[test]
    fn blobs_written_piece_by_piece_read_back_with_their_lengths_and_crcs() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(dir.path().join("p"));
        let blobs = [b"first blob".to_vec(), Vec::new(), vec![7; 100_000]];
        let mut file = files.create(3).unwrap();
        let mut sums = Vec::new();
        for blob in &blobs {
            for piece in blob.chunks(999) {
                file.write_all(piece).unwrap();
            }
            sums.push(file.end_blob());
        }
        assert_eq!(file.written(), 100_010);
        // Not a whole state file until finished.
        assert!(read(&files, 3, &[10, 0, 100_000]).is_none());
        file.finish().unwrap();
        let expected: Vec<(u64, u32)> = blobs
            .iter()
            .map(|b| (b.len() as u64, crc32fast::hash(b)))
            .collect();
        assert_eq!(sums, expected);
        assert_eq!(read(&files, 3, &[10, 0, 100_000]).unwrap(), blobs);
    }

    #[test]
    fn a_state_file_given_up_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(dir.path().join("p"));
        let mut file = files.create(4).unwrap();
        file.write_all(b"half a blob").unwrap();
        drop(file);
        assert_eq!(std::fs::read_dir(files.dir()).unwrap().count(), 0);
        assert!(read(&files, 4, &[11]).is_none());
    }
}
