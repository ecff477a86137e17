//! Where the source is in each partition, and the watermark that follows:
//! sans-IO, so that offsets, restores and idleness are tested without a
//! broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One partition as a checkpoint keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Saved {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// The offset of the next message to read.
    pub(crate) next: i64,
    /// The latest event time read from it.
    pub(crate) max_time: Option<i64>,
}

/// One partition, live.
#[derive(Debug, Clone)]
struct Part {
    next: i64,
    max_time: Option<i64>,
    /// When it last had a message (or was assigned).
    active_at: Instant,
}

/// Every partition read, with the source's watermark over them: Flink's
/// Kafka source, where each partition keeps a bounded-out-of-orderness
/// watermark and the source's is their minimum, an idle partition (no
/// message for `idle_timeout`) left out until it has one again.
#[derive(Debug, Clone)]
pub(crate) struct Partitions {
    bound_ms: i64,
    idle_timeout: Option<Duration>,
    parts: BTreeMap<(Arc<str>, i32), Part>,
}

impl Partitions {
    pub(crate) fn new(bound_ms: u64, idle_timeout: Option<Duration>) -> Self {
        Partitions {
            bound_ms: bound_ms.min(i64::MAX as u64) as i64,
            idle_timeout,
            parts: BTreeMap::new(),
        }
    }

    /// Takes back where a checkpoint was (from [`Partitions::position`]).
    pub(crate) fn restore(&mut self, position: &[u8], now: Instant) -> Result<(), String> {
        let saved: Vec<Saved> = postcard::from_bytes(position)
            .map_err(|e| format!("the checkpoint's Kafka offsets cannot be read: {e}"))?;
        for s in saved {
            self.parts.insert(
                (s.topic.as_str().into(), s.partition),
                Part {
                    next: s.next,
                    max_time: s.max_time,
                    active_at: now,
                },
            );
        }
        Ok(())
    }

    /// Whether the partition is known (read, assigned or restored).
    pub(crate) fn contains(&self, topic: &str, partition: i32) -> bool {
        self.parts.contains_key(&(Arc::from(topic), partition))
    }

    /// Starts reading a partition at `next`.
    pub(crate) fn assign(&mut self, topic: &str, partition: i32, next: i64, now: Instant) {
        self.parts.insert(
            (topic.into(), partition),
            Part {
                next,
                max_time: None,
                active_at: now,
            },
        );
    }

    /// The partitions and the offsets to read from next.
    pub(crate) fn offsets(&self) -> impl Iterator<Item = (&str, i32, i64)> + '_ {
        self.parts
            .iter()
            .map(|((t, p), part)| (&**t, *p, part.next))
    }

    /// A message at `offset` was read, with records at `times`.
    pub(crate) fn read(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        times: impl IntoIterator<Item = i64>,
        now: Instant,
    ) {
        let part = self.parts.entry((topic.into(), partition)).or_insert(Part {
            next: offset,
            max_time: None,
            active_at: now,
        });
        part.next = part.next.max(offset + 1);
        part.active_at = now;
        for time in times {
            part.max_time = Some(part.max_time.map_or(time, |m| m.max(time)));
        }
    }

    /// The source's watermark: the least over partitions that are not
    /// idle of `max time − bound − 1`, `i64::MIN` while one of them has
    /// had no record; `None` when every partition is idle (the watermark
    /// holds).
    pub(crate) fn watermark(&self, now: Instant) -> Option<i64> {
        self.parts
            .values()
            .filter(|p| {
                self.idle_timeout
                    .is_none_or(|t| now.saturating_duration_since(p.active_at) < t)
            })
            .map(|p| {
                p.max_time.map_or(i64::MIN, |m| {
                    m.saturating_sub(self.bound_ms).saturating_sub(1)
                })
            })
            .min()
    }

    /// Where the source is, for a checkpoint.
    pub(crate) fn position(&self) -> Vec<u8> {
        let saved: Vec<Saved> = self
            .parts
            .iter()
            .map(|((topic, partition), part)| Saved {
                topic: topic.to_string(),
                partition: *partition,
                next: part.next,
                max_time: part.max_time,
            })
            .collect();
        // A vector of plain structs always serializes.
        postcard::to_allocvec(&saved).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_is_the_least_over_partitions_and_an_idle_one_stops_holding_it() {
        let t0 = Instant::now();
        let mut p = Partitions::new(2000, Some(Duration::from_secs(5)));
        p.assign("r", 0, 0, t0);
        p.assign("r", 1, 0, t0);
        assert_eq!(p.watermark(t0), Some(i64::MIN), "no record yet");
        p.read("r", 0, 0, [10_000, 12_000], t0);
        assert_eq!(p.watermark(t0), Some(i64::MIN), "partition 1 has none");
        p.read("r", 1, 0, [9_000], t0);
        assert_eq!(p.watermark(t0), Some(9_000 - 2001));
        // Out of order within a partition moves nothing back.
        p.read("r", 1, 1, [8_000], t0);
        assert_eq!(p.watermark(t0), Some(6_999));
        // Partition 1 falls silent: after the timeout only partition 0 counts.
        let later = t0 + Duration::from_secs(4);
        p.read("r", 0, 2, [20_000], later);
        assert_eq!(p.watermark(later), Some(6_999));
        let idle = t0 + Duration::from_secs(6);
        assert_eq!(p.watermark(idle), Some(20_000 - 2001));
        // Both idle: it holds.
        assert_eq!(p.watermark(t0 + Duration::from_secs(10)), None);
        // Partition 1 has a message again: it counts again.
        let back = t0 + Duration::from_secs(11);
        p.read("r", 1, 2, [19_000], back);
        assert_eq!(p.watermark(back), Some(19_000 - 2001));
    }

    #[test]
    fn without_an_idle_timeout_a_silent_partition_holds_the_watermark() {
        let t0 = Instant::now();
        let mut p = Partitions::new(0, None);
        p.assign("r", 0, 5, t0);
        p.assign("r", 1, 0, t0);
        p.read("r", 0, 5, [1_000], t0);
        assert_eq!(p.watermark(t0 + Duration::from_secs(3600)), Some(i64::MIN));
    }

    #[test]
    fn a_position_restores_offsets_and_event_times() {
        let t0 = Instant::now();
        let mut p = Partitions::new(100, None);
        p.assign("a", 0, 40, t0);
        p.assign("b", 3, 7, t0);
        p.read("a", 0, 40, [500], t0);
        p.read("a", 0, 41, [450], t0);
        let bytes = p.position();
        let mut back = Partitions::new(100, None);
        back.restore(&bytes, t0).unwrap();
        assert_eq!(
            back.offsets().collect::<Vec<_>>(),
            [("a", 0, 42), ("b", 3, 7)],
            "next offsets: after the last read, or where assigned"
        );
        assert!(back.contains("b", 3) && !back.contains("b", 0));
        back.read("b", 3, 7, [1_000], t0);
        assert_eq!(
            back.watermark(t0),
            Some(500 - 101),
            "partition a's time came back"
        );
        assert!(back.restore(b"\xff\xff\xff", t0).is_err());
    }
}
