//! The `file` sink: JSON lines appended to a file.

use std::io;
use std::path::Path;

use eddy_abi::Record;

use super::append_file::AppendFile;
use super::{Sink, write_json_line};

/// Appends records as JSON lines to a file. A checkpoint records its length;
/// a restore cuts off what was written after, so replay writes no duplicates.
pub struct FileSink {
    file: AppendFile,
}

impl FileSink {
    /// A sink appending to `path`.
    pub fn new(path: &Path) -> Self {
        FileSink {
            file: AppendFile::new(path),
        }
    }
}

impl Sink for FileSink {
    fn write(&mut self, output: &str, id: &str, record: &Record) -> io::Result<()> {
        write_json_line(self.file.out()?, output, id, record)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    fn commit(&mut self) -> io::Result<Option<u64>> {
        self.file.commit().map(Some)
    }

    fn rewind(&mut self, position: u64) -> io::Result<()> {
        self.file.rewind(position)
    }
}
