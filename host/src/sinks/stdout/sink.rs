//! Writing JSON lines to standard output.

use std::io::{self, BufWriter, Stdout, Write};

use eddy_sink::{Out, Sink, SinkError};

/// Writes records as JSON lines to standard output.
pub struct StdoutSink {
    out: BufWriter<Stdout>,
}

impl StdoutSink {
    /// A sink on this process's standard output.
    pub fn new() -> Self {
        StdoutSink {
            out: BufWriter::new(io::stdout()),
        }
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for StdoutSink {
    fn write(&mut self, out: &Out<'_>) -> Result<(), SinkError> {
        eddy_codec::write_json_line(&mut self.out, Some(out.output), Some(out.id), out.record)
            .map_err(|e| SinkError::from_io("standard output", e))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out
            .flush()
            .map_err(|e| SinkError::from_io("standard output", e))
    }
}
