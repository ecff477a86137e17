//! `window-stats-incremental`: `window-stats` as an incremental aggregate.
//!
//! The same results as `window-stats` (count, and per field sum, min, max and
//! average, per key and window), written as Flink's `AggregateFunction`: the
//! host keeps one small accumulator per key and window instead of the
//! window's records, and merges accumulators when sessions merge.
//!
//! Params: `fields`, the fields to aggregate (default: every numeric field,
//! in the order they are first seen).

use std::cell::RefCell;
use std::sync::Arc;

use eddy_sdk::{Aggregate, Context, Names, Record, RecordRef, Result, WindowInfo};
use serde::{Deserialize, Serialize};

/// The operator's params.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Fields to aggregate; empty means every numeric field.
    #[serde(default)]
    pub fields: Vec<String>,
}

/// Running statistics of one field.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Stats {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Stats {
    const EMPTY: Stats = Stats {
        count: 0,
        sum: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    // Comparisons, not `f64::min`/`max`: in wasm those are calls to
    // `fmin`/`fmax`. A NaN compares false, so it is skipped as `min` would.
    fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
    }

    fn merge(&mut self, other: &Stats) {
        self.count += other.count;
        self.sum += other.sum;
        if other.min < self.min {
            self.min = other.min;
        }
        if other.max > self.max {
            self.max = other.max;
        }
    }
}

/// One window's accumulator: a few numbers per field, and no field names
/// when the params name the fields (the statistics are in their order), so
/// that the host's copy of it is small and cheap to read back.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Acc {
    records: u64,
    stats: Vec<Stats>,
    /// With no fields in the params: the name of each numeric field, in the
    /// order first seen.
    names: Vec<String>,
}

impl Acc {
    /// The statistics of a field found in the records (no fields in the params).
    fn seen(&mut self, name: &str) -> &mut Stats {
        let i = match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_owned());
                self.stats.push(Stats::EMPTY);
                self.names.len() - 1
            }
        };
        &mut self.stats[i]
    }

    /// Each field's name and statistics.
    fn fields<'a>(&'a self, params: &'a Params) -> impl Iterator<Item = (&'a str, &'a Stats)> {
        let names = if params.fields.is_empty() {
            &self.names
        } else {
            &params.fields
        };
        names.iter().map(String::as_str).zip(&self.stats)
    }
}

/// The output's field names, made once: a result allocates no name.
#[derive(Default)]
struct OutputNames {
    names: Names,
    /// `window_start`, `window_end`, `count` and `update`.
    window: Option<[Arc<str>; 4]>,
    /// Per aggregated field, in the order last seen: its name and its
    /// `_sum`, `_min`, `_max` and `_avg` names.
    fields: Vec<(Arc<str>, [Arc<str>; 4])>,
}

impl OutputNames {
    /// The names of the window's own fields.
    fn window(&mut self) -> [Arc<str>; 4] {
        let names = &mut self.names;
        self.window
            .get_or_insert_with(|| {
                ["window_start", "window_end", "count", "update"].map(|n| names.get(n))
            })
            .clone()
    }

    /// The four output names of the `i`-th field, `name`.
    fn of(&mut self, i: usize, name: &str) -> &[Arc<str>; 4] {
        if self.fields.get(i).is_none_or(|(n, _)| **n != *name) {
            let made = (
                self.names.get(name),
                ["_sum", "_min", "_max", "_avg"].map(|s| self.names.joined(name, s)),
            );
            if i < self.fields.len() {
                self.fields[i] = made;
            } else {
                self.fields.push(made);
            }
        }
        &self.fields[i].1
    }
}

thread_local! {
    static NAMES: RefCell<OutputNames> = RefCell::default();
}

/// The aggregate.
pub struct WindowStats;

#[eddy_sdk::aggregate]
impl Aggregate for WindowStats {
    type Params = Params;
    type Acc = Acc;

    fn add(acc: &mut Acc, record: &RecordRef<'_>, params: &Params) {
        acc.records += 1;
        if params.fields.is_empty() {
            for (name, value) in &record.fields {
                if let Some(v) = value.as_f64() {
                    acc.seen(name).add(v);
                }
            }
        } else {
            acc.stats.resize(params.fields.len(), Stats::EMPTY);
            for (name, stats) in params.fields.iter().zip(&mut acc.stats) {
                if let Some(v) = record.f64(name) {
                    stats.add(v);
                }
            }
        }
    }

    fn merge(acc: &mut Acc, other: Acc) {
        acc.records += other.records;
        if other.names.is_empty() {
            // The params' fields, in their order.
            if acc.stats.len() < other.stats.len() {
                acc.stats.resize(other.stats.len(), Stats::EMPTY);
            }
            for (stats, other) in acc.stats.iter_mut().zip(&other.stats) {
                stats.merge(other);
            }
        } else {
            for (name, stats) in other.names.iter().zip(&other.stats) {
                acc.seen(name).merge(stats);
            }
        }
    }

    fn result(acc: &Acc, window: &WindowInfo<'_>, ctx: &mut Context<Params>) -> Result<()> {
        let out = NAMES.with(|names| {
            let mut names = names.borrow_mut();
            let mut out = Record {
                key: window.key.into(),
                time: window.end - 1,
                fields: Vec::with_capacity(4 + 4 * acc.stats.len()),
            };
            let [start, end, count, update] = names.window();
            out.fields.extend([
                (start, window.start.into()),
                (end, window.end.into()),
                (count, (acc.records as i64).into()),
                (update, (window.firing > 0).into()),
            ]);
            for (i, (name, s)) in acc.fields(ctx.params()).enumerate() {
                if s.count == 0 {
                    continue;
                }
                let [sum, min, max, avg] = names.of(i, name).clone();
                out.fields.extend([
                    (sum, s.sum.into()),
                    (min, s.min.into()),
                    (max, s.max.into()),
                    (avg, (s.sum / s.count as f64).into()),
                ]);
            }
            out
        });
        ctx.emit(&out)
    }
}
