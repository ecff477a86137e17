//! How a plugin version is doing: restart backoff and quarantine.
//!
//! Every fault that throws an instance away schedules a restart after an
//! exponential backoff. A version that keeps failing (`failures` faults
//! within `window`) is quarantined: it is not called again, and its input
//! goes to the dead-letter log, until it is swapped or reset.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// When a plugin that keeps failing is quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantinePolicy {
    /// Faults within `window` that quarantine it; 0 never does.
    pub failures: u32,
    /// The span the faults are counted over.
    pub window: Duration,
}

impl Default for QuarantinePolicy {
    fn default() -> Self {
        QuarantinePolicy {
            failures: 10,
            window: Duration::from_secs(300),
        }
    }
}

/// The restart and quarantine bookkeeping of one plugin version.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    /// When the next instance may start, after a failure.
    pub(crate) restart_at: Option<Instant>,
    /// The wait before the next restart.
    pub(crate) backoff: Duration,
    /// When recent faults happened, oldest first.
    recent: VecDeque<Instant>,
    /// Why it is quarantined, if it is.
    pub(crate) quarantined: Option<String>,
}

impl Health {
    /// A fresh version: no faults, the first backoff.
    pub(crate) fn new(backoff: Duration) -> Self {
        Health {
            restart_at: None,
            backoff,
            recent: VecDeque::new(),
            quarantined: None,
        }
    }

    /// Counts a fault at `now`; returns the quarantine reason when this one
    /// makes too many.
    pub(crate) fn fault(&mut self, now: Instant, policy: QuarantinePolicy) -> Option<String> {
        if policy.failures == 0 || self.quarantined.is_some() {
            return None;
        }
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() < policy.failures as usize {
            return None;
        }
        let reason = format!(
            "is quarantined after {} failures within {} s; swap in another version or reset it (`eddy plugin reset`)",
            self.recent.len(),
            policy.window.as_secs()
        );
        self.quarantined = Some(reason.clone());
        Some(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantines_only_when_faults_crowd_into_the_window() {
        let policy = QuarantinePolicy {
            failures: 3,
            window: Duration::from_secs(60),
        };
        let mut health = Health::new(Duration::from_millis(1));
        let t0 = Instant::now();
        assert!(health.fault(t0, policy).is_none());
        assert!(health.fault(t0 + Duration::from_secs(30), policy).is_none());
        // The first fault has left the window by now: still two.
        assert!(health.fault(t0 + Duration::from_secs(61), policy).is_none());
        let reason = health.fault(t0 + Duration::from_secs(62), policy).unwrap();
        assert!(reason.contains("3 failures within 60 s"), "{reason}");
        assert!(health.quarantined.is_some());
    }

    #[test]
    fn zero_failures_never_quarantines() {
        let policy = QuarantinePolicy {
            failures: 0,
            window: Duration::from_secs(60),
        };
        let mut health = Health::new(Duration::from_millis(1));
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(health.fault(t0, policy).is_none());
        }
    }
}
