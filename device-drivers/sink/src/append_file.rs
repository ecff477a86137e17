//! A file written by appending, opened on first use, whose end a checkpoint
//! records and a restore goes back to: what sinks writing local files share.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// An append-only file, opened (and its folder created) on the first write,
/// so that checking a pipeline creates no files.
pub struct AppendFile {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AppendFile {
    /// A file at `path`, not opened yet.
    pub fn new(path: &Path) -> Self {
        AppendFile {
            path: path.to_owned(),
            out: None,
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer, opening the file if needed.
    pub fn out(&mut self) -> io::Result<&mut BufWriter<File>> {
        match self.out {
            Some(ref mut out) => Ok(out),
            None => {
                if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .map_err(|e| {
                        io::Error::new(e.kind(), format!("{}: {e}", self.path.display()))
                    })?;
                Ok(self.out.insert(BufWriter::new(file)))
            }
        }
    }

    /// Hands what is buffered to the operating system.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }

    /// Writes everything to disk; returns the file's length (0 if it does not exist).
    pub fn commit(&mut self) -> io::Result<u64> {
        if let Some(out) = &mut self.out {
            out.flush()?;
            out.get_ref().sync_data()?;
            return Ok(out.get_ref().metadata()?.len());
        }
        match std::fs::metadata(&self.path) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Cuts the file back to `len` bytes: what was appended after a checkpoint goes.
    pub fn rewind(&mut self, len: u64) -> io::Result<()> {
        self.out = None;
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
