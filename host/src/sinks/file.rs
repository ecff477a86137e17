//! The `file` sink: JSON lines appended to a file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use eddy_abi::Record;

use super::{Sink, write_json_line};

/// Appends records as JSON lines to a file, opened (and its folder created)
/// on the first write, so that checking a pipeline creates no files.
pub struct FileSink {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl FileSink {
    /// A sink appending to `path`.
    pub fn new(path: &Path) -> Self {
        FileSink {
            path: path.to_owned(),
            out: None,
        }
    }

    fn out(&mut self) -> io::Result<&mut BufWriter<File>> {
        if self.out.is_none() {
            self.out = Some(self.open()?);
        }
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("file sink not open"))
    }

    fn open(&self) -> io::Result<BufWriter<File>> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
        Ok(BufWriter::new(file))
    }
}

impl Sink for FileSink {
    fn write(&mut self, output: &str, id: &str, record: &Record) -> io::Result<()> {
        write_json_line(self.out()?, output, id, record)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}
