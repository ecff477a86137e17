//! A file written by appending, opened on first use, whose length a
//! checkpoint records and a restore goes back to: what sinks writing local
//! files share.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An append-only file, opened (and its folder created) on the first
/// write, so that checking a pipeline creates no files. Bytes are taken
/// into memory and written at [`AppendFile::flush`]; a write that fails
/// partway (a full disk) is cut off again, so the file never holds part of
/// a line, and the bytes are kept for the next try.
pub struct AppendFile {
    path: PathBuf,
    file: Option<File>,
    /// Bytes taken and not written yet.
    pending: Vec<u8>,
    /// The file's length after the last write that worked.
    len: u64,
}

impl AppendFile {
    /// A file at `path`, not opened yet.
    pub fn new(path: &Path) -> Self {
        AppendFile {
            path: path.to_owned(),
            file: None,
            pending: Vec::new(),
            len: 0,
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length with the bytes taken and not written yet; opens
    /// (and creates) the file if it is not open.
    pub fn size(&mut self) -> io::Result<u64> {
        self.open()?;
        Ok(self.len + self.pending.len() as u64)
    }

    /// Where to put bytes for the next flush.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    fn open(&mut self) -> io::Result<&mut File> {
        match self.file {
            Some(ref mut file) => Ok(file),
            None => {
                let context = |e: io::Error| {
                    io::Error::new(e.kind(), format!("{}: {e}", self.path.display()))
                };
                if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(context)?;
                }
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .map_err(context)?;
                self.len = file.metadata().map_err(context)?.len();
                Ok(self.file.insert(file))
            }
        }
    }

    /// Writes what was taken. On an error, the file is cut back to where it
    /// was, the bytes are kept, and the next flush tries them again.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let len = self.len;
        let pending = std::mem::take(&mut self.pending);
        let file = match self.open() {
            Ok(file) => file,
            Err(e) => {
                self.pending = pending;
                return Err(e);
            }
        };
        let mut written = 0;
        let failure = loop {
            if written == pending.len() {
                break None;
            }
            match file.write(&pending[written..]) {
                Ok(0) => break Some(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        let Some(e) = failure else {
            self.len += pending.len() as u64;
            // Keep the allocation for the next bytes.
            self.pending = pending;
            self.pending.clear();
            return Ok(());
        };
        // Whole lines that went in stay; no part of a line does, and the
        // rest is kept for the next try.
        let whole = memrchr_newline(&pending[..written]).map_or(0, |i| i + 1);
        let cut = file.set_len(len + whole as u64);
        self.file = None;
        match cut {
            Ok(()) => {
                self.len = len + whole as u64;
                self.pending = pending[whole..].to_vec();
                Err(e)
            }
            Err(cut) => {
                self.pending = pending;
                Err(io::Error::new(
                    e.kind(),
                    format!("{e}; and cutting off the partial write failed: {cut}"),
                ))
            }
        }
    }

    /// Writes everything to disk; returns the file's length (0 if it does not exist).
    pub fn commit(&mut self) -> io::Result<u64> {
        self.flush()?;
        if let Some(file) = &self.file {
            file.sync_data()?;
            return Ok(self.len);
        }
        match std::fs::metadata(&self.path) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Cuts the file back to `len` bytes: what was appended after a
    /// checkpoint goes, and so does anything not written yet.
    pub fn rewind(&mut self, len: u64) -> io::Result<()> {
        self.file = None;
        self.pending.clear();
        match OpenOptions::new().write(true).open(&self.path) {
            Ok(file) if file.metadata()?.len() > len => {
                file.set_len(len)?;
                file.sync_data()
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("{}: {e}", self.path.display()),
            )),
        }
    }
}

/// Where the last line ends in `bytes`.
fn memrchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().rposition(|b| *b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_fails_leaves_no_partial_line_and_is_tried_again() {
        // /dev/full takes no byte: every write fails with ENOSPC.
        let mut full = AppendFile::new(Path::new("/dev/full"));
        full.buffer().extend_from_slice(b"a line\n");
        assert!(full.flush().is_err());
        assert_eq!(full.buffer(), b"a line\n", "kept for the next try");

        let dir = std::env::temp_dir().join(format!("eddy-append-{}", std::process::id()));
        let path = dir.join("out.jsonl");
        let mut file = AppendFile::new(&path);
        file.buffer().extend_from_slice(b"one\n");
        file.flush().unwrap();
        file.buffer().extend_from_slice(b"two\n");
        assert_eq!(file.commit().unwrap(), 8);
        file.buffer().extend_from_slice(b"three\n");
        file.rewind(4).unwrap();
        file.buffer().extend_from_slice(b"four\n");
        file.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\nfour\n");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
