//! How the pipeline thread sleeps until there is work.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

/// Rung by whatever hands the pipeline thread work (a source's task with
/// records, the local API with a request); the pipeline thread waits on it
/// instead of sleeping a fixed tick, so a record that arrives is processed
/// at once. Clones ring the same bell.
#[derive(Debug, Clone, Default)]
pub struct Doorbell(Arc<(Mutex<bool>, Condvar)>);

impl Doorbell {
    /// A bell nobody has rung.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the waiter, now or at its next wait.
    pub fn ring(&self) {
        let (rung, waiter) = &*self.0;
        *rung.lock().unwrap_or_else(PoisonError::into_inner) = true;
        waiter.notify_one();
    }

    /// Waits until the bell rings or `deadline` passes; returns whether it
    /// rang. A ring since the last wait ends the wait at once.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        let (rung, waiter) = &*self.0;
        let mut guard = rung.lock().unwrap_or_else(PoisonError::into_inner);
        while !*guard {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = waiter
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *guard = false;
        true
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
}
