//! Postcard encoding streamed into a writer through a small buffer, so that
//! a checkpoint's state goes to its file as it is encoded and is never held
//! whole in memory (nor encoded twice to size a buffer for it).

use std::io::{self, Write};

use postcard::ser_flavors::Flavor;
use serde::Serialize;

/// Bytes gathered before they are handed to the writer. Byte strings
/// (window records, plugin memory) longer than this go to it directly.
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

#[cfg(test)]
mod tests {
    use super::*;

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
