//! Reading the file in blocks, through the stream decoder.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use eddy_codec::{Decoding, Meta, Position, Step, StreamDecoder};
use eddy_driver::{Driver, DriverError, Poll, Record, Rejected};

/// Bytes read from the file at a time.
const BLOCK: usize = 256 << 10;

/// Reads records from a JSON-lines or CSV file, in file order, then ends.
pub struct FileDriver {
    path: PathBuf,
    file: File,
    block: Vec<u8>,
    /// The unread part of `block`.
    start: usize,
    end: usize,
    eof: bool,
    decoder: StreamDecoder,
    rejected: Vec<Rejected>,
}

impl FileDriver {
    /// Opens the file (`path` already resolved); reads a CSV header, which
    /// must name the key and time columns.
    pub fn open(path: &Path, decoding: Decoding) -> Result<Self, DriverError> {
        let decoder = StreamDecoder::new(decoding).map_err(DriverError::Config)?;
        let file = File::open(path)
            .map_err(|e| DriverError::Config(format!("{}: {e}", path.display())))?;
        let mut driver = FileDriver {
            path: path.to_owned(),
            file,
            block: vec![0; BLOCK],
            start: 0,
            end: 0,
            eof: false,
            decoder,
            rejected: Vec::new(),
        };
        if !driver.decoder.has_columns() {
            let mut none = Vec::new();
            let meta = Meta::now();
            while !driver.decoder.has_columns() {
                match driver.step(&mut none, &meta)? {
                    Step::End => {
                        return Err(DriverError::Config(format!(
                            "{}: empty CSV file: expected a header row",
                            path.display()
                        )));
                    }
                    Step::Records(_) | Step::NeedInput | Step::Rejected(_) => {}
                    Step::Fatal(_) => unreachable!("step turns fatal into an error"),
                }
            }
        }
        Ok(driver)
    }

    /// One decoder step, reading a block when it needs input.
    fn step(&mut self, out: &mut Vec<Record>, meta: &Meta<'_>) -> Result<Step, DriverError> {
        if self.start == self.end && !self.eof {
            let read = self
                .file
                .read(&mut self.block)
                .map_err(|e| DriverError::unavailable(self.path.display().to_string(), e))?;
            self.start = 0;
            self.end = read;
            self.eof = read == 0;
        }
        let (step, taken) =
            self.decoder
                .next(&self.block[self.start..self.end], self.eof, meta, out);
        self.start += taken;
        match step {
            Step::Rejected(e) => {
                self.rejected.push(Rejected {
                    origin: match e.line {
                        Some(line) => format!("{}:{line}", self.path.display()),
                        None => self.path.display().to_string(),
                    },
                    input: e.input.clone(),
                    reason: e.reason.clone(),
                });
                Ok(Step::Rejected(e))
            }
            Step::Fatal(e) => Err(DriverError::Config(format!(
                "{}:{}: {}",
                self.path.display(),
                e.line.unwrap_or(1),
                e.reason
            ))),
            step => Ok(step),
        }
    }
}

impl Driver for FileDriver {
    fn poll(&mut self, out: &mut Vec<Record>, max: usize) -> Result<Poll, DriverError> {
        let before = out.len();
        // Records without a time field take the time they were read.
        let meta = Meta::now();
        // Bad lines count too, so that a file of them is read a batch at a
        // time. What a poll takes depends only on the lines, never on where
        // blocks were read, so that a restored run is cut into the same
        // batches as one that never stopped.
        let mut rejected = 0;
        while out.len() - before + rejected < max {
            let step = self.step(out, &meta)?;
            if let Step::Rejected(_) = step {
                rejected += 1;
            }
            if step == Step::End {
                return Ok(if out.len() == before {
                    Poll::Ended
                } else {
                    Poll::Ready
                });
            }
        }
        Ok(Poll::Ready)
    }

    fn take_rejected(&mut self) -> Vec<Rejected> {
        std::mem::take(&mut self.rejected)
    }

    /// The byte offset and line number after the last line read.
    fn position(&self) -> Option<Vec<u8>> {
        let Position { offset, line } = self.decoder.position();
        let mut position = offset.to_le_bytes().to_vec();
        position.extend_from_slice(&line.to_le_bytes());
        Some(position)
    }

    fn seek(&mut self, position: &[u8]) -> Result<(), DriverError> {
        let (offset, line) = match position {
            [o @ .., l0, l1, l2, l3, l4, l5, l6, l7] if o.len() == 8 => (
                u64::from_le_bytes(o.try_into().unwrap_or_default()),
                u64::from_le_bytes([*l0, *l1, *l2, *l3, *l4, *l5, *l6, *l7]),
            ),
            _ => {
                return Err(DriverError::Config(format!(
                    "{}: not a file position ({} bytes)",
                    self.path.display(),
                    position.len()
                )));
            }
        };
        self.file.seek(SeekFrom::Start(offset)).map_err(|e| {
            DriverError::unavailable(
                self.path.display().to_string(),
                format!("cannot go back to byte {offset}: {e}"),
            )
        })?;
        self.start = 0;
        self.end = 0;
        self.eof = false;
        self.decoder.reset(Position { offset, line });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_codec::Format;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn drain(driver: &mut FileDriver, batch: usize) -> Vec<Record> {
        let mut out = Vec::new();
        while driver.poll(&mut out, batch).unwrap() != Poll::Ended {}
        out
    }

    #[test]
    fn seeking_to_a_position_reads_again_what_followed_it() {
        let lines: String = (0..5)
            .map(|t| format!("{{\"key\":\"k\",\"time\":{t}}}\n"))
            .collect();
        let (_dir, path) = write("r.jsonl", &lines);
        let mut driver =
            FileDriver::open(&path, Decoding::new(Format::Json, "key", "time")).unwrap();
        let mut out = Vec::new();
        driver.poll(&mut out, 2).unwrap();
        let position = driver.position().unwrap();
        driver.poll(&mut out, 10).unwrap();
        assert_eq!(out.len(), 5);
        driver.seek(&position).unwrap();
        let times: Vec<i64> = drain(&mut driver, 10).iter().map(|r| r.time).collect();
        assert_eq!(times, [2, 3, 4]);
        assert!(driver.seek(b"bad").is_err());
    }

    #[test]
    fn json_lines_with_custom_key_and_time_fields() {
        let (_dir, path) = write(
            "in.jsonl",
            "{\"link\":\"a\",\"ts\":5,\"loss\":0.5,\"up\":true}\n\n{\"link\":\"b\",\"ts\":6,\"fields\":{\"loss\":1}}\n{\"link\":\"c\"}\n",
        );
        let mut driver =
            FileDriver::open(&path, Decoding::new(Format::Json, "link", "ts")).unwrap();
        let records = drain(&mut driver, 2);
        assert_eq!(
            records,
            [
                Record::new("a", 5).with("loss", 0.5).with("up", true),
                Record::new("b", 6).with("loss", 1i64)
            ]
        );
        let rejected = driver.take_rejected();
        assert_eq!(rejected.len(), 1);
        assert!(
            rejected[0].origin.ends_with("in.jsonl:4"),
            "{:?}",
            rejected[0]
        );
        assert!(rejected[0].reason.contains("`ts`"), "{:?}", rejected[0]);
    }

    #[test]
    fn a_csv_file_larger_than_a_block_reads_whole() {
        let mut text = String::from("time,key,v,note\n");
        for i in 0..20_000 {
            text.push_str(&format!("{i},k{},{}.5,\"a, \"\"b\"\"\"\n", i % 7, i));
        }
        assert!(text.len() > BLOCK);
        let (_dir, path) = write("big.csv", &text);
        let mut driver =
            FileDriver::open(&path, Decoding::new(Format::Csv, "key", "time")).unwrap();
        let records = drain(&mut driver, 1000);
        assert_eq!(records.len(), 20_000);
        assert_eq!(
            records[19_999],
            Record::new("k0", 19_999)
                .with("v", 19_999.5)
                .with("note", "a, \"b\"")
        );
        assert!(driver.take_rejected().is_empty());
    }

    #[test]
    fn a_csv_header_without_the_key_column_is_refused_at_open() {
        let (_dir, path) = write("in.csv", "time,device\n1,a\n");
        let e = FileDriver::open(&path, Decoding::new(Format::Csv, "key", "time"))
            .err()
            .unwrap();
        assert!(
            matches!(&e, DriverError::Config(m) if m.contains("no column `key`")),
            "{e}"
        );
        let (_dir, path) = write("empty.csv", "");
        assert!(FileDriver::open(&path, Decoding::new(Format::Csv, "key", "time")).is_err());
    }
}
