//! Waits between retries: exponential, capped, with jitter.

use std::time::Duration;

use crate::config::RetryConfig;

/// The next wait after a failure: from `initial_backoff_ms`, doubling with
/// each failure in a row up to `max_backoff_ms`, then shortened by a
/// random part of up to half ("equal jitter"), so that many gateways that
/// lost the same peer do not all come back at the same instant.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    config: RetryConfig,
    failures: u32,
    rng: u64,
}

impl Backoff {
    pub(crate) fn new(config: RetryConfig) -> Self {
        let seed = getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15);
        Backoff {
            config,
            failures: 0,
            rng: seed | 1,
        }
    }

    /// The wait after one more failure in a row.
    pub(crate) fn next(&mut self) -> Duration {
        let base = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        base / 2 + self.jitter(base / 2)
    }

    /// The longest wait, jittered: for components that failed for a reason
    /// waiting may not cure, tried again now and then.
    pub(crate) fn longest(&mut self) -> Duration {
        let max = Duration::from_millis(self.config.max_backoff_ms.max(1));
        max / 2 + self.jitter(max / 2)
    }

    /// The wait after a failure: what the peer asked for, else the next
    /// backoff for a transient failure, or the longest for one that waiting
    /// may not cure.
    pub(crate) fn after(&mut self, transient: bool, retry_after: Option<Duration>) -> Duration {
        retry_after.unwrap_or_else(|| {
            if transient {
                self.next()
            } else {
                self.longest()
            }
        })
    }

    /// The peer answered: the next failure starts from the first wait again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// The wait before jitter after the failures so far.
    fn ceiling(&self) -> Duration {
        // A first wait longer than the longest is the longest.
        let max = self.config.max_backoff_ms.max(1);
        let initial = self.config.initial_backoff_ms.clamp(1, max);
        let ms = initial
            .saturating_mul(1u64 << self.failures.min(40))
            .min(max);
        Duration::from_millis(ms)
    }

    /// Up to `span`, at random (xorshift64*).
    fn jitter(&mut self, span: Duration) -> Duration {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let fraction = (r >> 11) as f64 / (1u64 << 53) as f64;
        span.mul_f64(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_within_their_jitter_and_reset() {
        let mut b = Backoff::new(RetryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
        });
        let ceilings = [100, 200, 400, 800, 1000, 1000];
        for ceiling in ceilings {
            let wait = b.next().as_millis() as u64;
            assert!(
                (ceiling / 2..=ceiling).contains(&wait),
                "{wait} ms, expected within [{}, {ceiling}]",
                ceiling / 2
            );
        }
        b.reset();
        assert!(b.next() <= Duration::from_millis(100));
        let waits: std::collections::BTreeSet<_> = (0..20)
            .map(|_| {
                b.reset();
                b.next()
            })
            .collect();
        assert!(waits.len() > 10, "jitter varies the waits: {waits:?}");
    }
}
