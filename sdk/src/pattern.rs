//! Patterns over a key's records: "A then B within T", as Flink CEP's
//! `Pattern.begin("a").where(A).next("b").where(B).within(T)` (strict
//! contiguity: B must be the key's very next record) or `.followedBy("b")`
//! (relaxed: other records may come between).
//!
//! The partial matches live in keyed state, so they survive batches and
//! restarts. Rules, as in Flink's NFA with the default `NO_SKIP` strategy:
//! - a partial match started by `a` at time `t` times out once a record (or a
//!   timer) of the key comes at a time `≥ t + T`;
//! - with strict contiguity a record that is not `B` ends every partial match;
//!   with relaxed contiguity they wait;
//! - a record can complete matches and start a new one.
//!
//! ```
//! use eddy_sdk::pattern::{Pattern, PatternEvent};
//! use eddy_sdk::{Context, NoParams, Record, native};
//!
//! let hot = |r: &eddy_sdk::RecordRef<'_>| r.f64("t").is_some_and(|t| t > 40.0);
//! let twice = Pattern::begin("hot", hot).next(hot).within(2000);
//! let mut ctx = Context::new(NoParams {}, 0);
//! let mut events = Vec::new();
//! for (time, t) in [(0, 45.0), (1000, 46.0)] {
//!     let r = Record::new("cell", time).with("t", t);
//!     events.extend(twice.advance(&r.as_ref(), &mut ctx).unwrap());
//! }
//! assert!(matches!(&events[..], [PatternEvent::Matched { .. }]));
//! ```

use serde::{Deserialize, Serialize};

use crate::{Context, Record, RecordRef, Result, TimerRef};

/// Whether other records may come between the two parts of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contiguity {
    /// `next`: the second record must directly follow the first (per key).
    Strict,
    /// `followedBy`: records that are not the second may come between.
    Relaxed,
}

/// "A then B within T", per key. Build with [`Pattern::begin`].
pub struct Pattern<A, B> {
    state: &'static str,
    first: A,
    second: B,
    contiguity: Contiguity,
    within_ms: i64,
}

/// The first half of a pattern, waiting for its second.
pub struct Begin<A> {
    state: &'static str,
    first: A,
}

/// What a record or timer did to the pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum PatternEvent {
    /// A full match.
    Matched {
        /// The record that started it.
        first: Record,
        /// The record that completed it.
        second: Record,
    },
    /// A partial match ran out of time; report it to a side output if it matters.
    TimedOut {
        /// The record that started it.
        first: Record,
    },
}

/// Partial matches of one key, oldest first.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Partials {
    started: Vec<Record>,
}

impl<A> Begin<A>
where
    A: Fn(&RecordRef<'_>) -> bool,
{
    /// The second part must be the key's next record.
    pub fn next<B>(self, second: B) -> Pattern<A, B> {
        self.then(second, Contiguity::Strict)
    }

    /// The second part may come after other records.
    pub fn followed_by<B>(self, second: B) -> Pattern<A, B> {
        self.then(second, Contiguity::Relaxed)
    }

    fn then<B>(self, second: B, contiguity: Contiguity) -> Pattern<A, B> {
        Pattern {
            state: self.state,
            first: self.first,
            second,
            contiguity,
            within_ms: i64::MAX,
        }
    }
}

impl Pattern<(), ()> {
    /// Starts a pattern whose partial matches are kept in keyed state `state`.
    pub fn begin<A>(state: &'static str, first: A) -> Begin<A>
    where
        A: Fn(&RecordRef<'_>) -> bool,
    {
        Begin { state, first }
    }
}

impl<A, B> Pattern<A, B>
where
    A: Fn(&RecordRef<'_>) -> bool,
    B: Fn(&RecordRef<'_>) -> bool,
{
    /// A match must complete within `ms` of its first record.
    pub fn within(mut self, ms: i64) -> Self {
        self.within_ms = ms.max(1);
        self
    }

    /// Takes the key's next record; returns the matches it completes and the
    /// partial matches it times out. Also sets an event-time timer per partial
    /// match, so that one whose key goes quiet times out when the watermark
    /// passes; hand those timers to [`Pattern::on_timer`].
    pub fn advance<P>(
        &self,
        record: &RecordRef<'_>,
        ctx: &mut Context<P>,
    ) -> Result<Vec<PatternEvent>> {
        let state = ctx.state::<Partials>(self.state);
        let mut partials = state.get(record.key)?.unwrap_or_default();
        let mut events = self.expire(&mut partials, record.time);
        let completes = (self.second)(record);
        if completes {
            for first in &partials.started {
                events.push(PatternEvent::Matched {
                    first: first.clone(),
                    second: record.to_owned_record(),
                });
            }
        }
        // A match used its partials; with strict contiguity anything else ends them.
        if completes || self.contiguity == Contiguity::Strict {
            partials.started.clear();
        }
        if (self.first)(record) {
            partials.started.push(record.to_owned_record());
            if let Some(deadline) = record.time.checked_add(self.within_ms) {
                ctx.timers().set_event_time(record.key, deadline);
            }
        }
        self.save(ctx, record.key, &partials)?;
        Ok(events)
    }

    /// Times out the partial matches of the timer's key that are due; call it
    /// from the plugin's `on_timer` for the timers [`Pattern::advance`] sets.
    pub fn on_timer<P>(
        &self,
        timer: &TimerRef<'_>,
        ctx: &mut Context<P>,
    ) -> Result<Vec<PatternEvent>> {
        let state = ctx.state::<Partials>(self.state);
        let Some(mut partials) = state.get(timer.key)? else {
            return Ok(Vec::new());
        };
        let events = self.expire(&mut partials, timer.time);
        self.save(ctx, timer.key, &partials)?;
        Ok(events)
    }

    /// Removes (and reports) the partial matches that time has run out for.
    fn expire(&self, partials: &mut Partials, now: i64) -> Vec<PatternEvent> {
        let within = self.within_ms;
        let (expired, live): (Vec<Record>, Vec<Record>) = std::mem::take(&mut partials.started)
            .into_iter()
            .partition(|first| now.saturating_sub(first.time) >= within);
        partials.started = live;
        expired
            .into_iter()
            .map(|first| PatternEvent::TimedOut { first })
            .collect()
    }

    fn save<P>(&self, ctx: &mut Context<P>, key: &str, partials: &Partials) -> Result<()> {
        let state = ctx.state::<Partials>(self.state);
        if partials.started.is_empty() {
            state.delete(key);
            Ok(())
        } else {
            state.put(key, partials)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoParams;

    fn hot(r: &RecordRef<'_>) -> bool {
        r.f64("t").is_some_and(|t| t > 40.0)
    }

    /// Feeds `(time, t)` readings of one key; returns matches as `(first, second)`
    /// times and timeouts as `(first, -1)`.
    fn run<A, B>(pattern: &Pattern<A, B>, readings: &[(i64, f64)]) -> Vec<(i64, i64)>
    where
        A: Fn(&RecordRef<'_>) -> bool,
        B: Fn(&RecordRef<'_>) -> bool,
    {
        let mut ctx = Context::new(NoParams {}, 0);
        let mut out = Vec::new();
        for (time, t) in readings {
            let r = Record::new("k", *time).with("t", *t);
            for e in pattern.advance(&r.as_ref(), &mut ctx).unwrap() {
                out.push(match e {
                    PatternEvent::Matched { first, second } => (first.time, second.time),
                    PatternEvent::TimedOut { first } => (first.time, -1),
                });
            }
        }
        crate::native::take_emitted();
        out
    }

    #[test]
    fn next_needs_the_very_next_record_within_the_time() {
        let p = Pattern::begin("p", hot).next(hot).within(2000);
        // 0 and 1000 match; 1000 also starts a match that 2000 completes (NO_SKIP);
        // 3000 is cold, ending the partial started at 2000... which 3000 does not time out.
        assert_eq!(
            run(
                &p,
                &[
                    (0, 45.0),
                    (1000, 45.0),
                    (2000, 45.0),
                    (3000, 30.0),
                    (4000, 45.0),
                    (6000, 45.0)
                ]
            ),
            [(0, 1000), (1000, 2000), (4000, -1)]
        );
    }

    #[test]
    fn a_second_at_exactly_the_time_limit_is_too_late() {
        let p = Pattern::begin("p", hot).next(hot).within(1000);
        assert_eq!(run(&p, &[(0, 45.0), (1000, 45.0)]), [(0, -1)]);
    }

    #[test]
    fn followed_by_lets_other_records_come_between() {
        let p = Pattern::begin("p", hot)
            .followed_by(|r: &RecordRef<'_>| r.f64("t").is_some_and(|t| t < 0.0))
            .within(10_000);
        assert_eq!(
            run(&p, &[(0, 45.0), (1000, 20.0), (2000, 46.0), (3000, -5.0)]),
            [(0, 3000), (2000, 3000)]
        );
    }
}
