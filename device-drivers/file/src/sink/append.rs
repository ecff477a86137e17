//! Appending records to the file.

use std::path::Path;

use eddy_sink::{AppendFile, Out, Sink, SinkError};

/// Appends records as JSON lines to a file. A checkpoint records its length;
/// a restore cuts off what was written after, so replay writes no duplicates.
pub struct FileSink {
    file: AppendFile,
    /// The path, for errors.
    name: String,
}

impl FileSink {
    /// A sink appending to `path`.
    pub fn new(path: &Path) -> Self {
        FileSink {
            file: AppendFile::new(path),
            name: path.display().to_string(),
        }
    }

    fn error(&self, e: std::io::Error) -> SinkError {
        SinkError::from_io(&self.name, e)
    }
}

impl Sink for FileSink {
    /// Takes the record as a JSON line, written at the next flush.
    fn write(&mut self, out: &Out<'_>) -> Result<(), SinkError> {
        eddy_codec::write_json_line(
            self.file.buffer(),
            Some(out.output),
            Some(out.id),
            out.record,
        )
        .map_err(|e| SinkError::Rejected(e.to_string()))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.file.flush().map_err(|e| self.error(e))
    }

    fn commit(&mut self) -> Result<Option<u64>, SinkError> {
        self.file.commit().map(Some).map_err(|e| self.error(e))
    }

    fn rewind(&mut self, position: u64) -> Result<(), SinkError> {
        self.file.rewind(position).map_err(|e| self.error(e))
    }
}
