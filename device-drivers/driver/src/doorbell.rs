//! How the pipeline thread sleeps until there is work.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

/// Rung by whatever hands the pipeline thread work (a source's task with
/// records, the local API with a request); the pipeline thread waits on it
/// instead of sleeping a fixed tick, so a record that arrives is processed
/// at once. Clones ring the same bell; one thread waits on it.
///
/// A ring wakes the thread (a system call) only while it waits, and while
/// it gathers a trickle of records ([`Doorbell::gather_until`]) only once
/// enough have arrived: records that arrive while it works cost a lock that
/// nobody else holds.
#[derive(Debug, Clone, Default)]
pub struct Doorbell(Arc<(Mutex<Bell>, Condvar)>);

/// The bell's state.
#[derive(Debug, Default)]
struct Bell {
    /// Rung for something other than records since the last wait ended.
    rung: bool,
    /// Records arrived since the last wait ended.
    arrived: usize,
    /// While the thread waits: the records that end its wait.
    waiting_for: Option<usize>,
}

impl Bell {
    fn done(&self, records: usize) -> bool {
        self.rung || self.arrived >= records
    }
}

impl Doorbell {
    /// A bell nobody has rung.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the waiter, now or at its next wait, whatever it waits for.
    pub fn ring(&self) {
        let (bell, waiter) = &*self.0;
        let mut bell = bell.lock().unwrap_or_else(PoisonError::into_inner);
        bell.rung = true;
        if bell.waiting_for.is_some() {
            waiter.notify_one();
        }
    }

    /// Says `records` records arrived: wakes a waiter waiting for as many.
    pub fn arrived(&self, records: usize) {
        let (bell, waiter) = &*self.0;
        let mut bell = bell.lock().unwrap_or_else(PoisonError::into_inner);
        // A batch without records (a watermark, rejected input) is news too.
        bell.arrived = bell.arrived.saturating_add(records.max(1));
        if bell
            .waiting_for
            .is_some_and(|wanted| bell.arrived >= wanted)
        {
            waiter.notify_one();
        }
    }

    /// Waits until the bell rings, records arrive, or `deadline` passes;
    /// returns whether it rang. A ring or an arrival since the last wait
    /// ends the wait at once.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        self.gather_until(deadline, 1)
    }

    /// Waits until `records` records have arrived since the last wait, the
    /// bell rings, or `deadline` passes; returns whether the wait ended
    /// before the deadline.
    pub fn gather_until(&self, deadline: Instant, records: usize) -> bool {
        let (bell, waiter) = &*self.0;
        let mut guard = bell.lock().unwrap_or_else(PoisonError::into_inner);
        let mut early = true;
        while !guard.done(records) {
            let now = Instant::now();
            if now >= deadline {
                early = false;
                break;
            }
            guard.waiting_for = Some(records);
            guard = waiter
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        guard.waiting_for = None;
        guard.rung = false;
        guard.arrived = 0;
        early
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_ring_wakes_the_waiter_and_an_earlier_ring_is_not_lost() {
        let bell = Doorbell::new();
        bell.ring();
        assert!(bell.wait_until(Instant::now() + Duration::from_secs(5)));
        assert!(!bell.wait_until(Instant::now() + Duration::from_millis(10)));
        let ringer = bell.clone();
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            ringer.ring();
        });
        assert!(bell.wait_until(Instant::now() + Duration::from_secs(5)));
        assert!(started.elapsed() < Duration::from_secs(5));
        thread.join().unwrap();
    }

    #[test]
    fn gathering_ends_when_enough_records_arrived_or_the_bell_rings() {
        let bell = Doorbell::new();
        bell.arrived(3);
        let soon = Instant::now() + Duration::from_millis(20);
        // Three of five: the wait runs to its deadline.
        assert!(!bell.gather_until(soon, 5));
        assert!(Instant::now() >= soon);
        let ringer = bell.clone();
        let thread = std::thread::spawn(move || {
            for _ in 0..5 {
                std::thread::sleep(Duration::from_millis(5));
                ringer.arrived(1);
            }
        });
        assert!(bell.gather_until(Instant::now() + Duration::from_secs(5), 5));
        thread.join().unwrap();
        bell.arrived(1);
        bell.ring();
        assert!(bell.gather_until(Instant::now() + Duration::from_secs(5), 1000));
        // Each wait starts afresh.
        assert!(!bell.wait_until(Instant::now() + Duration::from_millis(10)));
    }
}
