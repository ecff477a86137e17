//! Entries in append-only segment files: the results of one priority of a
//! sink's outbox, and a pipeline's ingest journal.
//!
//! A folder holds segments named after the number of their first entry
//! (twenty digits, so that names sort as numbers). An entry is a header —
//! payload length (`u32`), CRC-32 of the rest (`u32`), sequence number
//! (`u64`), time added (`i64` ms) — and the payload; all big endian.
//! Entries are only appended, and the log only forgets whole segments
//! before its head (what is delivered or dropped, what a checkpoint
//! holds), or cuts its end at a restore. Nothing per entry is held in
//! memory: a backlog of any size costs a few numbers.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Bytes of an entry's header.
pub(crate) const HEADER: u64 = 24;

/// A segment takes entries until it reaches this size.
pub(crate) const SEGMENT_BYTES: u64 = 16 << 20;

/// Bytes read from a segment at a time.
const READ_CHUNK: usize = 256 << 10;

/// The extension of segment files.
const EXTENSION: &str = "seg";

/// A place in a log: the number of the entry there (counting every entry
/// ever appended), the segment it is in and its offset in that segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Place {
    /// The entry's number.
    pub(crate) index: u64,
    /// The number of the segment's first entry.
    pub(crate) segment: u64,
    /// Bytes from the start of the segment.
    pub(crate) offset: u64,
}

impl Place {
    fn start() -> Place {
        Place {
            index: 0,
            segment: 0,
            offset: 0,
        }
    }
}

/// What an entry's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Its sequence number (in the outbox, in the journal).
    pub(crate) seq: u64,
    /// When it was added, ms since the Unix epoch.
    pub(crate) added_ms: i64,
    /// Its bytes on disk, header included.
    pub(crate) size: u64,
}

/// An entry read back.
pub(crate) struct Entry {
    /// What its header says.
    pub(crate) header: Header,
    /// The result, encoded.
    pub(crate) payload: Vec<u8>,
}

/// One segment: the number of its first entry and its length in bytes.
#[derive(Debug, Clone, Copy)]
struct Segment {
    first: u64,
    len: u64,
}

/// What a scan of a segment found.
#[derive(Default)]
struct Scanned {
    /// Whole entries.
    count: u64,
    /// Their bytes.
    bytes: u64,
    /// The last one's sequence number.
    last_seq: Option<u64>,
}

/// The segmented log of one priority.
pub(crate) struct Log {
    dir: PathBuf,
    /// The segments on disk, oldest first.
    segments: VecDeque<Segment>,
    /// The last segment, open for appending.
    tail_file: Option<File>,
    /// The place after the last entry.
    tail: Place,
    /// Entries encoded and not written yet.
    pending: Vec<u8>,
    /// Whether entries were written since the last sync.
    unsynced: bool,
    /// Whether the last segment's file was opened (maybe created) since the
    /// last sync: its name in the folder is made durable with the next one.
    new_file: bool,
    /// Whether this log made sure of its folder (it is made with the first
    /// entry written).
    dir_made: bool,
    /// The sequence number of the last entry.
    last_seq: Option<u64>,
    /// The segment read last.
    reader: Option<Reader>,
    /// A segment takes entries until it reaches this size.
    segment_bytes: u64,
}

impl Log {
    /// Opens the log in `dir` (created if needed); `head` is the first
    /// entry not removed yet, as last recorded. Cuts an entry the process
    /// was writing when it stopped. Gives the log and the head, moved to
    /// the tail if the segments end before it. A missing folder is an empty
    /// log: it is made with the first entry written, so that opening a log
    /// to read it leaves nothing behind.
    pub(crate) fn open(
        dir: &Path,
        head: Option<Place>,
        segment_bytes: u64,
    ) -> io::Result<(Log, Place)> {
        let items = match std::fs::read_dir(dir) {
            Ok(items) => Some(items),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut firsts = Vec::new();
        for item in items.into_iter().flatten() {
            let path = item?.path();
            if path.extension().is_some_and(|e| e == EXTENSION)
                && let Some(first) = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse::<u64>().ok())
            {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();
        let mut segments = VecDeque::with_capacity(firsts.len());
        for first in firsts {
            let len = std::fs::metadata(segment_path(dir, first))?.len();
            segments.push_back(Segment { first, len });
        }
        let head = head.unwrap_or_else(Place::start);
        let mut log = Log {
            dir: dir.to_owned(),
            segments,
            tail_file: None,
            tail: Place {
                index: head.index,
                segment: head.index,
                offset: 0,
            },
            pending: Vec::new(),
            unsynced: false,
            new_file: false,
            dir_made: false,
            last_seq: None,
            reader: None,
            segment_bytes,
        };
        // The last segment ends at its last whole entry.
        while let Some(last) = log.segments.back().copied() {
            let Scanned {
                count,
                bytes: valid,
                last_seq,
            } = log.scan(last, u64::MAX)?;
            log.reader = None;
            if valid == 0 {
                std::fs::remove_file(segment_path(dir, last.first))?;
                log.segments.pop_back();
                continue;
            }
            if valid == last.len {
                // Written before a crash but perhaps not on disk: a new
                // segment after it must not find it torn later.
                File::open(segment_path(dir, last.first))?.sync_data()?;
            } else {
                tracing::warn!(
                    segment = %segment_path(dir, last.first).display(),
                    "the end of a segment was cut short (a write the process did not finish): dropped"
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(segment_path(dir, last.first))?;
                file.set_len(valid)?;
                file.sync_data()?;
            }
            if let Some(back) = log.segments.back_mut() {
                back.len = valid;
            }
            log.tail = Place {
                index: last.first + count,
                segment: last.first,
                offset: valid,
            };
            log.last_seq = last_seq;
            break;
        }
        // Segments may have been lost after the head was recorded (a
        // power cut before they reached the disk): what is left counts.
        let head = if head.index >= log.tail.index {
            log.tail
        } else if !log.holds(head) {
            log.first_place()
        } else {
            head
        };
        Ok((log, head))
    }

    /// Forgets the segments whose entries all have sequence numbers up to
    /// `seq`, but the last one, which is appended to; removes their files.
    pub(crate) fn forget_through(&mut self, seq: u64) -> io::Result<()> {
        while self.segments.len() > 1 {
            let next = self.segments[1];
            // Sequence numbers grow: the next segment's first bounds this one's.
            if self
                .first_seq(next)?
                .is_none_or(|first| first > seq.saturating_add(1))
            {
                break;
            }
            if let Some(gone) = self.segments.pop_front() {
                if self
                    .reader
                    .as_ref()
                    .is_some_and(|r| r.segment.first == gone.first)
                {
                    self.reader = None;
                }
                match std::fs::remove_file(segment_path(&self.dir, gone.first)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The place of the first entry on disk (the tail if there is none).
    pub(crate) fn first_place(&self) -> Place {
        match self.segments.front() {
            Some(s) => Place {
                index: s.first,
                segment: s.first,
                offset: 0,
            },
            None => self.tail,
        }
    }

    /// Whether `place` is in a segment on disk.
    fn holds(&self, place: Place) -> bool {
        self.segments
            .iter()
            .any(|s| s.first == place.segment && place.offset <= s.len)
    }

    /// Reads the whole entries of `segment` from its start, up to the
    /// first whose sequence number is `cut` or more.
    fn scan(&mut self, segment: Segment, cut: u64) -> io::Result<Scanned> {
        let mut reader = self.reader.take();
        let mut scanned = Scanned::default();
        let r = Reader::at(&mut reader, &self.dir, segment)?;
        while let Some(entry) = r.entry(scanned.bytes)? {
            if entry.header.seq >= cut {
                break;
            }
            scanned.bytes += entry.header.size;
            scanned.count += 1;
            scanned.last_seq = Some(entry.header.seq);
        }
        self.reader = reader;
        Ok(scanned)
    }

    /// The sequence number of the first entry of `segment`.
    fn first_seq(&mut self, segment: Segment) -> io::Result<Option<u64>> {
        let mut reader = self.reader.take();
        let first = Reader::at(&mut reader, &self.dir, segment).and_then(|r| r.header(0));
        self.reader = reader;
        Ok(first?.map(|h| h.seq))
    }

    /// Its folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether entries were written since the last sync.
    pub(crate) fn unsynced(&self) -> bool {
        self.unsynced
    }

    /// The sequence number of the last entry, if any.
    pub(crate) fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The place after the last entry.
    pub(crate) fn tail(&self) -> Place {
        self.tail
    }

    /// Adds an entry at the end (written by [`Log::write`]).
    pub(crate) fn append(&mut self, seq: u64, added_ms: i64, payload: &[u8]) -> io::Result<()> {
        let size = HEADER + payload.len() as u64;
        if self.tail.offset > 0 && self.tail.offset + size > self.segment_bytes {
            // A full segment is on disk before the next one starts: only
            // the last segment can ever end in a cut entry.
            self.sync()?;
            self.tail_file = None;
            self.tail.segment = self.tail.index;
            self.tail.offset = 0;
        }
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a result over 4 GiB"))?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&seq.to_be_bytes());
        crc.update(&added_ms.to_be_bytes());
        crc.update(payload);
        self.pending.extend_from_slice(&len.to_be_bytes());
        self.pending
            .extend_from_slice(&crc.finalize().to_be_bytes());
        self.pending.extend_from_slice(&seq.to_be_bytes());
        self.pending.extend_from_slice(&added_ms.to_be_bytes());
        self.pending.extend_from_slice(payload);
        if self.tail.offset == 0
            && self
                .segments
                .back()
                .is_none_or(|s| s.first != self.tail.segment)
        {
            self.segments.push_back(Segment {
                first: self.tail.segment,
                len: 0,
            });
        }
        self.tail.index += 1;
        self.tail.offset += size;
        self.last_seq = Some(seq);
        Ok(())
    }

    /// Writes the entries appended since the last write (to the operating
    /// system: they survive the process, not a power cut, until synced).
    pub(crate) fn write(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.tail_file.is_none() {
            if !self.dir_made {
                create_dir_durably(&self.dir)?;
                self.dir_made = true;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment_path(&self.dir, self.tail.segment))?;
            self.tail_file = Some(file);
            self.new_file = true;
        }
        if let Some(file) = &mut self.tail_file {
            file.write_all(&self.pending)?;
        }
        if let Some(last) = self.segments.back_mut() {
            last.len += self.pending.len() as u64;
        }
        self.pending.clear();
        self.unsynced = true;
        Ok(())
    }

    /// Makes what was written durable, and the name of a segment file
    /// created since the last sync (a synced file whose folder entry is
    /// not can be gone after a power cut).
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.write()?;
        if self.unsynced
            && let Some(file) = &self.tail_file
        {
            file.sync_data()?;
        }
        if self.new_file {
            File::open(&self.dir)?.sync_all()?;
            self.new_file = false;
        }
        self.unsynced = false;
        Ok(())
    }

    /// The segment a place is in, moving to the next segment when the
    /// place is at the end of one.
    fn locate(&self, place: Place) -> Option<(Place, Segment)> {
        let at = |first: u64| self.segments.iter().find(|s| s.first == first).copied();
        if let Some(segment) = at(place.segment)
            && place.offset < segment.len
        {
            return Some((place, segment));
        }
        // At the end of its segment, or in one forgotten: the entry is the
        // first of the next segment there is (entries between were dropped
        // with their segment).
        let next = self
            .segments
            .iter()
            .find(|s| s.first >= place.index && s.first != place.segment)
            .copied()?;
        let place = Place {
            index: next.first,
            segment: next.first,
            offset: 0,
        };
        Some((place, next))
    }

    /// The header of the entry at `place`, and the place after it.
    pub(crate) fn peek(&mut self, place: Place) -> io::Result<Option<(Header, Place)>> {
        self.write()?;
        if place.index >= self.tail.index {
            return Ok(None);
        }
        let Some((place, segment)) = self.locate(place) else {
            return Ok(None);
        };
        let mut reader = self.reader.take();
        let header =
            Reader::at(&mut reader, &self.dir, segment).and_then(|r| r.header(place.offset));
        self.reader = reader;
        Ok(header?.map(|h| (h, after(place, h))))
    }

    /// Up to `max` entries from `place`, and the place after them.
    pub(crate) fn read(&mut self, mut place: Place, max: usize) -> io::Result<(Vec<Entry>, Place)> {
        self.write()?;
        let mut entries = Vec::new();
        let mut reader = self.reader.take();
        let result = (|| {
            while entries.len() < max && place.index < self.tail.index {
                let Some((here, segment)) = self.locate(place) else {
                    break;
                };
                place = here;
                let r = Reader::at(&mut reader, &self.dir, segment)?;
                let Some(entry) = r.entry(place.offset)? else {
                    if entries.is_empty() {
                        return Err(corrupt(&self.dir, segment.first, place.offset));
                    }
                    // What came before the damage goes now; the damage is
                    // met at the next read.
                    break;
                };
                place = after(place, entry.header);
                entries.push(entry);
            }
            Ok(())
        })();
        self.reader = reader;
        result.map(|()| (entries, place))
    }

    /// Cuts the log before its first entry whose sequence number is `seq`
    /// or more; gives the place of the cut (the new tail).
    pub(crate) fn cut_from(&mut self, seq: u64) -> io::Result<Place> {
        self.write()?;
        self.tail_file = None;
        // Segments whose first entry is at or after the cut go whole.
        while let Some(last) = self.segments.back().copied() {
            if self.first_seq(last)?.is_some_and(|first| first < seq) {
                break;
            }
            self.segments.pop_back();
            self.reader = None;
            std::fs::remove_file(segment_path(&self.dir, last.first))?;
            self.tail = Place {
                index: last.first,
                segment: last.first,
                offset: 0,
            };
            self.last_seq = None;
        }
        if let Some(last) = self.segments.back().copied() {
            let scanned = self.scan(last, seq)?;
            self.reader = None;
            if scanned.bytes < last.len {
                let file = OpenOptions::new()
                    .write(true)
                    .open(segment_path(&self.dir, last.first))?;
                file.set_len(scanned.bytes)?;
                file.sync_data()?;
            }
            if let Some(back) = self.segments.back_mut() {
                back.len = scanned.bytes;
            }
            self.tail = Place {
                index: last.first + scanned.count,
                segment: last.first,
                offset: scanned.bytes,
            };
            self.last_seq = scanned.last_seq;
        }
        Ok(self.tail)
    }

    /// Bytes on disk from `from` to `to`.
    pub(crate) fn bytes_between(&self, from: Place, to: Place) -> u64 {
        self.bytes_from(from).saturating_sub(self.bytes_from(to))
    }

    /// Bytes on disk from `from` to the tail.
    pub(crate) fn bytes_from(&self, from: Place) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.first >= from.segment)
            .map(|s| {
                if s.first == from.segment {
                    s.len.saturating_sub(from.offset)
                } else {
                    s.len
                }
            })
            .sum()
    }

    /// Forgets the segments none of whose entries is in `needed` (ranges
    /// of entry numbers: those in flight and those waiting); the last one
    /// stays, to be appended to. Gives their files, to be removed by the
    /// caller (off the pipeline thread if it likes).
    pub(crate) fn release(&mut self, needed: &[std::ops::Range<u64>]) -> Vec<PathBuf> {
        let mut gone = Vec::new();
        let mut i = 0;
        while i + 1 < self.segments.len() {
            let span = self.segments[i].first..self.segments[i + 1].first;
            let used = needed
                .iter()
                .any(|n| n.start < span.end && span.start < n.end && n.start < n.end);
            if used {
                i += 1;
            } else if let Some(segment) = self.segments.remove(i) {
                gone.push(segment_path(&self.dir, segment.first));
            }
        }
        if self
            .reader
            .as_ref()
            .is_some_and(|r| gone.contains(&segment_path(&self.dir, r.segment.first)))
        {
            self.reader = None;
        }
        gone
    }

    /// The entries from `from` to the tail (segments forgotten between
    /// them hold none).
    pub(crate) fn entries_from(&self, from: Place) -> u64 {
        let mut count = 0;
        for (i, segment) in self.segments.iter().enumerate() {
            let end = self
                .segments
                .get(i + 1)
                .map_or(self.tail.index, |next| next.first);
            count += end.saturating_sub(segment.first.max(from.index));
        }
        count
    }

    /// Past damaged bytes at `place`: the start of the next segment (or the
    /// tail), and the entries and bytes given up.
    pub(crate) fn skip_segment(&mut self, place: Place) -> (Place, u64, u64) {
        self.reader = None;
        let Some((place, segment)) = self.locate(place) else {
            return (self.tail, 0, 0);
        };
        let next = self
            .segments
            .iter()
            .find(|s| s.first > segment.first)
            .copied();
        let to = next.map_or(self.tail, |n| Place {
            index: n.first,
            segment: n.first,
            offset: 0,
        });
        let entries = to.index.saturating_sub(place.index);
        let bytes = segment.len.saturating_sub(place.offset);
        (to, entries, bytes)
    }
}

/// A segment open for reading, with the bytes read from it last.
struct Reader {
    segment: Segment,
    file: File,
    chunk: Vec<u8>,
    /// Where in the segment `chunk` starts.
    chunk_at: u64,
}

impl Reader {
    /// The reader of `segment`, opened unless `cached` is it.
    fn at<'a>(
        cached: &'a mut Option<Reader>,
        dir: &Path,
        segment: Segment,
    ) -> io::Result<&'a mut Reader> {
        let stale = cached
            .as_ref()
            .is_none_or(|r| r.segment.first != segment.first);
        if stale {
            *cached = None;
        }
        let reader = match cached {
            Some(reader) => reader,
            None => cached.insert(Reader {
                segment,
                file: File::open(segment_path(dir, segment.first))?,
                chunk: Vec::new(),
                chunk_at: 0,
            }),
        };
        if reader.segment.len != segment.len {
            // Appended to since: what was read stays right, more may come.
            reader.segment = segment;
        }
        Ok(reader)
    }

    /// `len` bytes at `offset`, from the chunk or a new read; `None` if
    /// the segment ends before.
    fn bytes(&mut self, offset: u64, len: usize) -> io::Result<Option<&[u8]>> {
        if offset + len as u64 > self.segment.len {
            return Ok(None);
        }
        let covered = offset >= self.chunk_at
            && offset + len as u64 <= self.chunk_at + self.chunk.len() as u64;
        if !covered {
            let want = READ_CHUNK.max(len) as u64;
            self.chunk
                .resize(want.min(self.segment.len - offset) as usize, 0);
            self.file.read_exact_at(&mut self.chunk, offset)?;
            self.chunk_at = offset;
        }
        let from = (offset - self.chunk_at) as usize;
        Ok(Some(&self.chunk[from..from + len]))
    }

    /// The header at `offset`, unchecked.
    fn header(&mut self, offset: u64) -> io::Result<Option<Header>> {
        let Some(bytes) = self.bytes(offset, HEADER as usize)? else {
            return Ok(None);
        };
        let (seq, len) = decode_header(bytes);
        let added_ms = bytes[16..24].try_into().map_or(0, i64::from_be_bytes);
        Ok(Some(Header {
            seq,
            added_ms,
            size: HEADER + u64::from(len),
        }))
    }

    /// The whole entry at `offset`, if it is there and its checksum holds.
    fn entry(&mut self, offset: u64) -> io::Result<Option<Entry>> {
        let Some(header) = self.header(offset)? else {
            return Ok(None);
        };
        let Some(bytes) = self.bytes(offset, header.size as usize)? else {
            return Ok(None);
        };
        Ok(check(bytes).map(|header| Entry {
            header,
            payload: bytes[HEADER as usize..].to_vec(),
        }))
    }
}

/// The place after the entry at `place`.
fn after(place: Place, header: Header) -> Place {
    Place {
        index: place.index + 1,
        segment: place.segment,
        offset: place.offset + header.size,
    }
}

/// Makes `dir` and the folders above it that are missing, and syncs each
/// one's entry in its parent, `dir`'s even when it was there already (made
/// by another thread or an older version, perhaps not synced): a power cut
/// must not take away a folder whose files were synced.
fn create_dir_durably(dir: &Path) -> io::Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        if !parent.is_dir() {
            create_dir_durably(parent)?;
        }
        match std::fs::create_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    File::open(parent)?.sync_all()
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.{EXTENSION}"))
}

fn corrupt(dir: &Path, first: u64, offset: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: the entry at byte {offset} is damaged",
            segment_path(dir, first).display()
        ),
    )
}

/// The sequence number and payload length of a header's bytes.
fn decode_header(bytes: &[u8]) -> (u64, u32) {
    let word = |r: std::ops::Range<usize>| bytes.get(r).unwrap_or_default();
    let len = word(0..4).try_into().map_or(0, u32::from_be_bytes);
    let seq = word(8..16).try_into().map_or(0, u64::from_be_bytes);
    (seq, len)
}

/// The header of a whole entry's bytes, if its checksum holds.
fn check(bytes: &[u8]) -> Option<Header> {
    let field = |r: std::ops::Range<usize>| bytes.get(r);
    let len = u32::from_be_bytes(field(0..4)?.try_into().ok()?);
    let crc = u32::from_be_bytes(field(4..8)?.try_into().ok()?);
    if bytes.len() as u64 != HEADER + u64::from(len) || crc32fast::hash(&bytes[8..]) != crc {
        return None;
    }
    Some(Header {
        seq: u64::from_be_bytes(field(8..16)?.try_into().ok()?),
        added_ms: i64::from_be_bytes(field(16..24)?.try_into().ok()?),
        size: bytes.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    //! The log against real files in a temporary directory.

    use super::*;

    /// Entries of varied sizes, their sequence numbers ten apart.
    fn payload(n: u64) -> Vec<u8> {
        format!("result {n};")
            .repeat(n as usize % 7 + 1)
            .into_bytes()
    }

    fn fill(log: &mut Log, range: std::ops::Range<u64>) {
        for n in range {
            log.append(n * 10, n as i64 * 1000, &payload(n)).unwrap();
        }
        log.write().unwrap();
    }

    /// Everything from `place` on, read a few entries at a time; the
    /// numbers (sequence number / 10) of the entries, checked whole.
    fn numbers(log: &mut Log, mut place: Place) -> Vec<u64> {
        let mut numbers = Vec::new();
        loop {
            let (entries, next) = log.read(place, 7).unwrap();
            if entries.is_empty() {
                return numbers;
            }
            for e in entries {
                let n = e.header.seq / 10;
                assert_eq!(e.payload, payload(n));
                assert_eq!(e.header.added_ms, n as i64 * 1000);
                numbers.push(n);
            }
            place = next;
        }
    }

    fn segment_files(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn entries_come_back_in_order_across_segments_and_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, head) = Log::open(dir.path(), None, 256).unwrap();
        fill(&mut log, 0..50);
        assert!(segment_files(dir.path()) > 5, "many segments of 256 bytes");
        assert_eq!(numbers(&mut log, head), (0..50).collect::<Vec<_>>());
        // Thirty delivered: the segments wholly before them go.
        let (_, at_30) = log.read(head, 30).unwrap();
        let total = log.bytes_from(head);
        let before = segment_files(dir.path());
        let needed = at_30.index..log.tail().index;
        let gone = log.release(std::slice::from_ref(&needed));
        assert!(!gone.is_empty());
        gone.iter().try_for_each(std::fs::remove_file).unwrap();
        assert_eq!(segment_files(dir.path()), before - gone.len());
        assert_eq!(log.bytes_between(at_30, log.tail()), log.bytes_from(at_30));
        assert!(log.bytes_from(at_30) < total);
        drop(log);
        let (mut log, head) = Log::open(dir.path(), Some(at_30), 256).unwrap();
        // The same entry, found at the start of its segment.
        assert_eq!(head.index, 30);
        assert_eq!(numbers(&mut log, head), (30..50).collect::<Vec<_>>());
        assert_eq!(log.tail().index, 50);
        assert_eq!(log.last_seq(), Some(490));
        fill(&mut log, 50..55);
        assert_eq!(numbers(&mut log, head), (30..55).collect::<Vec<_>>());
    }

    #[test]
    fn an_entry_cut_short_or_garbled_by_a_crash_is_dropped_and_appending_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, head) = Log::open(dir.path(), None, 1 << 20).unwrap();
        fill(&mut log, 0..5);
        drop(log);
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let len = std::fs::metadata(&file).unwrap().len();
        // The last entry's write did not finish.
        let f = OpenOptions::new().write(true).open(&file).unwrap();
        f.set_len(len - 3).unwrap();
        let (mut log, _) = Log::open(dir.path(), Some(head), 1 << 20).unwrap();
        assert_eq!(log.tail().index, 4);
        assert_eq!(numbers(&mut log, head), vec![0, 1, 2, 3]);
        fill(&mut log, 7..8);
        assert_eq!(numbers(&mut log, head), vec![0, 1, 2, 3, 7]);
        drop(log);
        // The last entry's bytes are garbage (its length is right).
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        let (mut log, _) = Log::open(dir.path(), Some(head), 1 << 20).unwrap();
        assert_eq!(numbers(&mut log, head), vec![0, 1, 2, 3]);
        assert_eq!(log.last_seq(), Some(30));
    }

    #[test]
    fn a_cut_removes_the_entries_from_a_sequence_number_on() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, head) = Log::open(dir.path(), None, 256).unwrap();
        fill(&mut log, 0..50);
        let files = segment_files(dir.path());
        // Sequence numbers 0, 10, …, 250 stay.
        let cut = log.cut_from(255).unwrap();
        assert_eq!(cut.index, 26);
        assert!(segment_files(dir.path()) < files);
        assert_eq!(numbers(&mut log, head), (0..26).collect::<Vec<_>>());
        fill(&mut log, 100..102);
        let mut expected: Vec<u64> = (0..26).collect();
        expected.extend([100, 101]);
        assert_eq!(numbers(&mut log, head), expected);
        drop(log);
        let (mut log, head) = Log::open(dir.path(), Some(head), 256).unwrap();
        assert_eq!(numbers(&mut log, head), expected);
        // A cut before everything leaves nothing.
        assert_eq!(log.cut_from(0).unwrap().index, 0);
        assert_eq!(segment_files(dir.path()), 0);
        assert!(numbers(&mut log, head).is_empty());
    }
}
