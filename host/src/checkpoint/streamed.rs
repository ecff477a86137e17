//! Postcard encoding streamed into a writer through a small buffer, so that
//! a checkpoint's state goes to its file as it is encoded and is never held
//! whole in memory (nor encoded twice to size a buffer for it); and decoding
//! streamed from a reader, so that restoring it does not hold its bytes and
//! the state they decode to at once.

use std::io::{self, Read, Write};

use postcard::ser_flavors::Flavor;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes gathered before they are handed to the writer. Byte strings
/// longer than this (a window's records) go to it directly.
const BUFFER_BYTES: usize = 64 << 10;

/// Why a value could not be streamed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    /// The value could not be encoded.
    #[error("cannot encode state: {0}")]
    Encode(postcard::Error),
    /// The writer failed.
    #[error(transparent)]
    Write(io::Error),
}

/// Encodes `value` with postcard into `out`, as `postcard::to_allocvec`
/// would, then flushes what it buffered.
pub(crate) fn encode_to<T: Serialize + ?Sized, W: Write>(
    value: &T,
    out: W,
) -> Result<(), StreamError> {
    let mut buffered = Buffered {
        out,
        buf: Vec::with_capacity(BUFFER_BYTES),
        failed: None,
    };
    let encoded = postcard::serialize_with_flavor(value, &mut buffered);
    if let Some(error) = buffered.failed.take() {
        return Err(StreamError::Write(error));
    }
    encoded.map_err(StreamError::Encode)?;
    buffered.out.flush().map_err(StreamError::Write)
}

/// The postcard flavor: a buffer in front of a writer, and the writer's
/// error (postcard's own errors cannot carry it).
struct Buffered<W> {
    out: W,
    buf: Vec<u8>,
    failed: Option<io::Error>,
}

impl<W: Write> Buffered<W> {
    fn write(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.out.write_all(bytes).map_err(|e| {
            self.failed = Some(e);
            postcard::Error::SerializeBufferFull
        })
    }

    fn drain(&mut self) -> postcard::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let written = self.write(&buf);
        self.buf = buf;
        self.buf.clear();
        written
    }
}

impl<W: Write> Flavor for &mut Buffered<W> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.buf.len() == BUFFER_BYTES {
            self.drain()?;
        }
        self.buf.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        if self.buf.len() + bytes.len() > BUFFER_BYTES {
            self.drain()?;
        }
        if bytes.len() >= BUFFER_BYTES {
            return self.write(bytes);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        self.drain()
    }
}

/// Why a value could not be decoded from a reader.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not the value's encoding.
    #[error("state unreadable: {0}")]
    Decode(postcard::Error),
    /// The reader failed.
    #[error(transparent)]
    Read(io::Error),
}

/// Bytes read from the input at a time.
const READ_BYTES: usize = 64 << 10;

/// Room kept for the next string or byte string (or float, or char: they
/// are read the same way); room a longer one took is given back when the
/// next one of at most this size is read, or when decoding ends.
const SCRATCH_KEPT: usize = 1 << 20;

/// Decodes a `T` from the next `len` bytes of `input`, as
/// `postcard::from_bytes` would from them. Reads as it decodes, through a
/// small buffer, holding no more of the input than that and its longest
/// string or byte string; a length that claims more than is left is an
/// error before anything is allocated for it. The input may have been read
/// past the value, up to `len` bytes.
///
/// `T` must own what it decodes (as every type of a checkpoint's state
/// does): strings and byte strings are read into a buffer the decoder
/// copies them from, and one borrowed from the input is refused.
pub(crate) fn decode_from<T: DeserializeOwned, R: Read + ?Sized>(
    input: &mut R,
    len: u64,
) -> Result<T, DecodeError> {
    let mut reading = Reading {
        input,
        buf: vec![0; READ_BYTES].into_boxed_slice(),
        pos: 0,
        end: 0,
        left: len,
        scratch: Vec::new(),
        failed: None,
    };
    let decoded = T::deserialize(&mut postcard::Deserializer::from_flavor(&mut reading));
    match (decoded, reading.failed) {
        (_, Some(error)) => Err(DecodeError::Read(error)),
        (Ok(value), None) => Ok(value),
        (Err(error), None) => Err(DecodeError::Decode(error)),
    }
}

/// The postcard flavor: a reader and its buffer, what is left of the
/// value's bytes, the buffer strings are gathered into, and the reader's
/// error (postcard's own errors cannot carry it).
struct Reading<'r, R: ?Sized> {
    input: &'r mut R,
    buf: Box<[u8]>,
    /// The bytes of `buf` not taken yet: `pos..end`.
    pos: usize,
    end: usize,
    left: u64,
    scratch: Vec<u8>,
    failed: Option<io::Error>,
}

impl<R: Read + ?Sized> Reading<'_, R> {
    /// Takes `n` of the bytes left, or fails if fewer are.
    fn claim(&mut self, n: usize) -> postcard::Result<()> {
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(postcard::Error::DeserializeUnexpectedEnd),
        }
    }

    /// Reads the next bytes into the buffer, which has none left.
    fn refill(&mut self) -> postcard::Result<()> {
        loop {
            match self.input.read(&mut self.buf) {
                Ok(0) => return Err(postcard::Error::DeserializeUnexpectedEnd),
                Ok(n) => {
                    self.pos = 0;
                    self.end = n;
                    return Ok(());
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(self.failed(error)),
            }
        }
    }

    /// The reader's error, kept, as postcard's (an input that ends early
    /// is the value's encoding cut short).
    fn failed(&mut self, error: io::Error) -> postcard::Error {
        if error.kind() != io::ErrorKind::UnexpectedEof {
            self.failed = Some(error);
        }
        postcard::Error::DeserializeUnexpectedEnd
    }
}

impl<'de, 'a: 'de, 'r: 'de, R: Read + ?Sized + 'de> postcard::de_flavors::Flavor<'de>
    for &'a mut Reading<'r, R>
{
    type Remainder = ();
    type Source = ();

    #[inline]
    fn pop(&mut self) -> postcard::Result<u8> {
        self.claim(1)?;
        if self.pos == self.end {
            self.refill()?;
        }
        let byte = self.buf[self.pos];
        self.pos += 1;
        Ok(byte)
    }

    fn size_hint(&self) -> Option<usize> {
        usize::try_from(self.left).ok()
    }

    /// Bytes borrowed from the input for as long as the decoder lives:
    /// none can be, as the input goes by.
    fn try_take_n(&mut self, _: usize) -> postcard::Result<&'de [u8]> {
        Err(postcard::Error::WontImplement)
    }

    fn try_take_n_temp<'t>(&'t mut self, ct: usize) -> postcard::Result<&'t [u8]>
    where
        'de: 't,
    {
        self.claim(ct)?;
        if self.scratch.capacity() > SCRATCH_KEPT && ct <= SCRATCH_KEPT {
            self.scratch = Vec::new();
        }
        self.scratch.clear();
        let buffered = ct.min(self.end - self.pos);
        self.scratch
            .extend_from_slice(&self.buf[self.pos..self.pos + buffered]);
        self.pos += buffered;
        if buffered < ct {
            // Grown by what is read, not by what the length claims.
            let rest = (ct - buffered) as u64;
            self.scratch.reserve(ct.min(SCRATCH_KEPT));
            match (&mut self.input).take(rest).read_to_end(&mut self.scratch) {
                Ok(_) if self.scratch.len() == ct => {}
                Ok(_) => return Err(postcard::Error::DeserializeUnexpectedEnd),
                Err(error) => return Err(self.failed(error)),
            }
        }
        Ok(&self.scratch)
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a checkpoint's state is made of: numbers, strings, byte
    /// strings (below, at and above the read buffer's size), byte
    /// sequences, options and maps.
    type State = Vec<(
        u64,
        String,
        serde_bytes::ByteBuf,
        Vec<u8>,
        Option<i64>,
        std::collections::BTreeMap<String, f64>,
    )>;

    fn state(n: usize) -> State {
        (0..n)
            .map(|i| {
                (
                    i as u64 * 1_000_003,
                    "k".repeat(i % 40),
                    serde_bytes::ByteBuf::from(vec![i as u8; (i * 7919) % (READ_BYTES + 3000)]),
                    vec![(i % 256) as u8; i % 300],
                    (i % 3 == 0).then_some(-(i as i64)),
                    (0..i % 4).map(|j| (format!("f{j}"), j as f64)).collect(),
                )
            })
            .collect()
    }

    /// A reader that hands out at most `piece` bytes a call (every other
    /// call interrupted, if `interrupting`), and then fails with `error`
    /// where its bytes end (if it has one).
    struct Pieces<'a> {
        bytes: &'a [u8],
        piece: usize,
        error: Option<io::ErrorKind>,
        interrupting: bool,
        interrupted: bool,
    }

    impl<'a> Pieces<'a> {
        fn new(bytes: &'a [u8], piece: usize) -> Self {
            Pieces {
                bytes,
                piece,
                error: None,
                interrupting: false,
                interrupted: false,
            }
        }
    }

    impl Read for Pieces<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.interrupting {
                self.interrupted = !self.interrupted;
                if self.interrupted {
                    return Err(io::ErrorKind::Interrupted.into());
                }
            }
            if self.bytes.is_empty()
                && let Some(kind) = self.error
            {
                return Err(io::Error::new(kind, "the disk went away"));
            }
            let n = buf.len().min(self.piece).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn it_decodes_what_postcard_encoded_from_a_reader_in_any_pieces() {
        let value = state(120);
        let bytes = postcard::to_allocvec(&value).unwrap();
        assert!(bytes.len() > 4 * READ_BYTES);
        for piece in [1, 7, 4096, READ_BYTES + 1, usize::MAX] {
            for interrupting in [false, true] {
                let mut input = Pieces {
                    interrupting,
                    ..Pieces::new(&bytes, piece)
                };
                let decoded: State = decode_from(&mut input, bytes.len() as u64).unwrap();
                assert!(decoded == value, "pieces of {piece}");
            }
        }
        // Bytes after the value are left, as postcard leaves them.
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"after");
        let decoded: State = decode_from(&mut &longer[..], longer.len() as u64).unwrap();
        assert!(decoded == value);
    }

    #[test]
    fn input_cut_short_claiming_too_much_or_failing_is_an_error() {
        let value = state(40);
        let bytes = postcard::to_allocvec(&value).unwrap();
        let len = bytes.len() as u64;
        // The input ends before the value.
        let cut = &bytes[..bytes.len() - 1];
        let decoded = decode_from::<State, _>(&mut &cut[..], len);
        assert!(
            matches!(decoded, Err(DecodeError::Decode(_))),
            "{decoded:?}"
        );
        // The value is longer than the bytes it may take.
        let decoded = decode_from::<State, _>(&mut &bytes[..], len - 1);
        assert!(
            matches!(decoded, Err(DecodeError::Decode(_))),
            "{decoded:?}"
        );
        // A byte string claiming an exabyte is refused, not allocated.
        let mut claim = Vec::new();
        postcard::to_io(&(u64::MAX / 16), &mut claim).unwrap();
        let decoded = decode_from::<serde_bytes::ByteBuf, _>(&mut &claim[..], 1 << 40);
        assert!(
            matches!(decoded, Err(DecodeError::Decode(_))),
            "{decoded:?}"
        );
        // The reader fails: its error, not the value's.
        let mut failing = Pieces {
            error: Some(io::ErrorKind::Other),
            ..Pieces::new(&bytes[..bytes.len() / 2], 1000)
        };
        match decode_from::<State, _>(&mut failing, len) {
            Err(DecodeError::Read(e)) => assert_eq!(e.to_string(), "the disk went away"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_type_that_borrows_from_its_input_is_refused() {
        /// Owns what it keeps, but reads it borrowed first (as window
        /// records once did).
        #[derive(Debug)]
        struct Borrows(#[allow(dead_code, reason = "only decoded")] Vec<u8>);
        impl<'de> serde::Deserialize<'de> for Borrows {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let bytes: std::borrow::Cow<'de, [u8]> = serde_bytes::deserialize(d)?;
                Ok(Borrows(bytes.into_owned()))
            }
        }
        let bytes = postcard::to_allocvec(&serde_bytes::Bytes::new(b"records")).unwrap();
        assert!(postcard::from_bytes::<Borrows>(&bytes).is_ok());
        let decoded = decode_from::<Borrows, _>(&mut &bytes[..], bytes.len() as u64);
        assert!(
            matches!(decoded, Err(DecodeError::Decode(_))),
            "{decoded:?}"
        );
    }

    proptest! {
        /// Damaged state decodes from a reader as it does from its bytes:
        /// to the same value, or to an error; never a panic.
        #[test]
        fn fuzz_damaged_state_decodes_as_from_its_bytes(
            n in 0usize..12,
            damage in crate::damage::damage(),
            piece in 1usize..5000,
        ) {
            let bytes = crate::damage::apply(postcard::to_allocvec(&state(n)).unwrap(), &damage);
            let mut input = Pieces::new(&bytes, piece);
            let streamed = decode_from::<State, _>(&mut input, bytes.len() as u64);
            match postcard::from_bytes::<State>(&bytes) {
                Ok(value) => prop_assert!(streamed.unwrap() == value),
                Err(_) => prop_assert!(matches!(streamed, Err(DecodeError::Decode(_)))),
            }
        }
    }

    /// A writer that takes `room` bytes, then fails.
    struct Full {
        taken: Vec<u8>,
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if self.taken.len() + bytes.len() > self.room {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            self.taken.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn it_writes_what_postcard_encodes_and_reports_the_writers_failure() {
        // Small values byte by byte, and byte strings below, at and above
        // the buffer's size, so that every path of the buffer is taken.
        let value: Vec<(u64, String, serde_bytes::ByteBuf)> = (0..300usize)
            .map(|i| {
                let bytes = vec![i as u8; (i * 977) % (BUFFER_BYTES + 2000)];
                (
                    i as u64 * 1_000_003,
                    "x".repeat(i % 50),
                    serde_bytes::ByteBuf::from(bytes),
                )
            })
            .chain([(
                1,
                String::new(),
                serde_bytes::ByteBuf::from(vec![7; BUFFER_BYTES]),
            )])
            .collect();
        let expected = postcard::to_allocvec(&value).unwrap();
        let mut out = Vec::new();
        encode_to(&value, &mut out).unwrap();
        assert_eq!(out.len(), expected.len());
        assert!(out == expected);
        for room in [0, 10, BUFFER_BYTES, expected.len() / 2, expected.len() - 1] {
            let mut full = Full {
                taken: Vec::new(),
                room,
            };
            match encode_to(&value, &mut full) {
                Err(StreamError::Write(e)) => assert_eq!(e.kind(), io::ErrorKind::StorageFull),
                other => panic!("room {room}: {other:?}"),
            }
            assert!(expected.starts_with(&full.taken));
        }
    }
}
