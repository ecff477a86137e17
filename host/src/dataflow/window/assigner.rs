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

/// The most windows a sliding assigner puts one record in (`size / slide`):
/// beyond it, each record would cost more than a pipeline can afford.
pub const MAX_WINDOWS_PER_RECORD: u64 = 10_000;

/// Flink's `TimeWindow.getWindowStartWithOffset`, in 128 bits so that no
/// event time overflows it.
pub(super) fn start_with_offset(time: i64, offset: i64, size: i64) -> i128 {
    // 64-bit division where `time - offset` fits (every real clock): 128-bit
    // division is a library call, paid by every record.
    if let Some(shifted) = time.checked_sub(offset)
        && size > 0
    {
        return i128::from(time) - i128::from(shifted.rem_euclid(size));
    }
    let time = i128::from(time);
    time - (time - i128::from(offset)).rem_euclid(i128::from(size))
}

/// Why a record has no window: its windows do not fit the `i64` time range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "event time {time} has no window here: its window [{start}, {end}) does not fit in the time range of ms since the epoch (i64)"
)]
pub struct Unassignable {
    /// The record's time.
    pub time: i64,
    /// The start of the window that does not fit.
    pub start: i128,
    /// Its end.
    pub end: i128,
}

/// A window that fits the time range, or why not.
fn fits(time: i64, start: i128, end: i128) -> Result<(i64, i64), Unassignable> {
    match (i64::try_from(start), i64::try_from(end)) {
        (Ok(s), Ok(e)) => Ok((s, e)),
        _ => Err(Unassignable { time, start, end }),
    }
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
    /// sessions this is the record's own window `[time, time + gap)`, before
    /// merging. A record whose windows do not all fit the `i64` time range
    /// gets none, and the error says why.
    pub fn assign(&self, time: i64, mut f: impl FnMut(i64, i64)) -> Result<(), Unassignable> {
        match *self {
            TimeWindows::Tumbling { size, offset } => {
                let start = start_with_offset(time, offset, size);
                let (start, end) = fits(time, start, start + i128::from(size))?;
                f(start, end);
            }
            TimeWindows::Sliding {
                size,
                slide,
                offset,
            } => {
                let (size, slide) = (i128::from(size), i128::from(slide));
                let last =
                    start_with_offset(time, offset, i64::try_from(slide).unwrap_or(i64::MAX));
                // The earliest start whose window still holds `time`.
                let lowest = i128::from(time) - size + 1;
                if last < lowest {
                    // `time` falls between windows (a slide longer than the size).
                    return Ok(());
                }
                let first = last - (last - lowest).div_euclid(slide) * slide;
                fits(time, first, first + size)?;
                fits(time, last, last + size)?;
                let mut start = last;
                while start >= first {
                    // Both ends were checked: every start between fits.
                    f(start as i64, (start + size) as i64);
                    start -= slide;
                }
            }
            TimeWindows::Session { gap } => {
                let (start, end) =
                    fits(time, i128::from(time), i128::from(time) + i128::from(gap))?;
                f(start, end);
            }
        }
        Ok(())
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
        w.assign(time, |s, e| out.push((s, e))).unwrap();
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

#[cfg(test)]
mod properties {
    //! Every assigner over the whole `i64` range: a record is in exactly the
    //! windows Flink's definitions put it in, or in none with a reason, and
    //! nothing overflows.

    use super::*;
    use proptest::prelude::*;

    /// Sizes from 1 ms to the whole range, small ones more often.
    fn size() -> impl Strategy<Value = u64> {
        prop_oneof![1..=100_000u64, 1..=u64::MAX]
    }

    /// 2000 cases, or `PROPTEST_CASES` (as `cargo xtask fuzz` sets it).
    fn config() -> ProptestConfig {
        let default = ProptestConfig::default();
        match std::env::var_os("PROPTEST_CASES") {
            Some(_) => default,
            None => ProptestConfig {
                cases: 2000,
                ..default
            },
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn fuzz_tumbling_windows_hold_their_record(time: i64, size in size(), offset: i64) {
            let w = TimeWindows::tumbling(size, offset);
            let mut got = Vec::new();
            match w.assign(time, |s, e| got.push((s, e))) {
                Ok(()) => {
                    prop_assert_eq!(got.len(), 1);
                    let (s, e) = got[0];
                    prop_assert!(s <= time && time < e);
                    prop_assert_eq!(i128::from(e) - i128::from(s), i128::from(clamp(size)));
                    prop_assert_eq!((i128::from(s) - i128::from(offset)).rem_euclid(i128::from(clamp(size))), 0);
                }
                Err(e) => {
                    prop_assert!(got.is_empty());
                    prop_assert!(e.start < i128::from(i64::MIN) || e.end > i128::from(i64::MAX));
                }
            }
        }

        #[test]
        fn fuzz_sliding_windows_are_every_aligned_window_holding_their_record(
            time: i64,
            slide in 1..=1_000_000u64,
            windows in 1..=50u64,
            extra in 0..1000u64,
            offset: i64,
        ) {
            // A size of up to 50 slides, and the last window's end near the edges too.
            let size = (slide * windows).saturating_add(extra % slide);
            let w = TimeWindows::sliding(size, slide, offset);
            let mut got = Vec::new();
            let result = w.assign(time, |s, e| got.push((s, e)));
            // What Flink's definition gives, in 128 bits.
            let (t, size, slide) = (i128::from(time), i128::from(size), i128::from(slide));
            let last = t - (t - i128::from(offset)).rem_euclid(slide);
            let mut expected = Vec::new();
            let mut start = last;
            while start > t - size {
                expected.push((start, start + size));
                start -= slide;
            }
            let fit = expected.iter().all(|(s, e)| *s >= i128::from(i64::MIN) && *e <= i128::from(i64::MAX));
            prop_assert_eq!(result.is_ok(), fit);
            if fit {
                let got: Vec<(i128, i128)> = got.iter().map(|(s, e)| (i128::from(*s), i128::from(*e))).collect();
                prop_assert_eq!(got, expected);
            } else {
                prop_assert!(got.is_empty());
            }
        }

        #[test]
        fn fuzz_a_session_window_is_the_gap_after_its_record(time: i64, gap in size()) {
            let w = TimeWindows::session(gap);
            let mut got = Vec::new();
            let fits = i128::from(time) + i128::from(clamp(gap)) <= i128::from(i64::MAX);
            prop_assert_eq!(w.assign(time, |s, e| got.push((s, e))).is_ok(), fits);
            if fits {
                prop_assert_eq!(got, vec![(time, time + clamp(gap))]);
            }
        }
    }

    #[test]
    fn the_ends_of_the_range() {
        let w = TimeWindows::sliding(10_000, 1000, 0);
        assert!(w.assign(i64::MIN, |_, _| {}).is_err());
        assert!(w.assign(i64::MAX, |_, _| {}).is_err());
        let t = TimeWindows::tumbling(1000, 0);
        assert!(t.assign(i64::MIN, |_, _| {}).is_err());
        // 9223372036854775000 is aligned; its window ends at 9223372036854776000 > i64::MAX.
        assert!(t.assign(i64::MAX - 807, |_, _| {}).is_err());
        let mut got = Vec::new();
        t.assign(i64::MIN + 808, |s, e| got.push((s, e))).unwrap();
        assert_eq!(got, [(i64::MIN + 808, i64::MIN + 1808)]);
    }
}
