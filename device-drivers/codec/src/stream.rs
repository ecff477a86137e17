//! Files and byte streams to records: a decoder without I/O that is fed
//! whatever pieces the input comes in, and says where it is, so a file can
//! be read again from a checkpointed position.

use eddy_abi::Record;

use crate::csv::CsvFraming;
use crate::decoder::{DecodeError, Decoder, Meta, error};
use crate::settings::{Decoding, Format};

/// The longest line (or CSV row) taken; longer ones are rejected, so that
/// input without line breaks cannot use up memory.
pub const MAX_ITEM_BYTES: usize = 16 << 20;

/// Where a stream decoder is: after the last line or row it finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// Bytes from the start of the input.
    pub offset: u64,
    /// Lines from the start of the input.
    pub line: u64,
}

/// What one step of a [`StreamDecoder`] gave.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// This many records were appended (a JSON array gives several; a CSV
    /// header none).
    Records(usize),
    /// A line or row that is not a record; the decoder goes on after it.
    Rejected(DecodeError),
    /// The input cannot be read any further: a CSV header that lacks the
    /// key or time column.
    Fatal(DecodeError),
    /// All the input given was taken; give more.
    NeedInput,
    /// The input has ended.
    End,
}

enum Framing {
    /// One JSON document or raw payload per line.
    Lines {
        partial: Vec<u8>,
        /// Dropping the rest of a line that was too long.
        skipping: bool,
    },
    /// CSV rows, which may span lines.
    Csv(Box<CsvFraming>),
}

/// Turns a file or a stream, fed in pieces, into records.
///
/// ```
/// use eddy_codec::{Decoding, Format, Meta, Step, StreamDecoder};
///
/// let mut decoder = StreamDecoder::new(Decoding::new(Format::Csv, "key", "time")).unwrap();
/// let mut records = Vec::new();
/// let mut input: &[u8] = b"key,time,v\na,1,0.5\nb,2,";
/// loop {
///     let (step, taken) = decoder.next(input, input.is_empty(), &Meta::now(), &mut records);
///     input = &input[taken..];
///     match step {
///         Step::NeedInput => input = b"1.5\n",
///         Step::End => break,
///         _ => {}
///     }
/// }
/// assert_eq!(records.len(), 2);
/// assert_eq!(decoder.position().line, 3);
/// ```
pub struct StreamDecoder {
    decoder: Decoder,
    framing: Framing,
    /// Bytes taken so far.
    taken: u64,
    /// Lines finished so far (line framing).
    lines: u64,
    /// After the last finished item.
    boundary: Position,
}

impl StreamDecoder {
    /// A decoder at the start of an input.
    pub fn new(settings: Decoding) -> Result<StreamDecoder, String> {
        let decoder = Decoder::new(settings)?;
        let framing = Self::framing(&decoder);
        Ok(StreamDecoder {
            decoder,
            framing,
            taken: 0,
            lines: 0,
            boundary: Position::default(),
        })
    }

    fn framing(decoder: &Decoder) -> Framing {
        match decoder.settings().format {
            Format::Json | Format::Raw => Framing::Lines {
                partial: Vec::new(),
                skipping: false,
            },
            Format::Csv => Framing::Csv(Box::new(CsvFraming::new(
                decoder.settings(),
                decoder.configured_columns().cloned(),
            ))),
        }
    }

    /// Where the decoder is: after the last item it finished. Input it has
    /// taken since (part of a line) is not counted: after seeking the input
    /// to this position and [`StreamDecoder::reset`], it is read again.
    pub fn position(&self) -> Position {
        self.boundary
    }

    /// Forgets what it holds of an unfinished item and goes on from
    /// `position` (the input must have been moved there). At offset 0 a CSV
    /// header is read again.
    pub fn reset(&mut self, position: Position) {
        self.taken = position.offset;
        self.lines = position.line;
        self.boundary = position;
        match &mut self.framing {
            Framing::Lines { partial, skipping } => {
                partial.clear();
                *skipping = false;
            }
            Framing::Csv(csv) => {
                let columns =
                    (position.offset == 0).then(|| self.decoder.configured_columns().cloned());
                csv.reset(position.line, columns);
            }
        }
    }

    /// Whether a CSV input's header has been read (always true for other formats).
    pub fn has_columns(&self) -> bool {
        match &self.framing {
            Framing::Csv(csv) => csv.has_columns(),
            Framing::Lines { .. } => true,
        }
    }

    /// Decodes the whole of `input`, which is all there is (a file read at
    /// once): records to `out`, what is not a record returned, in order.
    /// A fatal error (a CSV header without the key column) ends it.
    pub fn decode_all(
        &mut self,
        input: &[u8],
        meta: &Meta<'_>,
        out: &mut Vec<Record>,
    ) -> Vec<DecodeError> {
        let mut errors = Vec::new();
        let mut rest = input;
        loop {
            let (step, taken) = self.next(rest, true, meta, out);
            rest = &rest[taken..];
            match step {
                Step::Rejected(e) => errors.push(e),
                Step::Fatal(e) => {
                    errors.push(e);
                    return errors;
                }
                Step::End => return errors,
                Step::Records(_) | Step::NeedInput => {}
            }
        }
    }

    /// Reads from `input` until one item (a line, a row) is done or the
    /// input is used up; returns what happened and how many bytes were taken.
    /// `eof` says that nothing follows `input`.
    pub fn next(
        &mut self,
        input: &[u8],
        eof: bool,
        meta: &Meta<'_>,
        out: &mut Vec<Record>,
    ) -> (Step, usize) {
        let (step, taken) = match &mut self.framing {
            Framing::Lines { .. } => self.next_line(input, eof, meta, out),
            Framing::Csv(csv) => {
                let (settings, names) = self.decoder.parts();
                csv.next(settings, names, input, eof, meta, out)
            }
        };
        self.taken += taken as u64;
        if !matches!(step, Step::NeedInput) {
            self.boundary = Position {
                offset: self.taken,
                line: match &self.framing {
                    Framing::Csv(csv) => csv.lines(),
                    Framing::Lines { .. } => self.lines,
                },
            };
        }
        (step, taken)
    }

    fn next_line(
        &mut self,
        input: &[u8],
        eof: bool,
        meta: &Meta<'_>,
        out: &mut Vec<Record>,
    ) -> (Step, usize) {
        let Framing::Lines { partial, skipping } = &mut self.framing else {
            unreachable!("line framing")
        };
        let mut taken = 0;
        loop {
            let rest = &input[taken..];
            let (line, used) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], i + 1),
                None if eof && (!rest.is_empty() || !partial.is_empty()) => (rest, rest.len()),
                None if eof => return (Step::End, taken),
                None => {
                    if !*skipping {
                        partial.extend_from_slice(rest);
                    }
                    taken += rest.len();
                    if partial.len() > MAX_ITEM_BYTES {
                        let start: String = String::from_utf8_lossy(&partial[..64]).into_owned();
                        partial.clear();
                        *skipping = true;
                        self.lines += 1;
                        let reason = format!("a line longer than {MAX_ITEM_BYTES} bytes");
                        return (
                            Step::Rejected(error(
                                reason,
                                format!("{start}…").as_bytes(),
                                Some(self.lines),
                            )),
                            taken,
                        );
                    }
                    return (Step::NeedInput, taken);
                }
            };
            taken += used;
            if std::mem::take(skipping) {
                partial.clear();
                continue;
            }
            self.lines += 1;
            let whole: &[u8] = if partial.is_empty() {
                line
            } else {
                partial.extend_from_slice(line);
                partial
            };
            let whole = whole.strip_suffix(b"\r").unwrap_or(whole);
            if whole.iter().all(u8::is_ascii_whitespace) {
                partial.clear();
                continue;
            }
            let step = match self.decoder.settings().format {
                Format::Raw => {
                    out.push(self.decoder.raw(whole, meta));
                    Step::Records(1)
                }
                _ => {
                    let before = out.len();
                    match self.decoder.json(whole, meta, out) {
                        Ok(()) => Step::Records(out.len() - before),
                        Err(reason) => Step::Rejected(error(reason, whole, Some(self.lines))),
                    }
                }
            };
            partial.clear();
            return (step, taken);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_abi::Value;

    /// Decodes `input` fed `piece` bytes at a time; returns records, rejected lines and the final position.
    fn decode(
        settings: &Decoding,
        input: &[u8],
        piece: usize,
    ) -> (Vec<Record>, Vec<DecodeError>, Position) {
        let mut decoder = StreamDecoder::new(settings.clone()).unwrap();
        let meta = Meta {
            key: None,
            arrival_ms: 0,
        };
        let (mut records, mut rejected) = (Vec::new(), Vec::new());
        let mut fed = 0;
        let mut chunk: &[u8] = &[];
        loop {
            if chunk.is_empty() && fed < input.len() {
                let end = (fed + piece).min(input.len());
                chunk = &input[fed..end];
                fed = end;
            }
            let eof = fed == input.len();
            let (step, taken) = decoder.next(chunk, eof, &meta, &mut records);
            chunk = &chunk[taken..];
            match step {
                Step::Rejected(e) | Step::Fatal(e) => rejected.push(e),
                Step::End => break,
                _ => {}
            }
        }
        (records, rejected, decoder.position())
    }

    #[test]
    fn json_lines_in_any_pieces_with_blank_lines_and_a_last_line_without_newline() {
        let settings = Decoding::new(Format::Json, "key", "time");
        let input = b"{\"key\":\"a\",\"time\":1}\r\n\n  \n{\"key\":\"b\",\"time\":2,\"v\":{\"hex\":\"00ff\"}}\nnot json\n{\"key\":\"c\",\"time\":3}";
        for piece in [1, 2, 7, 1000] {
            let (records, rejected, position) = decode(&settings, input, piece);
            assert_eq!(
                records,
                [
                    Record::new("a", 1),
                    Record::new("b", 2)
                        .with("v", Value::Bytes(std::sync::Arc::from(&[0u8, 255][..]))),
                    Record::new("c", 3)
                ],
                "pieces of {piece}"
            );
            assert_eq!(rejected.len(), 1);
            assert_eq!(
                (rejected[0].line, rejected[0].input.as_str()),
                (Some(5), "not json")
            );
            assert_eq!(
                position,
                Position {
                    offset: input.len() as u64,
                    line: 6
                }
            );
        }
    }

    #[test]
    fn eddys_own_output_reads_back_as_the_same_record() {
        let record = Record::new("k", 5)
            .with("f", 1.5)
            .with("i", -3i64)
            .with("b", false)
            .with("s", "x \"quoted\"")
            .with(
                "raw",
                Value::Bytes(std::sync::Arc::from(&[1u8, 2, 254][..])),
            );
        let mut line = Vec::new();
        crate::write_json_line(&mut line, Some("stats"), Some("p/stats/k/r0/0"), &record).unwrap();
        let (records, rejected, _) = decode(&Decoding::new(Format::Json, "key", "time"), &line, 3);
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(records, [record]);
    }

    #[test]
    fn csv_rows_with_quotes_across_lines_and_a_position_after_each_row() {
        let settings = Decoding::new(Format::Csv, "key", "time");
        let input = b"time,key,v,note\n1000,a,1.5,\n1001,b,2,\"x,\ny\"\nnope,c,3,\n1002,d,4,z\n";
        for piece in [1, 5, 1000] {
            let (records, rejected, position) = decode(&settings, input, piece);
            assert_eq!(
                records,
                [
                    Record::new("a", 1000).with("v", 1.5),
                    Record::new("b", 1001).with("v", 2i64).with("note", "x,\ny"),
                    Record::new("d", 1002).with("v", 4i64).with("note", "z"),
                ]
            );
            assert_eq!(rejected.len(), 1);
            assert_eq!(rejected[0].line, Some(5));
            assert!(rejected[0].reason.contains("column `time`"), "{rejected:?}");
            assert_eq!(
                position,
                Position {
                    offset: input.len() as u64,
                    line: 6
                }
            );
        }
    }

    #[test]
    fn csv_line_numbers_count_lines_whatever_the_line_ends() {
        let mut settings = Decoding::new(Format::Csv, "key", "time");
        settings.csv.comment = crate::AsciiChar::new('#');
        // Line 1 a comment, 2 the header, 3 blank, 4 a record, 5 bad,
        // 6-7 a record with a quoted line break, 8 bad (no line end).
        let lf = "# export\nkey,time,v\n\na,1,x\nb,oops,y\nc,3,\"two\nlines\"\nd,nope,z";
        let crlf = lf.replace('\n', "\r\n");
        for input in [lf.to_owned(), crlf] {
            for piece in [1, 3, 1000] {
                let (records, rejected, position) = decode(&settings, input.as_bytes(), piece);
                assert_eq!(records.len(), 2, "{input:?} in pieces of {piece}");
                let lines: Vec<_> = rejected.iter().map(|e| e.line).collect();
                assert_eq!(lines, [Some(5), Some(8)], "{input:?} in pieces of {piece}");
                assert_eq!(position.line, 7, "{input:?}: seven line breaks");
            }
        }
    }

    #[test]
    fn csv_cells_keep_their_blanks_unless_they_are_numbers() {
        let settings = Decoding::new(Format::Csv, "key", "time");
        let (records, rejected, _) = decode(
            &settings,
            b"key,time,v,note,flag\n a , 1 , 2.5 ,\"  padded \", true\n",
            100,
        );
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(
            records,
            [Record::new(" a ", 1)
                .with("v", 2.5)
                .with("note", "  padded ")
                .with("flag", true)]
        );
    }

    #[test]
    fn a_csv_row_too_long_is_rejected_and_reading_goes_on_after_its_line() {
        let settings = Decoding::new(Format::Csv, "key", "time");
        let mut input = b"key,time,v\na,1,".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_ITEM_BYTES + 10));
        input.extend_from_slice(b",more,cells\nb,2,ok\n");
        let (records, rejected, _) = decode(&settings, &input, 1 << 20);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].line, Some(2));
        assert_eq!(records, [Record::new("b", 2).with("v", "ok")]);
    }

    #[test]
    fn a_csv_header_without_the_key_column_is_fatal() {
        let (_, rejected, _) = decode(
            &Decoding::new(Format::Csv, "device", "time"),
            b"time,key\n1,a\n",
            100,
        );
        assert!(
            rejected[0].reason.contains("no column `device`"),
            "{rejected:?}"
        );
    }

    #[test]
    fn after_a_reset_to_a_position_the_input_is_read_again_from_there() {
        let settings = Decoding::new(Format::Csv, "key", "time");
        let input = b"key,time\na,1\nb,2\nc,3\n";
        let mut decoder = StreamDecoder::new(settings).unwrap();
        let meta = Meta {
            key: None,
            arrival_ms: 0,
        };
        let mut out = Vec::new();
        let mut at = 0;
        let mut saved = None;
        while out.len() < 3 {
            let (_, taken) = decoder.next(&input[at..], false, &meta, &mut out);
            at += taken;
            if out.len() == 1 && saved.is_none() {
                saved = Some(decoder.position());
            }
        }
        let saved = saved.unwrap();
        assert_eq!(
            saved,
            Position {
                offset: 13,
                line: 2
            }
        );
        decoder.reset(saved);
        let mut again = Vec::new();
        let mut rest = &input[saved.offset as usize..];
        loop {
            let (step, taken) = decoder.next(rest, rest.is_empty(), &meta, &mut again);
            rest = &rest[taken..];
            if step == Step::End {
                break;
            }
        }
        assert_eq!(again, [Record::new("b", 2), Record::new("c", 3)]);
    }

    #[test]
    fn a_line_without_end_is_rejected_once_too_long_and_the_next_line_is_read() {
        let settings = Decoding::new(Format::Json, "key", "time");
        let mut decoder = StreamDecoder::new(settings).unwrap();
        let meta = Meta {
            key: None,
            arrival_ms: 0,
        };
        let mut out = Vec::new();
        let chunk = vec![b'x'; 1 << 20];
        let mut rejected = 0;
        for _ in 0..20 {
            if let (Step::Rejected(_), _) = decoder.next(&chunk, false, &meta, &mut out) {
                rejected += 1;
            }
        }
        assert_eq!(rejected, 1);
        let line = b"\n{\"key\":\"a\",\"time\":1}\n";
        let (step, _) = decoder.next(line, false, &meta, &mut out);
        assert_eq!(step, Step::Records(1));
    }
}
