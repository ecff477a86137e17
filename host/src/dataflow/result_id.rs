//! Deterministic ids of results, so that a consumer can drop the duplicates
//! replay after a crash produces.
//!
//! An id is `PIPELINE/NODE[.OUTPUT]/CAUSE/SEQ`: the cause is what the record
//! derives from (an input record and its sequence number in the node, a window
//! firing, a due timer), and `SEQ` numbers the records one cause produced.
//! Replaying the same input produces the same causes in the same order, hence
//! the same ids.

use std::fmt;
use std::sync::Arc;

use eddy_abi::TimeDomain;

/// What a result derives from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The `n`-th record a node took in (counted from 0 over the node's life).
    Record { key: Arc<str>, n: u64 },
    /// A window's firing (`firing > 0` for updates after late records);
    /// `number` tells a key's count windows apart.
    Window {
        key: Arc<str>,
        start: i64,
        end: i64,
        firing: u32,
        number: u64,
    },
    /// The `n`-th timer the operator fired.
    Timer {
        key: Arc<str>,
        domain: TimeDomain,
        time: i64,
        n: u64,
    },
    /// The `n`-th call of an operator whose plugin named no cause.
    Call { n: u64 },
}

/// A result's id, short of the pipeline and node output it is written from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResultId {
    pub(crate) cause: Arc<Cause>,
    pub(crate) seq: u32,
}

impl ResultId {
    /// Writes the full id of a record from node output `label` of `pipeline`.
    pub(crate) fn write(&self, pipeline: &str, label: &str, out: &mut String) {
        out.clear();
        out.push_str(pipeline);
        out.push('/');
        out.push_str(label);
        out.push('/');
        self.cause.write(out);
        out.push('/');
        out.push_str(itoa::Buffer::new().format(self.seq));
    }
}

impl Cause {
    /// Appends the cause as ids spell it (`{key}/w{start}-{end}/f{firing}`
    /// for a time window's firing), without the formatting machinery: a
    /// sink writes one id per result.
    fn write(&self, out: &mut String) {
        let mut n = itoa::Buffer::new();
        match self {
            Cause::Record { key, n: i } => {
                out.push_str(key);
                out.push_str("/r");
                out.push_str(n.format(*i));
            }
            Cause::Window {
                key,
                start,
                end,
                firing,
                number,
            } => {
                out.push_str(key);
                // A time window's `w{start}-{end}/f{firing}`, a count
                // window's `c{number}:{start}-{end}`.
                if *number == 0 {
                    out.push_str("/w");
                } else {
                    out.push_str("/c");
                    out.push_str(n.format(*number));
                    out.push(':');
                }
                out.push_str(n.format(*start));
                out.push('-');
                out.push_str(n.format(*end));
                if *number == 0 {
                    out.push_str("/f");
                    out.push_str(n.format(*firing));
                }
            }
            Cause::Timer {
                key,
                domain,
                time,
                n: i,
            } => {
                out.push_str(key);
                out.push_str(match domain {
                    TimeDomain::EventTime => "/te",
                    TimeDomain::ProcessingTime => "/tp",
                });
                out.push_str(n.format(*time));
                out.push_str("/n");
                out.push_str(n.format(*i));
            }
            Cause::Call { n: i } => {
                out.push_str("call");
                out.push_str(n.format(*i));
            }
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write(&mut out);
        f.write_str(&out)
    }
}

/// A cause index with no record yet, in [`IdAssigner`]'s positions.
const NOT_SEEN: u32 = u32::MAX;

/// Hands out ids for one call's outputs: each cause numbers its records from 0.
pub(crate) struct IdAssigner<F> {
    causes: F,
    /// `(cause index, Arc'd cause, next seq)` seen in this call.
    seen: Vec<(Option<u32>, Arc<Cause>, u32)>,
    /// Where cause index `i` is in `seen` (`NOT_SEEN` before its first
    /// record): a call that fires a thousand windows looks each up at once,
    /// not along the list. Indexes are those of the call's input items.
    position: Vec<u32>,
    /// Where the records of no cause are in `seen`.
    uncaused: Option<u32>,
    call: u64,
}

impl<F: Fn(usize) -> Option<Cause>> IdAssigner<F> {
    /// Ids for a call numbered `call` whose input item `i` is `causes(i)`.
    pub(crate) fn new(call: u64, causes: F) -> Self {
        IdAssigner {
            causes,
            seen: Vec::new(),
            position: Vec::new(),
            uncaused: None,
            call,
        }
    }

    /// The id of the next record derived from input item `index`.
    pub(crate) fn next(&mut self, index: Option<u32>) -> ResultId {
        if let Some(id) = self.known(index) {
            return id;
        }
        // An index the input does not have counts as no cause.
        let cause = index.and_then(|i| (self.causes)(i as usize));
        let index = if cause.is_some() { index } else { None };
        if let Some(id) = self.known(index) {
            return id;
        }
        let cause = Arc::new(cause.unwrap_or(Cause::Call { n: self.call }));
        let at = self.seen.len() as u32;
        match index {
            Some(i) => {
                let i = i as usize;
                if self.position.len() <= i {
                    self.position.resize(i + 1, NOT_SEEN);
                }
                self.position[i] = at;
            }
            None => self.uncaused = Some(at),
        }
        self.seen.push((index, cause.clone(), 1));
        ResultId { cause, seq: 0 }
    }

    fn known(&mut self, index: Option<u32>) -> Option<ResultId> {
        // Most often the cause of the record before.
        let last = self.seen.len().checked_sub(1);
        let at = match last {
            Some(last) if self.seen[last].0 == index => last,
            _ => match index {
                Some(i) => *self
                    .position
                    .get(i as usize)
                    .filter(|&&at| at != NOT_SEEN)? as usize,
                None => self.uncaused? as usize,
            },
        };
        let entry = &mut self.seen[at];
        let seq = entry.2;
        entry.2 += 1;
        Some(ResultId {
            cause: entry.1.clone(),
            seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_cause_and_number_its_records() {
        let keys = ["a", "b"];
        let mut ids = IdAssigner::new(7, |i| {
            keys.get(i).map(|k| Cause::Window {
                key: (*k).into(),
                start: 0,
                end: 10,
                firing: 1,
                number: 0,
            })
        });
        let mut out = String::new();
        let mut id = |index| {
            ids.next(index).write("p", "stats", &mut out);
            out.clone()
        };
        assert_eq!(id(Some(0)), "p/stats/a/w0-10/f1/0");
        assert_eq!(id(Some(1)), "p/stats/b/w0-10/f1/0");
        assert_eq!(id(Some(0)), "p/stats/a/w0-10/f1/1");
        // No cause, or one out of range: by call.
        assert_eq!(id(None), "p/stats/call7/0");
        assert_eq!(id(Some(9)), "p/stats/call7/1");
    }

    #[test]
    fn every_kind_of_cause_is_spelled_as_ids_spell_it() {
        let key: Arc<str> = "site-1/t".into();
        let causes = [
            (
                Cause::Record {
                    key: key.clone(),
                    n: 42,
                },
                "site-1/t/r42",
            ),
            (
                Cause::Window {
                    key: key.clone(),
                    start: -1000,
                    end: 0,
                    firing: 3,
                    number: 0,
                },
                "site-1/t/w-1000-0/f3",
            ),
            (
                Cause::Window {
                    key: key.clone(),
                    start: 5,
                    end: 9,
                    firing: 0,
                    number: 7,
                },
                "site-1/t/c7:5-9",
            ),
            (
                Cause::Timer {
                    key: key.clone(),
                    domain: TimeDomain::EventTime,
                    time: i64::MIN,
                    n: 0,
                },
                "site-1/t/te-9223372036854775808/n0",
            ),
            (
                Cause::Timer {
                    key,
                    domain: TimeDomain::ProcessingTime,
                    time: 1_767_225_600_000,
                    n: u64::MAX,
                },
                "site-1/t/tp1767225600000/n18446744073709551615",
            ),
            (Cause::Call { n: 12 }, "call12"),
        ];
        let mut out = String::from("left over");
        for (cause, spelled) in causes {
            assert_eq!(cause.to_string(), spelled);
            let id = ResultId {
                cause: Arc::new(cause),
                seq: 4_000_000_000,
            };
            id.write("p", "op.late", &mut out);
            assert_eq!(out, format!("p/op.late/{spelled}/4000000000"));
        }
    }

    #[test]
    fn many_causes_interleaved_each_number_their_records_in_order() {
        let mut ids = IdAssigner::new(1, |i| {
            Some(Cause::Window {
                key: format!("k{i}").into(),
                start: 0,
                end: 10,
                firing: 1,
                number: 0,
            })
        });
        let mut out = String::new();
        // Rounds over a thousand causes, and runs of one cause.
        for round in 0..3 {
            for i in 0..1000u32 {
                ids.next(Some(i)).write("p", "s", &mut out);
                assert_eq!(out, format!("p/s/k{i}/w0-10/f1/{round}"));
            }
        }
        for seq in 3..6 {
            ids.next(Some(500)).write("p", "s", &mut out);
            assert_eq!(out, format!("p/s/k500/w0-10/f1/{seq}"));
        }
    }
}
