//! Reading the file, line by line.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use eddy_driver::{Driver, DriverError, Poll, Record, Rejected, Value};

use super::{FileConfig, FileFormat};

/// Reads records from a JSON-lines or CSV file, in file order, then ends.
pub struct FileDriver {
    path: PathBuf,
    reader: BufReader<File>,
    /// Bytes read so far.
    offset: u64,
    format: FileFormat,
    key_field: String,
    time_field: String,
    /// CSV column names, from the header.
    columns: Vec<Arc<str>>,
    /// Lines read so far (the position in the file).
    line: u64,
    rejected: Vec<Rejected>,
}

impl FileDriver {
    /// Opens the file (`path` already resolved); reads the CSV header.
    pub fn open(config: &FileConfig, path: &Path) -> Result<Self, DriverError> {
        let device_error = |message: String| DriverError::Device {
            device: path.display().to_string(),
            message,
        };
        let file = File::open(path).map_err(|e| device_error(e.to_string()))?;
        let mut driver = FileDriver {
            path: path.to_owned(),
            reader: BufReader::new(file),
            offset: 0,
            format: config.format(),
            key_field: config.key_field.clone(),
            time_field: config.time_field.clone(),
            columns: Vec::new(),
            line: 0,
            rejected: Vec::new(),
        };
        if driver.format == FileFormat::Csv {
            let header = driver
                .next_line()
                .map_err(device_error)?
                .ok_or_else(|| device_error("empty CSV file: expected a header row".into()))?;
            driver.columns = csv_fields(&header)
                .map_err(device_error)?
                .into_iter()
                .map(|c| Arc::from(c.trim()))
                .collect();
            for needed in [&driver.key_field, &driver.time_field] {
                if !driver.columns.iter().any(|c| **c == **needed) {
                    return Err(DriverError::Config(format!(
                        "{}: the CSV header has no column `{needed}`",
                        path.display()
                    )));
                }
            }
        }
        Ok(driver)
    }

    fn next_line(&mut self) -> Result<Option<String>, String> {
        let mut line = String::new();
        let read = self
            .reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if read == 0 {
            return Ok(None);
        }
        self.offset += read as u64;
        self.line += 1;
        if line.ends_with('\n') {
            line.pop();
            if line.ends_with('\r') {
                line.pop();
            }
        }
        Ok(Some(line))
    }

    fn parse(&self, line: &str) -> Result<Record, String> {
        match self.format {
            FileFormat::Jsonl => self.parse_json(line),
            FileFormat::Csv => self.parse_csv(line),
        }
    }

    fn parse_json(&self, line: &str) -> Result<Record, String> {
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let object = value.as_object().ok_or("expected a JSON object")?;
        let key = match object.get(&self.key_field) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => return Err(format!("expected a string `{}`", self.key_field)),
        };
        let time = object
            .get(&self.time_field)
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| {
                format!(
                    "expected an integer `{}` (ms since the Unix epoch)",
                    self.time_field
                )
            })?;
        let mut record = Record::new(key, time);
        let mut add = |name: &str, v: &serde_json::Value| -> Result<(), String> {
            let value = match v {
                serde_json::Value::Null => return Ok(()),
                serde_json::Value::Bool(b) => Value::Bool(*b),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => Value::I64(i),
                    None => Value::F64(n.as_f64().unwrap_or(f64::NAN)),
                },
                serde_json::Value::String(s) => Value::Str(s.as_str().into()),
                _ => {
                    return Err(format!(
                        "field `{name}`: expected a number, boolean or string"
                    ));
                }
            };
            record.fields.push((name.into(), value));
            Ok(())
        };
        for (name, v) in object {
            if *name == self.key_field || *name == self.time_field {
                continue;
            }
            match (name.as_str(), v) {
                ("fields", serde_json::Value::Object(fields)) => {
                    for (name, v) in fields {
                        add(name, v)?;
                    }
                }
                _ => add(name, v)?,
            }
        }
        Ok(record)
    }

    fn parse_csv(&self, line: &str) -> Result<Record, String> {
        let cells = csv_fields(line)?;
        if cells.len() != self.columns.len() {
            return Err(format!(
                "expected {} columns as in the header, found {}",
                self.columns.len(),
                cells.len()
            ));
        }
        let mut key = None;
        let mut time = None;
        let mut fields = Vec::new();
        for (column, cell) in self.columns.iter().zip(cells) {
            let cell = cell.trim();
            if **column == *self.key_field {
                key = Some(cell.to_owned());
            } else if **column == *self.time_field {
                time = Some(cell.parse::<i64>().map_err(|_| {
                    format!("column `{column}`: expected an integer time in ms, found {cell:?}")
                })?);
            } else if !cell.is_empty() {
                let value = if let Ok(i) = cell.parse::<i64>() {
                    Value::I64(i)
                } else if let Ok(f) = cell.parse::<f64>() {
                    Value::F64(f)
                } else if let Ok(b) = cell.parse::<bool>() {
                    Value::Bool(b)
                } else {
                    Value::Str(cell.into())
                };
                fields.push((column.clone(), value));
            }
        }
        Ok(Record {
            key: key.unwrap_or_default().into(),
            time: time.ok_or("no time")?,
            fields,
        })
    }
}

/// The cells of one CSV line.
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    match reader.records().next() {
        Some(Ok(row)) => Ok(row.iter().map(str::to_owned).collect()),
        Some(Err(e)) => Err(e.to_string()),
        None => Ok(Vec::new()),
    }
}

impl Driver for FileDriver {
    fn poll(&mut self, out: &mut Vec<Record>, max: usize) -> Result<Poll, DriverError> {
        let mut taken = 0;
        while taken < max {
            let line = self.next_line().map_err(|message| DriverError::Device {
                device: self.path.display().to_string(),
                message,
            })?;
            let Some(line) = line else {
                return Ok(if taken == 0 { Poll::Ended } else { Poll::Ready });
            };
            if line.trim().is_empty() {
                continue;
            }
            match self.parse(&line) {
                Ok(record) => {
                    out.push(record);
                    taken += 1;
                }
                Err(reason) => self.rejected.push(Rejected {
                    origin: format!("{}:{}", self.path.display(), self.line),
                    input: line,
                    reason,
                }),
            }
        }
        Ok(Poll::Ready)
    }

    fn take_rejected(&mut self) -> Vec<Rejected> {
        std::mem::take(&mut self.rejected)
    }

    /// The byte offset and line number after the last line read.
    fn position(&self) -> Option<Vec<u8>> {
        let mut position = self.offset.to_le_bytes().to_vec();
        position.extend_from_slice(&self.line.to_le_bytes());
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
        self.reader
            .seek(SeekFrom::Start(offset))
            .map_err(|e| DriverError::Device {
                device: self.path.display().to_string(),
                message: format!("cannot go back to byte {offset}: {e}"),
            })?;
        self.offset = offset;
        self.line = line;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeking_to_a_position_reads_again_what_followed_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let lines: String = (0..5)
            .map(|t| format!("{{\"key\":\"k\",\"time\":{t}}}\n"))
            .collect();
        std::fs::write(&path, lines).unwrap();
        let config: FileConfig = toml::from_str("path = \"r.jsonl\"").unwrap();
        let mut driver = FileDriver::open(&config, &path).unwrap();
        let mut out = Vec::new();
        driver.poll(&mut out, 2).unwrap();
        let position = driver.position().unwrap();
        driver.poll(&mut out, 10).unwrap();
        assert_eq!(out.len(), 5);
        driver.seek(&position).unwrap();
        let mut again = Vec::new();
        driver.poll(&mut again, 10).unwrap();
        let times: Vec<i64> = again.iter().map(|r| r.time).collect();
        assert_eq!(times, [2, 3, 4]);
        assert!(driver.seek(b"bad").is_err());
    }

    fn read(name: &str, text: &str, config: &str) -> (Vec<Record>, Vec<Rejected>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let config: FileConfig = toml::from_str(&format!(
            "path = {:?}\n{config}",
            path.display().to_string()
        ))
        .unwrap();
        let mut driver = FileDriver::open(&config, &path).unwrap();
        let mut out = Vec::new();
        while driver.poll(&mut out, 2).unwrap() != Poll::Ended {}
        (out, driver.take_rejected())
    }

    #[test]
    fn json_lines_with_custom_key_and_time_fields() {
        let (records, rejected) = read(
            "in.jsonl",
            "{\"link\":\"a\",\"ts\":5,\"loss\":0.5,\"up\":true}\n\n{\"link\":\"b\",\"ts\":6,\"fields\":{\"loss\":1}}\n{\"link\":\"c\"}\n",
            "key_field = \"link\"\ntime_field = \"ts\"",
        );
        assert_eq!(
            records,
            [
                Record::new("a", 5).with("loss", 0.5).with("up", true),
                Record::new("b", 6).with("loss", 1i64)
            ]
        );
        assert_eq!(rejected.len(), 1);
        assert!(
            rejected[0].origin.ends_with("in.jsonl:4"),
            "{:?}",
            rejected[0]
        );
        assert!(rejected[0].reason.contains("`ts`"), "{:?}", rejected[0]);
    }

    #[test]
    fn csv_with_a_header() {
        let (records, rejected) = read(
            "in.csv",
            "time,key,v,note\n1000,a,1.5,\n1001,b,2,\"x, y\"\nnope,c,3,\n",
            "",
        );
        assert_eq!(
            records,
            [
                Record::new("a", 1000).with("v", 1.5),
                Record::new("b", 1001).with("v", 2i64).with("note", "x, y")
            ]
        );
        assert_eq!(rejected.len(), 1);
        assert!(rejected[0].origin.ends_with("in.csv:4"));
    }
}
