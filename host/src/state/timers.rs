//! Timers plugins set, kept by the host until they come due.

use std::collections::BTreeSet;
use std::sync::Arc;

use eddy_abi::TimeDomain;

/// The timers of one operator, per clock, ordered by time then key.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Timers {
    event_time: BTreeSet<(i64, Arc<str>)>,
    processing_time: BTreeSet<(i64, Arc<str>)>,
}

/// One timer: its clock, key and time.
pub type Timer = (TimeDomain, Arc<str>, i64);

impl Timers {
    fn set_of(&mut self, domain: TimeDomain) -> &mut BTreeSet<(i64, Arc<str>)> {
        match domain {
            TimeDomain::EventTime => &mut self.event_time,
            TimeDomain::ProcessingTime => &mut self.processing_time,
        }
    }

    /// Sets a timer; setting it again changes nothing.
    pub fn set(&mut self, domain: TimeDomain, key: Arc<str>, time: i64) {
        self.set_of(domain).insert((time, key));
    }

    /// Cancels a timer.
    pub fn delete(&mut self, domain: TimeDomain, key: Arc<str>, time: i64) {
        self.set_of(domain).remove(&(time, key));
    }

    /// Whether this timer is set.
    pub fn contains(&self, domain: TimeDomain, key: &Arc<str>, time: i64) -> bool {
        let set = match domain {
            TimeDomain::EventTime => &self.event_time,
            TimeDomain::ProcessingTime => &self.processing_time,
        };
        set.contains(&(time, key.clone()))
    }

    /// Whether an event-time timer is due at this watermark.
    pub fn event_time_due(&self, watermark: i64) -> bool {
        self.event_time
            .first()
            .is_some_and(|(t, _)| *t <= watermark)
    }

    /// How many timers are set.
    pub fn len(&self) -> usize {
        self.event_time.len() + self.processing_time.len()
    }

    /// Whether no timer is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and returns up to `max` of the timers of `domain` due at
    /// `now`, the earliest first (in time then key order).
    pub fn take_due(&mut self, domain: TimeDomain, now: i64, max: usize) -> Vec<(i64, Arc<str>)> {
        let set = self.set_of(domain);
        let mut due = Vec::new();
        while due.len() < max && set.first().is_some_and(|(t, _)| *t <= now) {
            due.extend(set.pop_first());
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_timers_come_out_in_time_order_once() {
        let mut t = Timers::default();
        t.set(TimeDomain::EventTime, "b".into(), 20);
        t.set(TimeDomain::EventTime, "a".into(), 10);
        t.set(TimeDomain::EventTime, "a".into(), 10);
        t.set(TimeDomain::EventTime, "c".into(), 30);
        t.delete(TimeDomain::EventTime, "c".into(), 30);
        assert!(!t.event_time_due(9));
        assert!(t.event_time_due(10));
        assert!(t.contains(TimeDomain::EventTime, &"b".into(), 20));
        assert!(!t.contains(TimeDomain::ProcessingTime, &"b".into(), 20));
        assert_eq!(
            t.take_due(TimeDomain::EventTime, 25, 1),
            vec![(10, "a".into())]
        );
        assert_eq!(
            t.take_due(TimeDomain::EventTime, 25, 9),
            vec![(20, "b".into())]
        );
        assert!(t.take_due(TimeDomain::EventTime, i64::MAX, 9).is_empty());
    }
}
