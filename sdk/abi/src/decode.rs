//! Fast decoders for batch inputs: the counterpart of [`crate::encode`].
//! They read the same bytes as postcard would, borrowing strings from the
//! input, without going through serde's visitors; the tests check them
//! against postcard. The SDK decodes every `process` and `window` input
//! with them.

use alloc::vec::Vec;
use core::fmt;

use crate::{ProcessInput, RecordRef, ValueRef, Window, WindowInput, WindowRef};

/// Why input bytes do not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended in the middle of a value.
    Truncated,
    /// A varint is longer than its type (64 bits, or 32).
    Varint,
    /// A string is not UTF-8.
    Utf8,
    /// A value has an unknown kind tag.
    ValueTag(u32),
    /// A boolean is neither 0 nor 1.
    Bool(u8),
    /// Bytes were left over after the input.
    TrailingBytes,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("input ends in the middle of a value"),
            DecodeError::Varint => f.write_str("varint longer than its type"),
            DecodeError::Utf8 => f.write_str("string is not UTF-8"),
            DecodeError::ValueTag(t) => write!(f, "unknown value kind {t}"),
            DecodeError::Bool(b) => write!(f, "boolean byte {b}, not 0 or 1"),
            DecodeError::TrailingBytes => f.write_str("bytes left over after the input"),
        }
    }
}

/// A cursor over encoded bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// How many bytes are left to read.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// An unsigned varint of at most `bits` bits, as postcard reads it: its
    /// last possible byte holds only the bits that are left, and a varint
    /// with more bits than that is refused rather than read as another
    /// number.
    #[inline]
    fn varint_of(&mut self, bits: u32) -> Result<u64, DecodeError> {
        // Most varints (lengths, tags, counts) are one byte.
        if let [b, rest @ ..] = self.bytes
            && *b < 0x80
        {
            self.bytes = rest;
            return Ok(u64::from(*b));
        }
        self.varint_long(bits)
    }

    fn varint_long(&mut self, bits: u32) -> Result<u64, DecodeError> {
        // With ten bytes left (the longest varint), no byte can run past
        // the input: read them without a check each (times, large counts).
        if let Some(head) = self.bytes.first_chunk::<10>() {
            let mut value = 0u64;
            for (i, &b) in head.iter().enumerate() {
                let shift = 7 * i as u32;
                if shift >= bits {
                    break;
                }
                if shift + 7 > bits && u32::from(b & 0x7f) >> (bits - shift) != 0 {
                    return Err(DecodeError::Varint);
                }
                value |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    self.bytes = &self.bytes[i + 1..];
                    return Ok(value);
                }
            }
            return Err(DecodeError::Varint);
        }
        let mut value = 0u64;
        for shift in (0..bits).step_by(7) {
            let b = self.byte()?;
            if shift + 7 > bits && u32::from(b & 0x7f) >> (bits - shift) != 0 {
                return Err(DecodeError::Varint);
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Varint)
    }

    /// An unsigned varint of at most 64 bits (ten bytes).
    #[inline]
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        self.varint_of(64)
    }

    /// An unsigned varint of at most 32 bits (an enum's variant index, a
    /// `u32`): at most five bytes.
    #[inline]
    pub fn varint32(&mut self) -> Result<u32, DecodeError> {
        // Thirty-two bits at most, so the value fits.
        self.varint_of(32).map(|v| v as u32)
    }

    /// A zig-zag varint.
    #[inline]
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// A length-prefixed byte string.
    #[inline]
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        self.take(usize::try_from(len).map_err(|_| DecodeError::Truncated)?)
    }

    /// A length-prefixed UTF-8 string.
    #[inline]
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        utf8(self.bytes()?)
    }

    /// A sequence length, checked against what is left (every item takes at least a byte).
    #[inline]
    pub fn count(&mut self) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.varint()?).map_err(|_| DecodeError::Truncated)?;
        if n > self.bytes.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    /// One record.
    pub fn record(&mut self) -> Result<RecordRef<'a>, DecodeError> {
        let mut record = RecordRef::default();
        self.record_into(&mut record)?;
        Ok(record)
    }

    /// One record, read into `record` in place of what it held: a loop
    /// over many records reuses one record's room for their fields.
    pub fn record_into(&mut self, record: &mut RecordRef<'a>) -> Result<(), DecodeError> {
        record.key = self.str()?;
        record.time = self.i64()?;
        let n = self.count()?;
        record.fields.clear();
        record.fields.reserve(n);
        for _ in 0..n {
            let name = self.str()?;
            record.fields.push((name, self.value()?));
        }
        Ok(())
    }

    /// One field value: its tag, then its payload.
    #[inline]
    pub fn value(&mut self) -> Result<ValueRef<'a>, DecodeError> {
        Ok(match self.varint32()? {
            0 => {
                let b = self.take(8)?;
                let mut raw = [0u8; 8];
                raw.copy_from_slice(b);
                ValueRef::F64(f64::from_le_bytes(raw))
            }
            1 => ValueRef::I64(self.i64()?),
            2 => ValueRef::Bool(match self.byte()? {
                0 => false,
                1 => true,
                b => return Err(DecodeError::Bool(b)),
            }),
            3 => ValueRef::Str(self.str()?),
            4 => ValueRef::Bytes(self.bytes()?),
            tag => return Err(DecodeError::ValueTag(tag)),
        })
    }

    fn records(&mut self) -> Result<Vec<RecordRef<'a>>, DecodeError> {
        let n = self.count()?;
        let mut records = Vec::with_capacity(n);
        for _ in 0..n {
            records.push(self.record()?);
        }
        Ok(records)
    }

    /// Checks that everything was read.
    pub fn end(self) -> Result<(), DecodeError> {
        self.finish(())
    }

    fn finish<T>(self, value: T) -> Result<T, DecodeError> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

/// `bytes` as text, if they are UTF-8.
#[inline]
fn utf8(bytes: &[u8]) -> Result<&str, DecodeError> {
    // Names and keys are mostly short ASCII, which a byte check accepts
    // quicker than the full UTF-8 validation gets going.
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        return Ok(unsafe { core::str::from_utf8_unchecked(bytes) });
    }
    core::str::from_utf8(bytes).map_err(|_| DecodeError::Utf8)
}

/// Decodes a `process` input.
pub fn process_input(bytes: &[u8]) -> Result<ProcessInput<Vec<RecordRef<'_>>>, DecodeError> {
    let mut r = Reader::new(bytes);
    let watermark = r.i64()?;
    let records = r.records()?;
    r.finish(ProcessInput { watermark, records })
}

/// Decodes a `window` input.
pub fn window_input(bytes: &[u8]) -> Result<WindowInput<Vec<WindowRef<'_>>>, DecodeError> {
    let mut r = Reader::new(bytes);
    let watermark = r.i64()?;
    let n = r.count()?;
    let mut windows = Vec::with_capacity(n);
    for _ in 0..n {
        let key = r.str()?;
        let start = r.i64()?;
        let end = r.i64()?;
        let firing = r.varint32()?;
        let records = r.records()?;
        windows.push(Window {
            key,
            start,
            end,
            firing,
            records,
        });
    }
    r.finish(WindowInput { watermark, windows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Record, Value};
    use alloc::sync::Arc;

    fn records() -> Vec<Record> {
        alloc::vec![
            Record::new("ups-1/string-1/cell-01", 1_767_225_600_123)
                .with("voltage", 13.51)
                .with("n", -300i64)
                .with("ok", true)
                .with("model", "VRLA")
                .with("raw", Value::Bytes(Arc::from(&[1u8, 2, 3][..]))),
            Record::new("", i64::MIN).with("big", i64::MAX),
        ]
    }

    #[test]
    fn decodes_what_postcard_encodes() {
        let records = records();
        let bytes = postcard::to_allocvec(&ProcessInput {
            watermark: -5,
            records: &records[..],
        })
        .unwrap();
        let ours = process_input(&bytes).unwrap();
        let theirs: ProcessInput<Vec<RecordRef<'_>>> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(ours, theirs);

        let window = Window {
            key: "k",
            start: 0,
            end: 1000,
            firing: 3u32,
            records: &records[..],
        };
        let bytes = postcard::to_allocvec(&WindowInput {
            watermark: 999,
            windows: &[window.clone(), window][..],
        })
        .unwrap();
        let ours = window_input(&bytes).unwrap();
        let theirs: WindowInput<Vec<WindowRef<'_>>> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn varints_read_as_postcard_reads_them_at_the_end_of_the_input_or_not() {
        // Every length from one byte to ten, the largest of each, and the
        // overlong and too-large forms postcard refuses.
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for bits in (7..=70).step_by(7) {
            let mut v = Vec::new();
            for i in 0..bits / 7 {
                v.push(if i + 1 < bits / 7 { 0xff } else { 0x7f });
            }
            cases.push(v);
            cases.push(alloc::vec![0x80; bits / 7]);
        }
        cases.extend([
            alloc::vec![0x80, 0x80, 0x80, 0x80, 0x10],
            alloc::vec![0xff, 0xff, 0xff, 0xff, 0x0f],
            alloc::vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            alloc::vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            alloc::vec![0x80; 11],
        ]);
        for case in cases {
            for after in [0, 1, 12] {
                let mut bytes = case.clone();
                bytes.resize(case.len() + after, 0x55);
                // The value, and what is left to read after it.
                fn ours<T>(
                    bytes: &[u8],
                    read: impl Fn(&mut Reader<'_>) -> Result<T, DecodeError>,
                ) -> Option<(T, usize)> {
                    let mut reader = Reader::new(bytes);
                    read(&mut reader).ok().map(|v| (v, reader.remaining()))
                }
                fn theirs<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<(T, usize)> {
                    let taken = postcard::take_from_bytes::<T>(bytes).ok();
                    taken.map(|(v, rest)| (v, rest.len()))
                }
                let what = alloc::format!("{case:02x?} and {after} bytes after");
                assert_eq!(
                    ours(&bytes, |r: &mut Reader<'_>| r.varint()),
                    theirs::<u64>(&bytes),
                    "{what}"
                );
                assert_eq!(
                    ours(&bytes, |r: &mut Reader<'_>| r.varint32()),
                    theirs::<u32>(&bytes),
                    "{what}"
                );
            }
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let records = records();
        let bytes = postcard::to_allocvec(&ProcessInput {
            watermark: 1,
            records: &records[..],
        })
        .unwrap();
        for cut in 0..bytes.len() {
            assert!(process_input(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(process_input(&extra), Err(DecodeError::TrailingBytes));
        assert_eq!(
            process_input(&[0, 0xff, 0xff]).unwrap_err(),
            DecodeError::Truncated
        );
    }
}
