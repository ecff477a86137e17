//! CSV rows to records: a push parser (csv-core) that takes input in any
//! pieces, so that files, streams and messages share it, and the mapping of
//! a row's cells to a record.

use std::sync::Arc;

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use eddy_abi::{Record, Value};

use crate::decoder::{Meta, Names};
use crate::settings::Decoding;
use crate::time;

/// Splits CSV input into rows, whatever pieces it comes in.
pub(crate) struct RowParser {
    core: Reader,
    /// The cells of the row being read, back to back.
    cells: Vec<u8>,
    cells_len: usize,
    /// Where each cell ends in `cells`.
    ends: Vec<usize>,
    ends_len: usize,
}

/// What feeding the parser gave.
pub(crate) enum Row {
    /// A whole row is ready: see [`RowParser::cells`].
    Ready,
    /// The input ran out inside a row (or between rows).
    NeedInput,
    /// The input has ended.
    End,
}

impl RowParser {
    pub(crate) fn new(settings: &Decoding) -> Self {
        let mut builder = ReaderBuilder::new();
        builder.delimiter(settings.csv.delimiter as u8);
        builder.comment(settings.csv.comment.map(|c| c as u8));
        RowParser {
            core: builder.build(),
            cells: vec![0; 1024],
            cells_len: 0,
            ends: vec![0; 32],
            ends_len: 0,
        }
    }

    /// Reads from `input` until a row is complete or the input is used up;
    /// returns what happened and how many bytes of `input` were taken. An
    /// empty `input` means the end of the input.
    pub(crate) fn feed(&mut self, input: &[u8]) -> (Row, usize) {
        let mut taken = 0;
        loop {
            let (result, nin, nout, nend) = self.core.read_record(
                &input[taken..],
                &mut self.cells[self.cells_len..],
                &mut self.ends[self.ends_len..],
            );
            taken += nin;
            self.cells_len += nout;
            self.ends_len += nend;
            match result {
                ReadRecordResult::InputEmpty => return (Row::NeedInput, taken),
                ReadRecordResult::OutputFull => {
                    let len = self.cells.len() * 2;
                    self.cells.resize(len, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len() * 2;
                    self.ends.resize(len, 0);
                }
                ReadRecordResult::Record => return (Row::Ready, taken),
                ReadRecordResult::End => return (Row::End, taken),
            }
        }
    }

    /// The cells of the row just read; the next feed starts a new row.
    pub(crate) fn take_cells(&mut self) -> Cells<'_> {
        let cells = Cells {
            bytes: &self.cells[..self.cells_len],
            ends: &self.ends[..self.ends_len],
        };
        self.cells_len = 0;
        self.ends_len = 0;
        cells
    }

    /// Lines finished so far (csv-core counts from 1).
    pub(crate) fn line(&self) -> u64 {
        self.core.line() - 1
    }

    /// Forgets any partly read row; line numbers go on from `line`.
    pub(crate) fn reset(&mut self, line: u64) {
        self.core.reset();
        self.core.set_line(line + 1);
        self.cells_len = 0;
        self.ends_len = 0;
    }
}

/// The cells of one row.
pub(crate) struct Cells<'a> {
    bytes: &'a [u8],
    ends: &'a [usize],
}

impl<'a> Cells<'a> {
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let cell = &self.bytes[start..end];
            start = end;
            cell
        })
    }

    /// The row as text, for the dead-letter log.
    pub(crate) fn to_text(&self, delimiter: char) -> String {
        let cells: Vec<String> = self
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        cells.join(&delimiter.to_string())
    }
}

/// What each column of a CSV input is.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    names: Vec<Arc<str>>,
    key: Option<usize>,
    time: Option<usize>,
}

impl Columns {
    /// Columns from a header row or `csv.columns`; the key and time columns
    /// must be among them.
    pub(crate) fn new<'s>(
        names: impl Iterator<Item = &'s str>,
        settings: &Decoding,
    ) -> Result<Columns, String> {
        let names: Vec<Arc<str>> = names.map(|n| Arc::from(n.trim())).collect();
        let find = |field: &str| -> Result<Option<usize>, String> {
            if field.is_empty() {
                return Ok(None);
            }
            match names.iter().position(|n| **n == *field) {
                Some(i) => Ok(Some(i)),
                None => Err(format!(
                    "the CSV header has no column `{field}`; it has {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        };
        Ok(Columns {
            key: find(&settings.key_field)?,
            time: find(&settings.time_field)?,
            names,
        })
    }

    /// A header row's columns.
    pub(crate) fn from_header(cells: &Cells<'_>, settings: &Decoding) -> Result<Columns, String> {
        let names = cells
            .iter()
            .map(std::str::from_utf8)
            .collect::<Result<Vec<&str>, _>>()
            .map_err(|_| "the CSV header is not UTF-8".to_owned())?;
        Self::new(names.into_iter(), settings)
    }

    /// The record a row holds. Empty cells are no field; each other cell is
    /// an integer, a float, `true`/`false`, or else a string.
    pub(crate) fn record(
        &self,
        cells: &Cells<'_>,
        settings: &Decoding,
        names: &mut Names,
        meta: &Meta<'_>,
    ) -> Result<Record, String> {
        if cells.len() != self.names.len() {
            return Err(format!(
                "expected {} cells as the header has columns, found {}",
                self.names.len(),
                cells.len()
            ));
        }
        let mut key = None;
        let mut time = None;
        let mut fields = Vec::with_capacity(self.names.len());
        for (i, cell) in cells.iter().enumerate() {
            let column = &self.names[i];
            let text =
                std::str::from_utf8(cell).map_err(|_| format!("column `{column}`: not UTF-8"))?;
            let text = match text.as_bytes() {
                [first, .., last]
                    if !first.is_ascii_whitespace() && !last.is_ascii_whitespace() =>
                {
                    text
                }
                _ => text.trim(),
            };
            if Some(i) == self.key {
                key = Some(names.key(text));
            } else if Some(i) == self.time {
                time = Some(
                    time::from_str(text, settings.time_format)
                        .map_err(|e| format!("column `{column}`: {e}"))?,
                );
            } else if !text.is_empty() {
                fields.push((column.clone(), cell_value(text)));
            }
        }
        let key = match key {
            Some(key) => key,
            None => names.key(meta.key.unwrap_or("")),
        };
        Ok(Record {
            key,
            time: time.unwrap_or(meta.arrival_ms),
            fields,
        })
    }
}

/// A cell's value: the narrowest of integer, float, boolean, string.
fn cell_value(text: &str) -> Value {
    if let Some(i) = parse_i64(text.as_bytes()) {
        return Value::I64(i);
    }
    let b = text.as_bytes();
    // Only what could be a number goes to the (slower) float parser.
    if b.first().is_some_and(|c| {
        c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'i' | b'I' | b'n' | b'N')
    }) && let Ok(f) = text.parse::<f64>()
    {
        return Value::F64(f);
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::Str(text.into()),
    }
}

/// An optionally signed decimal integer that fits an `i64`.
fn parse_i64(b: &[u8]) -> Option<i64> {
    let (negative, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_take_the_narrowest_type() {
        assert_eq!(cell_value("42"), Value::I64(42));
        assert_eq!(cell_value("-9223372036854775808"), Value::I64(i64::MIN));
        assert_eq!(
            cell_value("9223372036854775808"),
            Value::F64(9.223372036854776e18)
        );
        assert_eq!(cell_value("13.25"), Value::F64(13.25));
        assert_eq!(cell_value("-.5"), Value::F64(-0.5));
        assert_eq!(cell_value("1e3"), Value::F64(1000.0));
        assert_eq!(cell_value("true"), Value::Bool(true));
        assert_eq!(cell_value("nope"), Value::Str("nope".into()));
        assert_eq!(cell_value("12abc"), Value::Str("12abc".into()));
        assert_eq!(parse_i64(b"+7"), Some(7));
        assert_eq!(parse_i64(b"-"), None);
    }

    #[test]
    fn rows_may_come_in_any_pieces() {
        let settings = Decoding::new(crate::Format::Csv, "key", "time");
        let input = b"a,\"b\nc\",d\r\ne,f,g\n";
        for piece in 1..input.len() {
            let mut parser = RowParser::new(&settings);
            let mut rows = Vec::new();
            let mut rest: &[u8] = input;
            loop {
                let chunk = &rest[..piece.min(rest.len())];
                let (row, taken) = parser.feed(chunk);
                rest = &rest[taken..];
                match row {
                    Row::Ready => {
                        let cells = parser.take_cells();
                        rows.push(
                            cells
                                .iter()
                                .map(|c| String::from_utf8_lossy(c).into_owned())
                                .collect::<Vec<_>>(),
                        );
                    }
                    Row::NeedInput if chunk.is_empty() => unreachable!("empty input is the end"),
                    Row::NeedInput => {}
                    Row::End => break,
                }
            }
            assert_eq!(
                rows,
                [vec!["a", "b\nc", "d"], vec!["e", "f", "g"]],
                "pieces of {piece}"
            );
        }
    }
}
