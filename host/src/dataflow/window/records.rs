//! A window's records, encoded back to back as the plugin ABI lays them out,
//! in chunks that copies share.
//!
//! A checkpoint's snapshot shares the open windows with the pipeline; the
//! first record added to a window after it copies the window (see
//! [`CowMap`](crate::state::CowMap)). Were a window's records one buffer,
//! that copy would be all of them: with large windows, the batches after
//! every checkpoint would copy most of the state. Here, records fill a tail
//! of at most [`CHUNK_BYTES`]; a tail with no room for the next record
//! becomes a chunk that is never written again, so a copy shares the chunks
//! and copies only the tail.
//!
//! Sealed chunks are kept as perfect binary trees of them, at most one of
//! each size, as the digits of a binary counter (a chunk sealed is a 1
//! added: two trees of a size become one of twice that size, a node over
//! both). A copy takes a reference to each tree: copying a window of `n`
//! chunks costs at most `log2(n) + 1` reference counts, each a likely
//! cache miss, not `n` (a 5 MB window: 11, not 1250), however large the
//! window grows.
//!
//! Nothing is copied or reallocated as a window grows: a full tail is moved
//! into its chunk as it is, and the next tail is allocated as large as what
//! the window holds, or the rest of what it is expected to hold. That keeps
//! the memory a window holds close to its records' bytes.

use std::sync::Arc;

use eddy_abi::{Record, encode};

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};

/// A tail holds at most this many bytes (unless one record is longer).
pub(super) const CHUNK_BYTES: usize = 4096;

/// The room for a window's first records.
const FIRST_TAIL_BYTES: usize = 512;

/// A sealed chunk: whole records, never written again.
type Chunk = Arc<Vec<u8>>;

/// A perfect binary tree of sealed chunks, in order; shared by copies.
#[derive(Debug, Clone)]
enum Tree {
    /// One chunk.
    Chunk(Chunk),
    /// Two trees of the same size, the first's chunks first.
    Pair(Arc<(Tree, Tree)>),
}

/// The sealed chunks of trees, in order, walked depth first.
struct Chunks<'a> {
    trees: std::slice::Iter<'a, (usize, Tree)>,
    /// Trees still to walk, the next on top (empty until a pair is met).
    pending: Vec<&'a Tree>,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a Chunk;

    fn next(&mut self) -> Option<&'a Chunk> {
        loop {
            let tree = match self.pending.pop() {
                Some(tree) => tree,
                None => &self.trees.next()?.1,
            };
            match tree {
                Tree::Chunk(chunk) => return Some(chunk),
                Tree::Pair(pair) => {
                    self.pending.push(&pair.1);
                    self.pending.push(&pair.0);
                }
            }
        }
    }
}

/// Records encoded back to back; see the module's documentation. Every
/// chunk holds whole records.
///
/// It serializes as the bytes of all its records in a row, which postcard
/// (checkpoints) writes as it writes a `Vec<u8>` of them, so that
/// checkpoints read either.
#[derive(Debug, Default)]
pub struct EncodedRecords {
    /// The sealed chunks, in order, as trees with their sizes in chunks:
    /// sizes decrease (but after [`extend_from`](Self::extend_from)), so
    /// there are at most `log2(chunks) + 1` of them.
    trees: Vec<(usize, Tree)>,
    /// Their bytes in all.
    chunk_bytes: usize,
    /// The records after the chunks.
    tail: Vec<u8>,
    /// About how many bytes of records the window will hold (0: not known),
    /// which sizes its tails.
    expected: usize,
}

impl EncodedRecords {
    /// Empty, expecting about `bytes` of records (the size of the last
    /// window fired, say), which sizes its room as it fills.
    pub fn expecting(bytes: usize) -> Self {
        EncodedRecords {
            expected: bytes,
            ..EncodedRecords::default()
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
        self.make_room(encode::record_len(record));
        encode::record_in_room(record, &mut self.tail);
    }

    /// Appends records already encoded (whole ones).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.make_room(bytes.len());
        self.tail.extend_from_slice(bytes);
    }

    /// Appends another's records, sharing its chunks.
    pub fn extend_from(&mut self, other: &EncodedRecords) {
        if other.chunk_bytes > 0 {
            // Its room left over would stay empty behind the shared chunks.
            self.tail.shrink_to_fit();
            self.seal();
            // Its trees as they are: a chunk sealed after them is a tree
            // of its own until one of its size comes.
            self.trees.extend(other.trees.iter().cloned());
            self.chunk_bytes += other.chunk_bytes;
        }
        if !other.tail.is_empty() {
            self.extend_from_slice(&other.tail);
        }
    }

    /// The records' bytes, in pieces of whole records, in order.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        self.sealed()
            .map(|c| c.as_slice())
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

    /// The sealed chunks, in order.
    fn sealed(&self) -> Chunks<'_> {
        Chunks {
            trees: self.trees.iter(),
            pending: Vec::new(),
        }
    }

    /// Appends a sealed chunk: two trees of a size at the end become one.
    fn push_chunk(&mut self, chunk: Chunk) {
        let mut tree = (1, Tree::Chunk(chunk));
        while let Some((size, first)) = self.trees.pop_if(|(size, _)| *size == tree.0) {
            tree = (2 * size, Tree::Pair(Arc::new((first, tree.1))));
        }
        self.trees.push(tree);
    }

    /// Whole records in one sealed chunk.
    fn from_chunk(chunk: Vec<u8>) -> Self {
        let mut records = EncodedRecords::default();
        if !chunk.is_empty() {
            records.chunk_bytes = chunk.len();
            records.push_chunk(Arc::new(chunk));
        }
        records
    }

    /// Makes sure the tail has room for `bytes` more: if it has not, it is
    /// sealed and a new one allocated. Tails double what the window holds
    /// (from [`FIRST_TAIL_BYTES`] up to [`CHUNK_BYTES`], and never less than
    /// `bytes`), cut to the rest of the expected size: so a window holds about
    /// its records' bytes, and one that has just opened holds little.
    fn make_room(&mut self, bytes: usize) {
        if self.tail.capacity() - self.tail.len() >= bytes {
            return;
        }
        self.seal();
        let held = self.len();
        let mut room = held.max(FIRST_TAIL_BYTES);
        if self.expected > held + bytes {
            room = room.min(self.expected - held);
        }
        self.tail = Vec::with_capacity(room.min(CHUNK_BYTES).max(bytes));
    }

    /// Makes the tail a chunk, as it is: [`make_room`](Self::make_room)
    /// seals a tail with room for less than a record.
    fn seal(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        self.chunk_bytes += self.tail.len();
        let tail = Arc::new(std::mem::take(&mut self.tail));
        self.push_chunk(tail);
    }
}

impl Clone for EncodedRecords {
    /// Shares the trees of chunks and copies the tail into as much room as
    /// it had.
    /// The copy a checkpoint makes is the one the pipeline goes on filling:
    /// with only its records' room, its next record would seal it as a
    /// short chunk, and a key with a record per checkpoint would hold a
    /// chunk per record.
    fn clone(&self) -> Self {
        let mut tail = Vec::with_capacity(self.tail.capacity());
        tail.extend_from_slice(&self.tail);
        EncodedRecords {
            trees: self.trees.clone(),
            chunk_bytes: self.chunk_bytes,
            tail,
            expected: self.expected,
        }
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
        EncodedRecords::from_chunk(bytes)
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
    /// From a byte string, or a sequence of bytes (what a `Vec<u8>` wrote),
    /// copied once, into the chunk. Owned, not borrowed: a checkpoint's
    /// state is decoded as its file is read.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(deserializer)?;
        Ok(EncodedRecords::from_chunk(bytes.into_vec()))
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
        let mut ours = EncodedRecords::expecting(64);
        for r in &records {
            ours.push(r);
        }
        let expected = plain(&records);
        assert!(
            ours.sealed().count() > 10,
            "{} chunks",
            ours.sealed().count()
        );
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
            ours.sealed()
                .zip(copy.sealed())
                .all(|(a, b)| Arc::ptr_eq(a, b))
        );
        copy.push(&record(1));
        let mut written = Vec::new();
        ours.write_to(&mut written);
        assert_eq!(written, expected);
    }

    /// Bytes allocated for records.
    fn allocated(records: &EncodedRecords) -> usize {
        records.sealed().map(|c| c.capacity()).sum::<usize>() + records.tail.capacity()
    }

    #[test]
    fn a_window_holds_about_its_records_bytes_and_is_never_copied_as_it_grows() {
        // Alike records, 30 to a window, as a sensor's in a 30 s window.
        let alike = |i: usize| Record::new("ups-1/string-2/cell-03", i as i64).with("v", i as f64);
        let one = encode::record_len(&alike(0));
        let window = |expected: usize, n: usize| {
            let mut ours = EncodedRecords::expecting(expected);
            let mut tails = Vec::new();
            for i in 0..n {
                ours.push(&alike(i));
                tails.push(ours.tail.as_ptr());
            }
            tails.dedup();
            (ours, tails.len())
        };
        // Expected from the last window: no more than that, and what each
        // chunk had no room for (less than a record).
        let expected = 30 * one + 30 * one / 8;
        let (ours, tails) = window(expected, 30);
        assert_eq!(ours.len(), 30 * one);
        assert!(allocated(&ours) <= expected + ours.sealed().count() * one);
        // Every tail is a new allocation, written once: never moved by growth.
        assert_eq!(tails, ours.sealed().count() + 1);
        // Not known: doubling, so at most twice the bytes and a first tail.
        let (ours, _) = window(0, 30);
        assert!(allocated(&ours) <= 2 * 30 * one + FIRST_TAIL_BYTES);
        // A window that has just opened holds little, whatever it expects.
        let (ours, _) = window(1 << 20, 2);
        assert!(allocated(&ours) <= FIRST_TAIL_BYTES, "{}", allocated(&ours));
        // A large one: chunks of at most CHUNK_BYTES, each nearly full.
        let (ours, _) = window(0, 5000);
        assert!(
            ours.sealed()
                .all(|c| c.len() <= CHUNK_BYTES && c.capacity() - c.len() < one)
        );
        assert!(allocated(&ours) <= ours.len() + CHUNK_BYTES + ours.sealed().count() * one);
    }

    #[test]
    fn a_window_copied_at_every_record_is_cut_as_one_never_copied() {
        // A slow key: a checkpoint copies its window after every record,
        // and the pipeline goes on with the copy.
        let alike = |i: usize| Record::new("ups-1/string-2/cell-03", i as i64).with("v", i as f64);
        let mut copied = EncodedRecords::default();
        let mut kept = EncodedRecords::default();
        for i in 0..300 {
            copied.push(&alike(i));
            kept.push(&alike(i));
            let snapshot = copied.clone();
            copied = snapshot.clone();
            drop(snapshot);
        }
        assert_eq!(copied, kept);
        assert_eq!(copied.sealed().count(), kept.sealed().count());
        assert_eq!(allocated(&copied), allocated(&kept));
        // Merged sessions: a part's spare room is not kept behind the
        // chunks shared after it.
        let mut merged = EncodedRecords::default();
        merged.push(&alike(0));
        merged.extend_from(&kept);
        merged.push(&alike(1));
        let records = merged.len();
        assert!(
            allocated(&merged) <= records + CHUNK_BYTES,
            "{}",
            allocated(&merged)
        );
        let first = merged.sealed().next().unwrap();
        assert!(first.capacity() == first.len());
    }

    #[test]
    fn a_copy_of_a_large_window_takes_a_reference_per_tree_of_chunks_not_per_chunk() {
        let alike = |i: usize| Record::new("sensor-0000001", i as i64).with("t", 20.0);
        let mut ours = EncodedRecords::default();
        let mut records = Vec::new();
        for i in 0..200_000 {
            ours.push(&alike(i));
            records.push(alike(i));
        }
        let sealed = ours.sealed().count();
        assert!(sealed > 1000, "{sealed} chunks");
        // What a copy takes a reference to: a tree each, one per 1 bit of
        // the number of chunks, largest first.
        assert_eq!(ours.trees.len(), sealed.count_ones() as usize);
        let sizes: Vec<usize> = ours.trees.iter().map(|(size, _)| *size).collect();
        assert!(sizes.windows(2).all(|w| w[0] > w[1]), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), sealed);
        let copy = ours.clone();
        let shared = |a: &Tree, b: &Tree| match (a, b) {
            (Tree::Pair(a), Tree::Pair(b)) => Arc::ptr_eq(a, b),
            (Tree::Chunk(a), Tree::Chunk(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        assert!(
            ours.trees
                .iter()
                .zip(&copy.trees)
                .all(|((_, a), (_, b))| shared(a, b))
        );
        assert_eq!(copy, ours);
        let mut written = Vec::new();
        copy.write_to(&mut written);
        assert_eq!(written, plain(&records));
        // Merged with another large one (sessions): in order, trees shared.
        let mut merged = EncodedRecords::default();
        merged.push(&alike(0));
        for _ in 0..67 {
            merged.push(&alike(1));
            merged.seal();
        }
        merged.extend_from(&ours);
        for _ in 0..1000 {
            merged.push(&alike(2));
        }
        let mut expected = vec![alike(0)];
        expected.extend((0..67).map(|_| alike(1)));
        expected.extend(records);
        expected.extend((0..1000).map(|_| alike(2)));
        let mut written = Vec::new();
        merged.write_to(&mut written);
        assert_eq!(written, plain(&expected));
        assert!(
            merged
                .trees
                .iter()
                .any(|(_, m)| ours.trees.iter().any(|(_, o)| shared(m, o)))
        );
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
