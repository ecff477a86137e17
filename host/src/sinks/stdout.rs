//! The `stdout` sink: JSON lines on standard output.

use std::io::{self, BufWriter, Stdout, Write};

use eddy_abi::Record;

use super::{Sink, write_json_line};

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
    fn write(&mut self, output: &str, id: &str, record: &Record) -> io::Result<()> {
        write_json_line(&mut self.out, output, id, record)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
