//! Polling at intervals: which of a source's devices is due next. No I/O;
//! a task sleeps until [`Schedule::next`] and reports each poll.

use std::time::{Duration, Instant};

/// Devices polled each at its own interval, at a fixed rate: a device is
/// polled every interval from its first poll, whatever a poll takes; a
/// poll that comes late moves the device's rhythm on rather than bringing
/// a burst of polls to catch up.
#[derive(Debug, Clone)]
pub struct Schedule {
    due: Vec<Instant>,
    every: Vec<Duration>,
}

impl Schedule {
    /// Every device due at `now`, then at its interval.
    pub fn new(intervals: impl IntoIterator<Item = Duration>, now: Instant) -> Self {
        let every: Vec<Duration> = intervals.into_iter().collect();
        Schedule {
            due: vec![now; every.len()],
            every,
        }
    }

    /// The device due first, and when (ties: the first listed).
    pub fn next(&self) -> Option<(usize, Instant)> {
        self.due
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|&(i, due)| (due, i))
    }

    /// Sleeps (on tokio's clock) until the next device is due, counts it
    /// polled, and says which it is; `None` when there are no devices.
    pub async fn wait_next(&mut self) -> Option<usize> {
        let (i, due) = self.next()?;
        tokio::time::sleep_until(due.into()).await;
        self.polled(i, Instant::now());
        Some(i)
    }

    /// Device `i` is being polled at `now`: its next poll is one interval
    /// after this one was due, or one interval from now if that has passed.
    pub fn polled(&mut self, i: usize, now: Instant) {
        let next = self.due[i] + self.every[i];
        self.due[i] = if next < now {
            now + self.every[i]
        } else {
            next
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_come_due_at_their_own_fixed_rate() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::new([ms(100), ms(250)], t0);
        let mut polls = Vec::new();
        // Poll on time, for 500 ms.
        while let Some((i, due)) = s.next() {
            if due > t0 + ms(500) {
                break;
            }
            polls.push((i, (due - t0).as_millis()));
            s.polled(i, due);
        }
        assert_eq!(
            polls,
            [
                (0, 0),
                (1, 0),
                (0, 100),
                (0, 200),
                (1, 250),
                (0, 300),
                (0, 400),
                (0, 500),
                (1, 500)
            ]
        );
    }

    #[test]
    fn a_late_poll_moves_the_rhythm_on_without_a_burst() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::new([ms(100)], t0);
        // The first poll happens 350 ms late (a slow device before it).
        s.polled(0, t0 + ms(350));
        assert_eq!(s.next(), Some((0, t0 + ms(450))));
        // A poll a little late keeps the rhythm.
        s.polled(0, t0 + ms(460));
        assert_eq!(s.next(), Some((0, t0 + ms(550))));
    }
}
