//! CSV rows to records: a push parser (csv-core) that takes input in any
//! pieces, so that files, streams and messages share it, and the mapping of
//! a row's cells to a record.

use std::sync::Arc;

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use eddy_abi::{Record, Value};

use crate::decoder::{Meta, Names, error};
use crate::number::parse_i64;
use crate::settings::Decoding;
use crate::stream::{MAX_ITEM_BYTES, Step};
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
    /// Whether the parser stands at the start of a row, where a plain row
    /// may be split without it.
    at_row_start: bool,
    /// The [`Cells::gap`] of the row read last.
    gap: usize,
    /// Whether the plain row read last ended at a carriage return, so that
    /// a line feed may follow.
    after_cr: bool,
    /// The separator between cells.
    delimiter: u8,
    /// The first byte of comment lines, if any.
    comment: Option<u8>,
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
        builder.delimiter(settings.csv.delimiter.byte());
        builder.comment(settings.csv.comment.map(|c| c.byte()));
        RowParser {
            core: builder.build(),
            cells: vec![0; 1024],
            cells_len: 0,
            ends: vec![0; 32],
            ends_len: 0,
            at_row_start: true,
            gap: 0,
            after_cr: false,
            delimiter: settings.csv.delimiter.byte(),
            comment: settings.csv.comment.map(|c| c.byte()),
        }
    }

    /// Splits a plain row at the start of `input` without the parser's
    /// state machine: a whole line that is not empty, not a comment, and has
    /// no quote and no carriage return but the one before its line feed.
    /// Its cells are then exactly the text between separators, as the
    /// parser would read them, and it takes the bytes the parser would
    /// take: through a lone line feed, or through the carriage return of a
    /// CRLF (its line feed goes with the next row). Returns the bytes taken,
    /// or `None` for anything else, which the parser reads.
    fn plain_row(&mut self, input: &[u8]) -> Option<usize> {
        // The line feed after the last row's carriage return, which ends
        // that row; the parser takes it with what follows.
        let skip = usize::from(self.after_cr && input.first() == Some(&b'\n'));
        let rest = &input[skip..];
        let lf = memchr::memchr(b'\n', rest)?;
        let (row, taken) = match &rest[..lf] {
            [row @ .., b'\r'] => (row, lf),
            row => (row, lf + 1),
        };
        if row.is_empty()
            || Some(row[0]) == self.comment
            || memchr::memchr2(b'"', b'\r', row).is_some()
        {
            return None;
        }
        // The row is copied whole; each cell ends at a separator.
        if self.cells.len() < row.len() {
            self.cells.resize(row.len().next_power_of_two(), 0);
        }
        self.cells[..row.len()].copy_from_slice(row);
        self.cells_len = row.len();
        let mut n = 0;
        for end in memchr::memchr_iter(self.delimiter, row).chain([row.len()]) {
            if n == self.ends.len() {
                self.ends.resize(n * 2, 0);
            }
            self.ends[n] = end;
            n += 1;
        }
        self.ends_len = n;
        self.gap = 1;
        self.after_cr = taken == lf;
        // The parser's line count goes on as if it had read these bytes.
        let line_feeds = skip + usize::from(taken > lf);
        self.core.set_line(self.core.line() + line_feeds as u64);
        Some(skip + taken)
    }

    /// Reads from `input` until a row is complete or the input is used up;
    /// returns what happened and how many bytes of `input` were taken. An
    /// empty `input` means the end of the input.
    pub(crate) fn feed(&mut self, input: &[u8]) -> (Row, usize) {
        if self.at_row_start
            && let Some(taken) = self.plain_row(input)
        {
            return (Row::Ready, taken);
        }
        // Only after a whole row is the parser known to be at a row's start.
        // (A line feed left after a carriage return is an empty line to it.)
        self.at_row_start = false;
        self.after_cr = false;
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
                ReadRecordResult::Record => {
                    self.at_row_start = true;
                    return (Row::Ready, taken);
                }
                ReadRecordResult::End => return (Row::End, taken),
            }
        }
    }

    /// The cells of the row just read; the next feed starts a new row.
    pub(crate) fn take_cells(&mut self) -> Cells<'_> {
        let cells = Cells {
            bytes: &self.cells[..self.cells_len],
            ends: &self.ends[..self.ends_len],
            gap: std::mem::take(&mut self.gap),
        };
        self.cells_len = 0;
        self.ends_len = 0;
        cells
    }

    /// Forgets any partly read row.
    pub(crate) fn reset(&mut self) {
        self.core.reset();
        self.cells_len = 0;
        self.ends_len = 0;
        self.gap = 0;
        self.after_cr = false;
        self.at_row_start = true;
    }
}

/// The cells of one row.
pub(crate) struct Cells<'a> {
    bytes: &'a [u8],
    ends: &'a [usize],
    /// Bytes between one cell's end and the next one's start in `bytes`:
    /// 0 for cells the parser wrote back to back, 1 for a plain row copied
    /// whole with its separators.
    gap: usize,
}

impl<'a> Cells<'a> {
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let cell = &self.bytes[start..end];
            start = end + self.gap;
            cell
        })
    }

    /// The row as text, for the dead-letter log.
    pub(crate) fn to_text(&self, delimiter: u8) -> String {
        let cells: Vec<String> = self
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        cells.join(&char::from(delimiter).to_string())
    }

    /// Line breaks inside its (quoted) cells.
    fn line_breaks(&self) -> u64 {
        line_breaks(self.bytes)
    }
}

/// What each column of a CSV input is.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    names: Vec<Arc<str>>,
    key: Option<usize>,
    time: Option<usize>,
    /// How many columns are neither the key nor the time.
    field_columns: usize,
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
        let key = find(&settings.key_field)?;
        let time = find(&settings.time_field)?;
        let field_columns = (0..names.len())
            .filter(|i| Some(*i) != key && Some(*i) != time)
            .count();
        Ok(Columns {
            key,
            time,
            field_columns,
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

    /// The record a row holds. A cell that is empty (or only blanks) is no
    /// field; each other cell is an integer, a float, `true`/`false` (blanks
    /// around them allowed), or else a string, kept as written, as the key is.
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
        // Room for every field column and no more: a small allocation is
        // the allocator's quickest.
        let mut fields = Vec::with_capacity(self.field_columns);
        for (i, cell) in cells.iter().enumerate() {
            let column = &self.names[i];
            let text = cell_text(cell).ok_or_else(|| format!("column `{column}`: not UTF-8"))?;
            if Some(i) == self.key {
                key = Some(names.key(text));
            } else if Some(i) == self.time {
                time = Some(
                    time::from_str(text, settings.time_format)
                        .map_err(|e| format!("column `{column}`: {e}"))?,
                );
            } else if !text.trim_ascii().is_empty() {
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

/// A cell as text, if it is UTF-8. Most cells are short ASCII, which a
/// byte check accepts quicker than the full validation gets going.
fn cell_text(cell: &[u8]) -> Option<&str> {
    if cell.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(cell) });
    }
    std::str::from_utf8(cell).ok()
}

/// A cell's value: the narrowest of integer, float, boolean, string.
fn cell_value(text: &str) -> Value {
    let trimmed = match text.as_bytes() {
        [first, .., last] if !first.is_ascii_whitespace() && !last.is_ascii_whitespace() => text,
        _ => text.trim_ascii(),
    };
    let b = trimmed.as_bytes();
    if let Some(i) = parse_i64(b) {
        return Value::I64(i);
    }
    // Only what could be a number goes to the (slower) float parser.
    if b.first().is_some_and(|c| {
        c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'i' | b'I' | b'n' | b'N')
    }) && let Ok(f) = trimmed.parse::<f64>()
    {
        return Value::F64(f);
    }
    match trimmed {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::Str(text.into()),
    }
}

/// What the CSV framing is doing.
enum Phase {
    /// Reading rows.
    Rows,
    /// Dropping the rest of a row that was too long, up to the next line break.
    Skipping,
}

/// CSV input to records, row by row, for files, streams and messages alike:
/// the header (unless `csv.columns` names the columns), line numbers that
/// count the line breaks taken (so LF and CRLF input, blank and comment
/// lines, and quoted cells across lines number alike), and a bound on a
/// row's size.
pub(crate) struct CsvFraming {
    parser: RowParser,
    columns: Option<Columns>,
    /// Bytes of the row being read.
    row_bytes: usize,
    /// Line breaks taken so far.
    lines: u64,
    /// Whether the last byte taken was a line feed.
    after_lf: bool,
    phase: Phase,
}

impl CsvFraming {
    /// At the start of an input; `columns` as configured, if they are.
    pub(crate) fn new(settings: &Decoding, columns: Option<Columns>) -> Self {
        CsvFraming {
            parser: RowParser::new(settings),
            columns,
            row_bytes: 0,
            lines: 0,
            after_lf: true,
            phase: Phase::Rows,
        }
    }

    /// Line breaks taken so far.
    pub(crate) fn lines(&self) -> u64 {
        self.lines
    }

    /// Whether the columns are known (from the header or the settings).
    pub(crate) fn has_columns(&self) -> bool {
        self.columns.is_some()
    }

    /// Goes on from a position after `lines` line breaks, forgetting any
    /// partly read row; `columns`, when given, replaces the known ones (at
    /// the start of an input, the configured ones, so a header is read again).
    pub(crate) fn reset(&mut self, lines: u64, columns: Option<Option<Columns>>) {
        self.parser.reset();
        self.row_bytes = 0;
        self.lines = lines;
        self.after_lf = true;
        self.phase = Phase::Rows;
        if let Some(columns) = columns {
            self.columns = columns;
        }
    }

    /// Counts what was taken of the input.
    fn took(&mut self, taken: &[u8]) {
        if let Some(&last) = taken.last() {
            self.lines += line_breaks(taken);
            self.after_lf = last == b'\n';
        }
    }

    /// Reads until a row is done or `input` is used up; see
    /// [`crate::StreamDecoder::next`].
    pub(crate) fn next(
        &mut self,
        settings: &Decoding,
        names: &mut Names,
        input: &[u8],
        eof: bool,
        meta: &Meta<'_>,
        out: &mut Vec<Record>,
    ) -> (Step, usize) {
        if input.is_empty() && !eof {
            return (Step::NeedInput, 0);
        }
        if let Phase::Skipping = self.phase {
            return match memchr::memchr(b'\n', input) {
                Some(i) => {
                    self.took(&input[..=i]);
                    self.phase = Phase::Rows;
                    self.parser.reset();
                    (Step::Records(0), i + 1)
                }
                None if eof => (Step::End, input.len()),
                None => {
                    self.took(input);
                    (Step::NeedInput, input.len())
                }
            };
        }
        // The parser counts the line breaks it reads; nothing scans them again.
        let before = self.parser.core.line();
        let (row, taken) = self.parser.feed(input);
        self.lines += self.parser.core.line() - before;
        if let Some(&last) = input[..taken].last() {
            self.after_lf = last == b'\n';
        }
        self.row_bytes += taken;
        match row {
            Row::NeedInput if self.row_bytes > MAX_ITEM_BYTES => {
                // Drop the row: what it holds so far, and the rest up to
                // the next line break, which starts a fresh row.
                self.row_bytes = 0;
                self.phase = Phase::Skipping;
                let reason = format!("a CSV row longer than {MAX_ITEM_BYTES} bytes");
                let line = self.lines + 1;
                return (Step::Rejected(error(reason, b"", Some(line))), taken);
            }
            Row::NeedInput => return (Step::NeedInput, taken),
            Row::End => return (Step::End, taken),
            Row::Ready => self.row_bytes = 0,
        }
        let cells = self.parser.take_cells();
        // The row ends at the line break just taken, or before one still to
        // come (after a CR, or at the end of the input). Only errors need it.
        let (lines, after_lf) = (self.lines, self.after_lf);
        let line = |cells: &Cells<'_>| {
            Some(lines.saturating_sub(cells.line_breaks()) + u64::from(!after_lf))
        };
        let text = |cells: &Cells<'_>| cells.to_text(settings.csv.delimiter.byte());
        let step = match &self.columns {
            Some(columns) => match columns.record(&cells, settings, names, meta) {
                Ok(record) => {
                    out.push(record);
                    Step::Records(1)
                }
                Err(reason) => Step::Rejected(error(reason, text(&cells).as_bytes(), line(&cells))),
            },
            None => match Columns::from_header(&cells, settings) {
                Ok(header) => {
                    self.columns = Some(header);
                    Step::Records(0)
                }
                Err(reason) => Step::Fatal(error(reason, text(&cells).as_bytes(), line(&cells))),
            },
        };
        (step, taken)
    }
}

/// How many line breaks `bytes` holds. Most calls get one short row: a
/// plain loop counts it faster than the vectorised search gets going.
fn line_breaks(bytes: &[u8]) -> u64 {
    if bytes.len() <= 128 {
        bytes.iter().filter(|&&b| b == b'\n').count() as u64
    } else {
        memchr::memchr_iter(b'\n', bytes).count() as u64
    }
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
            let rows: Vec<Vec<String>> = feed_in_pieces(&mut parser, input, piece)
                .into_iter()
                .map(|(cells, _)| {
                    cells
                        .iter()
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect()
                })
                .collect();
            assert_eq!(
                rows,
                [vec!["a", "b\nc", "d"], vec!["e", "f", "g"]],
                "pieces of {piece}"
            );
        }
    }

    /// A row's cells, and how many bytes of the input were taken when it was done.
    type Taken = (Vec<Vec<u8>>, usize);

    /// The rows `parser` reads from `input` fed in pieces of `piece` bytes.
    fn feed_in_pieces(parser: &mut RowParser, input: &[u8], piece: usize) -> Vec<Taken> {
        let (mut rows, mut rest) = (Vec::new(), input);
        loop {
            let chunk = &rest[..piece.min(rest.len())];
            let (row, taken) = parser.feed(chunk);
            rest = &rest[taken..];
            match row {
                Row::Ready => {
                    let cells = parser.take_cells().iter().map(<[u8]>::to_vec).collect();
                    rows.push((cells, input.len() - rest.len()));
                }
                Row::NeedInput if chunk.is_empty() => unreachable!("empty input is the end"),
                Row::NeedInput => {}
                Row::End => return rows,
            }
        }
    }

    /// The rows and the final line count of `input` read by csv-core
    /// alone, in one piece: what the row parser must give, fast path or not.
    fn read_by_csv_core(settings: &Decoding, input: &[u8]) -> (Vec<Taken>, u64) {
        let mut core = ReaderBuilder::new()
            .delimiter(settings.csv.delimiter.byte())
            .comment(settings.csv.comment.map(|c| c.byte()))
            .build();
        let (mut out, mut ends) = (vec![0; 1 << 16], vec![0; 1 << 12]);
        let (mut rows, mut rest) = (Vec::new(), input);
        let (mut out_len, mut ends_len) = (0, 0);
        loop {
            let (result, nin, nout, nend) =
                core.read_record(rest, &mut out[out_len..], &mut ends[ends_len..]);
            rest = &rest[nin..];
            out_len += nout;
            ends_len += nend;
            match result {
                ReadRecordResult::Record => {
                    let mut start = 0;
                    let cells = ends[..std::mem::take(&mut ends_len)]
                        .iter()
                        .map(|&end| {
                            let cell = out[start..end].to_vec();
                            start = end;
                            cell
                        })
                        .collect();
                    out_len = 0;
                    rows.push((cells, input.len() - rest.len()));
                }
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::End => return (rows, core.line()),
                other => panic!("buffers too small: {other:?}"),
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn plain_rows_split_as_csv_core_splits_them(
            input in proptest::collection::vec(
                proptest::sample::select(&b"ab ,;\"\r\n#"[..]), 0..200),
            piece in 1usize..40,
            semicolon in proptest::bool::ANY,
            comments in proptest::bool::ANY,
        ) {
            let mut settings = Decoding::new(crate::Format::Csv, "key", "time");
            if semicolon {
                settings.csv.delimiter = crate::settings::AsciiChar::new(';').unwrap();
            }
            if comments {
                settings.csv.comment = crate::settings::AsciiChar::new('#');
            }
            let mut parser = RowParser::new(&settings);
            let rows = feed_in_pieces(&mut parser, &input, piece);
            proptest::prop_assert_eq!((rows, parser.core.line()), read_by_csv_core(&settings, &input));
        }
    }
}
