//! A call's deadline, in CPU time of the thread that makes it.
//!
//! The engine's ticker advances the epoch every few milliseconds of wall
//! time; at each tick a running guest stops at its next epoch check and the
//! store's callback compares the CPU time its thread has used since the
//! call began with the deadline. CPU time, not wall time: a plugin is not
//! charged for time its thread waited for a core (a loaded 2-core gateway, a
//! neighbour's memory being freed on another thread), and it is charged for
//! the host's work inside its host calls (decoding what it emits, copying
//! state), which runs on the same thread.

use std::time::{Duration, Instant};

/// CPU time the calling thread has used (user and system), or `None`
/// where the clock cannot be read.
fn thread_cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    (rc == 0).then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

/// The clock of one call: when it began and what it may use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallClock {
    /// The thread's CPU time when the call began, if the clock can be read.
    cpu_start: Option<Duration>,
    /// Wall time when it began, for hosts without a thread CPU clock.
    wall_start: Instant,
    /// The deadline.
    pub(crate) budget: Duration,
}

impl CallClock {
    /// Starts a call's clock on the calling thread.
    pub(crate) fn start(budget: Duration) -> Self {
        CallClock {
            cpu_start: thread_cpu_time(),
            wall_start: Instant::now(),
            budget,
        }
    }

    /// What the call has used so far: CPU time of this thread, or wall
    /// time where there is no CPU clock.
    pub(crate) fn used(&self) -> Duration {
        match (self.cpu_start, thread_cpu_time()) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            _ => self.wall_start.elapsed(),
        }
    }

    /// Whether the call has used up its deadline. Must be asked on the
    /// thread that started the clock.
    pub(crate) fn expired(&self) -> bool {
        self.used() >= self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_sleeps_uses_no_cpu_time_and_one_that_spins_does() {
        let clock = CallClock::start(Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(120));
        assert!(!clock.expired(), "sleeping used {:?}", clock.used());
        let spin = Instant::now();
        let mut n = 0u64;
        while !clock.expired() {
            n = std::hint::black_box(n + 1);
            assert!(spin.elapsed() < Duration::from_secs(10), "never expired");
        }
        assert!(clock.used() >= Duration::from_millis(50));
    }
}
