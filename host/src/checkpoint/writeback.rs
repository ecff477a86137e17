//! A large state file goes to the disk as it is written, and out of the
//! page cache once it is there.
//!
//! Checkpoints of gigabytes of open windows, one a second, would otherwise
//! leave gigabytes of dirty pages for the final sync to write at once, and
//! fill the page cache with files read only to recover. The kernel then
//! reclaims memory in whichever thread next faults a page in: often the
//! pipeline's, for tens of milliseconds. As RocksDB's `bytes_per_sync`
//! does, every [`STEP`] bytes written are handed to the disk at once
//! (`sync_file_range`), and, once the step before is written, that one is
//! dropped from the cache (`posix_fadvise(DONTNEED)`). The final
//! `sync_data` still makes the file durable: this only paces it. Outside
//! Linux it does nothing.

use std::fs::File;

/// Bytes written between two hand-overs to the disk.
pub(crate) const STEP: u64 = 8 << 20;

/// How far a file has been handed to the disk and dropped from the cache.
#[derive(Debug, Default)]
pub(crate) struct Writeback {
    /// Bytes handed to the disk (from the start of the file).
    started: u64,
    /// Bytes written out and dropped from the cache.
    dropped: u64,
}

impl Writeback {
    /// Notes that `written` bytes are in `file`: hands the bytes since the
    /// last hand-over to the disk once they are [`STEP`] or more, and drops
    /// what was handed over before them, once written, from the cache.
    pub(crate) fn wrote(&mut self, file: &File, written: u64) {
        if written < self.started + STEP {
            return;
        }
        start_writing(file, self.started, written - self.started);
        if self.started > self.dropped {
            wait_and_drop(file, self.dropped, self.started - self.dropped);
            self.dropped = self.started;
        }
        self.started = written;
    }

    /// Drops the whole file from the cache; `file` is synced.
    pub(crate) fn synced(&mut self, file: &File) {
        drop_cached(file, 0, 0);
        self.dropped = self.started;
    }
}

#[cfg(target_os = "linux")]
fn start_writing(file: &File, offset: u64, len: u64) {
    sync_range(file, offset, len, libc::SYNC_FILE_RANGE_WRITE);
}

#[cfg(target_os = "linux")]
fn wait_and_drop(file: &File, offset: u64, len: u64) {
    sync_range(
        file,
        offset,
        len,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    );
    drop_cached(file, offset, len);
}

/// `sync_file_range`. Advisory: a failure leaves the pages to the final
/// sync.
#[cfg(target_os = "linux")]
fn sync_range(file: &File, offset: u64, len: u64, flags: libc::c_uint) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for as long as `file` is borrowed.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            flags,
        );
    }
}

#[cfg(target_os = "linux")]
fn drop_cached(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: as in `sync_range`; `len` 0 means to the end of the file.
    unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            offset as libc::off_t,
            len as libc::off_t,
            libc::POSIX_FADV_DONTNEED,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writing(_: &File, _: u64, _: u64) {}

#[cfg(not(target_os = "linux"))]
fn wait_and_drop(_: &File, _: u64, _: u64) {}

#[cfg(not(target_os = "linux"))]
fn drop_cached(_: &File, _: u64, _: u64) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Write;

    /// Pages of the file at `path` in the page cache (mincore over a
    /// mapping of it).
    fn cached_pages(path: &std::path::Path, len: usize) -> usize {
        use std::os::fd::AsRawFd;
        let file = File::open(path).unwrap();
        let page = 4096;
        let pages = len.div_ceil(page);
        let mut present = vec![0u8; pages];
        // SAFETY: a read-only shared mapping of `len` bytes of an open
        // file, unmapped before returning; `present` has a byte per page.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            assert_eq!(libc::mincore(map, len, present.as_mut_ptr()), 0);
            libc::munmap(map, len);
        }
        present.iter().filter(|p| **p & 1 == 1).count()
    }

    #[test]
    fn what_is_written_leaves_the_cache_a_step_behind_and_all_once_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut file = File::create(&path).unwrap();
        let mut writeback = Writeback::default();
        let block = vec![7u8; 1 << 20];
        let mut written = 0u64;
        for _ in 0..4 * STEP / block.len() as u64 {
            file.write_all(&block).unwrap();
            written += block.len() as u64;
            writeback.wrote(&file, written);
        }
        // Four steps written and handed over: the first three written out
        // and dropped; only the last may still be cached.
        assert_eq!(writeback.dropped, 3 * STEP);
        assert_eq!(writeback.started, 4 * STEP);
        let len = written as usize;
        let cached = cached_pages(&path, len);
        assert!(
            cached <= (STEP / 4096) as usize,
            "{cached} of {} pages cached",
            len / 4096
        );
        file.sync_data().unwrap();
        writeback.synced(&file);
        assert_eq!(cached_pages(&path, len), 0);
        // The bytes are all there.
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), len);
        assert!(back.iter().all(|b| *b == 7));
    }
}
