//! Time window assigners, with Flink's alignment rules.

/// How records are assigned to time windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeWindows {
    /// Fixed-size, non-overlapping windows aligned to the epoch plus `offset`.
    Tumbling {
        /// Length, ms.
        size: i64,
        /// Shift from the epoch, ms.
        offset: i64,
    },
    /// Fixed-size windows starting every `slide`, so a record is in `size / slide` of them.
    Sliding {
        /// Length, ms.
        size: i64,
        /// Distance between starts, ms.
        slide: i64,
        /// Shift from the epoch, ms.
        offset: i64,
    },
    /// Per key, records closer than `gap` to each other share a window.
    Session {
        /// Inactivity that ends a session, ms.
        gap: i64,
    },
}

/// Flink's `TimeWindow.getWindowStartWithOffset`.
fn start_with_offset(time: i64, offset: i64, size: i64) -> i64 {
    time - (time - offset).rem_euclid(size)
}

impl TimeWindows {
    /// Tumbling windows; `size_ms` at least 1.
    pub fn tumbling(size_ms: u64, offset_ms: i64) -> Self {
        let size = clamp(size_ms);
        TimeWindows::Tumbling {
            size,
            offset: offset_ms.rem_euclid(size),
        }
    }

    /// Sliding windows; `size_ms` and `slide_ms` at least 1.
    pub fn sliding(size_ms: u64, slide_ms: u64, offset_ms: i64) -> Self {
        let slide = clamp(slide_ms);
        TimeWindows::Sliding {
            size: clamp(size_ms),
            slide,
            offset: offset_ms.rem_euclid(slide),
        }
    }

    /// Session windows; `gap_ms` at least 1.
    pub fn session(gap_ms: u64) -> Self {
        TimeWindows::Session { gap: clamp(gap_ms) }
    }

    /// Whether windows of a key merge (sessions).
    pub fn merging(&self) -> bool {
        matches!(self, TimeWindows::Session { .. })
    }

    /// Calls `f` with the `[start, end)` of every window `time` belongs to, in
    /// Flink's order (for sliding windows, the latest start first). For
    /// sessions this is the record's own window `[time, time + gap)`, before merging.
    pub fn assign(&self, time: i64, mut f: impl FnMut(i64, i64)) {
        match *self {
            TimeWindows::Tumbling { size, offset } => {
                let start = start_with_offset(time, offset, size);
                f(start, start.saturating_add(size));
            }
            TimeWindows::Sliding {
                size,
                slide,
                offset,
            } => {
                let mut start = start_with_offset(time, offset, slide);
                while start > time.saturating_sub(size) {
                    f(start, start.saturating_add(size));
                    start -= slide;
                }
            }
            TimeWindows::Session { gap } => f(time, time.saturating_add(gap)),
        }
    }
}

fn clamp(ms: u64) -> i64 {
    ms.clamp(1, i64::MAX as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(w: TimeWindows, time: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        w.assign(time, |s, e| out.push((s, e)));
        out
    }

    #[test]
    fn tumbling_assignment_matches_flink() {
        let w = TimeWindows::tumbling(1000, 0);
        assert_eq!(windows(w, 0), [(0, 1000)]);
        assert_eq!(windows(w, 999), [(0, 1000)]);
        assert_eq!(windows(w, 1000), [(1000, 2000)]);
        assert_eq!(windows(w, -1), [(-1000, 0)]);
        let shifted = TimeWindows::tumbling(1000, 250);
        assert_eq!(windows(shifted, 100), [(-750, 250)]);
        assert_eq!(windows(shifted, 250), [(250, 1250)]);
    }

    #[test]
    fn sliding_assignment_matches_flink() {
        // size 10 s, slide 1 s: a record is in ten windows, latest start first.
        let w = TimeWindows::sliding(10_000, 1000, 0);
        let got = windows(w, 12_345);
        assert_eq!(got.len(), 10);
        assert_eq!(got[0], (12_000, 22_000));
        assert_eq!(got[9], (3_000, 13_000));
        // size 3, slide 2: 4 is in [4, 7) and [2, 5); 5 in [4, 7) only... and [2, 5)? No: 5 is not < 5.
        let w = TimeWindows::sliding(3, 2, 0);
        assert_eq!(windows(w, 4), [(4, 7), (2, 5)]);
        assert_eq!(windows(w, 5), [(4, 7)]);
    }

    #[test]
    fn a_session_starts_as_the_records_own_window() {
        assert_eq!(windows(TimeWindows::session(500), 100), [(100, 600)]);
    }
}
