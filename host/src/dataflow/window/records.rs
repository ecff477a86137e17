//! A window's records, encoded back to back as the plugin ABI lays them out,
//! in chunks that copies share.
//!
//! A checkpoint's snapshot shares the open windows with the pipeline; the
//! first record added to a window after it copies the window (see
//! [`CowMap`](crate::state::CowMap)). Were a window's records one buffer,
//! that copy would be all of them: with large windows, the batches after
//! every checkpoint would copy most of the state. Here, records fill a tail
//! of at most [`CHUNK_BYTES`]; a full tail becomes a chunk that is never
//! written again, so a copy shares the chunks and copies only the tail.

use std::borrow::Cow;
use std::sync::Arc;

use eddy_abi::{Record, encode};

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};

/// A tail this long is sealed into a shared chunk (a record that is longer
/// makes a longer chunk).
pub(super) const CHUNK_BYTES: usize = 4096;

/// Records encoded back to back; see the module's documentation. Every
/// chunk holds whole records.
///
/// It serializes as the bytes of all its records in a row, which postcard
/// (checkpoints) writes as it writes a `Vec<u8>` of them, so that
/// checkpoints read either.
#[derive(Debug, Clone, Default)]
pub struct EncodedRecords {
    /// Sealed chunks, in order; never changed, shared by copies.
    chunks: Vec<Arc<[u8]>>,
    /// Their bytes in all.
    chunk_bytes: usize,
    /// The records after the chunks.
    tail: Vec<u8>,
}

impl EncodedRecords {
    /// Empty, with room for `bytes` of records (up to a chunk) before it grows.
    pub fn with_capacity(bytes: usize) -> Self {
        EncodedRecords {
            chunks: Vec::new(),
            chunk_bytes: 0,
            tail: Vec::with_capacity(bytes.min(CHUNK_BYTES)),
        }
    }

    /// Bytes of records held.
    pub fn len(&self) -> usize {
        self.chunk_bytes + self.tail.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a record.
    pub fn push(&mut self, record: &Record) {
        encode::record(record, &mut self.tail);
        self.seal_if_full();
    }

    /// Appends records already encoded (whole ones).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        self.seal_if_full();
    }

    /// Appends another's records, sharing its chunks.
    pub fn extend_from(&mut self, other: &EncodedRecords) {
        if other.chunks.is_empty() {
            return self.extend_from_slice(&other.tail);
        }
        self.seal();
        self.chunks.extend(other.chunks.iter().cloned());
        self.chunk_bytes += other.chunk_bytes;
        self.extend_from_slice(&other.tail);
    }

    /// The records' bytes, in pieces of whole records, in order.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks
            .iter()
            .map(|c| &c[..])
            .chain(std::iter::once(&self.tail[..]))
            .filter(|p| !p.is_empty())
    }

    /// Appends the records' bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.len());
        for piece in self.pieces() {
            out.extend_from_slice(piece);
        }
    }

    /// Whole records in one sealed chunk.
    fn from_chunk(chunk: Arc<[u8]>) -> Self {
        let mut records = EncodedRecords::default();
        if !chunk.is_empty() {
            records.chunk_bytes = chunk.len();
            records.chunks.push(chunk);
        }
        records
    }

    fn seal_if_full(&mut self) {
        if self.tail.len() >= CHUNK_BYTES {
            self.seal();
        }
    }

    /// Makes the tail a chunk; the tail keeps its room for what follows.
    fn seal(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        self.chunk_bytes += self.tail.len();
        self.chunks.push(Arc::from(&self.tail[..]));
        self.tail.clear();
    }
}

impl PartialEq for EncodedRecords {
    /// The same records, however they are cut into chunks.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.pieces().flatten().eq(other.pieces().flatten())
    }
}

impl From<Vec<u8>> for EncodedRecords {
    /// Records read back: one chunk, never copied again.
    fn from(bytes: Vec<u8>) -> Self {
        EncodedRecords::from_chunk(Arc::from(bytes))
    }
}

impl Serialize for EncodedRecords {
    /// As a byte string: in postcard (checkpoints) the same bytes as a
    /// `Vec<u8>`'s sequence, written in one piece instead of byte by byte.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut pieces = self.pieces();
        match (pieces.next(), pieces.next()) {
            (None, _) => serializer.serialize_bytes(&[]),
            (Some(only), None) => serializer.serialize_bytes(only),
            _ => {
                let mut bytes = Vec::with_capacity(self.len());
                self.write_to(&mut bytes);
                serializer.serialize_bytes(&bytes)
            }
        }
    }
}

impl<'de> Deserialize<'de> for EncodedRecords {
    /// From a byte string, or a sequence of bytes (what a `Vec<u8>` wrote);
    /// borrowed from a checkpoint's bytes, so copied once, into the chunk.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: Cow<'de, [u8]> = serde_bytes::deserialize(deserializer)?;
        Ok(EncodedRecords::from_chunk(Arc::from(&*bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize) -> Record {
        Record::new(format!("key-{}", i % 7), i as i64).with("v", "x".repeat(i % 300).as_str())
    }

    /// The same records in one plain buffer.
    fn plain(records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            encode::record(r, &mut out);
        }
        out
    }

    #[test]
    fn its_bytes_are_the_records_in_a_row_and_a_copy_shares_its_chunks() {
        let records: Vec<Record> = (0..500).map(record).collect();
        let mut ours = EncodedRecords::with_capacity(64);
        for r in &records {
            ours.push(r);
        }
        let expected = plain(&records);
        assert!(ours.chunks.len() > 10, "{} chunks", ours.chunks.len());
        assert!(ours.tail.len() < CHUNK_BYTES);
        assert_eq!(ours.len(), expected.len());
        let mut written = Vec::new();
        ours.write_to(&mut written);
        assert_eq!(written, expected);
        // Each piece holds whole records.
        let mut decoded = Vec::new();
        for piece in ours.pieces() {
            let mut rest = piece;
            while !rest.is_empty() {
                let (r, tail) = postcard::take_from_bytes::<Record>(rest).unwrap();
                decoded.push(r);
                rest = tail;
            }
        }
        assert_eq!(decoded, records);
        // A copy shares the chunks; what either adds later is its own.
        let mut copy = ours.clone();
        assert!(
            ours.chunks
                .iter()
                .zip(&copy.chunks)
                .all(|(a, b)| Arc::ptr_eq(a, b))
        );
        copy.push(&record(1));
        let mut written = Vec::new();
        ours.write_to(&mut written);
        assert_eq!(written, expected);
    }

    #[test]
    fn it_serializes_as_a_byte_vector_does() {
        let records: Vec<Record> = (0..200).map(record).collect();
        let mut ours = EncodedRecords::default();
        for r in &records[..100] {
            ours.push(r);
        }
        let mut other = EncodedRecords::default();
        for r in &records[100..] {
            other.push(r);
        }
        ours.extend_from(&other);
        let expected = plain(&records);
        let bytes = postcard::to_allocvec(&ours).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&expected).unwrap());
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
        // Read back from either form, and from what a `Vec<u8>` wrote.
        let back: EncodedRecords = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, ours);
        let from_vec: EncodedRecords =
            postcard::from_bytes(&postcard::to_allocvec(&expected).unwrap()).unwrap();
        assert_eq!(from_vec, ours);
        let from_json: EncodedRecords =
            serde_json::from_str(&serde_json::to_string(&expected).unwrap()).unwrap();
        assert_eq!(from_json, ours);
        let mut written = Vec::new();
        back.write_to(&mut written);
        assert_eq!(written, expected);
        assert_eq!(EncodedRecords::from(Vec::new()), EncodedRecords::default());
    }
}
