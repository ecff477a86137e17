//! Timers: ask the host to call `on_timer` for a key at a time.

use std::marker::PhantomData;

use eddy_abi::TimeDomain;

use crate::host;

/// Sets and cancels timers. A timer is identified by its key, clock and time;
/// setting the same one twice fires it once.
pub struct Timers<'a> {
    _context: PhantomData<&'a mut ()>,
}

impl Timers<'_> {
    pub(crate) fn new() -> Self {
        Timers {
            _context: PhantomData,
        }
    }

    /// Fires once the operator's watermark reaches `time`.
    pub fn set_event_time(&mut self, key: &str, time: i64) {
        host::timer_set(TimeDomain::EventTime, key, time);
    }

    /// Fires once the host's wall clock reaches `time`.
    pub fn set_processing_time(&mut self, key: &str, time: i64) {
        host::timer_set(TimeDomain::ProcessingTime, key, time);
    }

    /// Cancels a timer set with [`Timers::set_event_time`] or [`Timers::set_processing_time`].
    pub fn delete(&mut self, domain: TimeDomain, key: &str, time: i64) {
        host::timer_delete(domain, key, time);
    }
}
