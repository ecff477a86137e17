//! `window-stats-incremental`: `window-stats` as an incremental aggregate.
//!
//! The same results as `window-stats` (count, and per field sum, min, max and
//! average, per key and window), written as Flink's `AggregateFunction`: the
//! host keeps one small accumulator per key and window instead of the
//! window's records, and merges accumulators when sessions merge.
//!
//! Params: `fields`, the fields to aggregate (default: every numeric field,
//! in the order they are first seen).

use eddy_sdk::{Aggregate, Context, Record, RecordRef, Result, WindowInfo};
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
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stats {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn new() -> Self {
        Stats {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn merge(&mut self, other: &Stats) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// One window's accumulator.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Acc {
    records: u64,
    fields: Vec<(String, Stats)>,
}

impl Acc {
    fn field(&mut self, name: &str) -> &mut Stats {
        let i = match self.fields.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.fields.push((name.to_owned(), Stats::new()));
                self.fields.len() - 1
            }
        };
        &mut self.fields[i].1
    }
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
                    acc.field(name).add(v);
                }
            }
        } else {
            for name in &params.fields {
                let v = record.f64(name);
                let stats = acc.field(name);
                if let Some(v) = v {
                    stats.add(v);
                }
            }
        }
    }

    fn merge(acc: &mut Acc, other: Acc) {
        acc.records += other.records;
        for (name, stats) in &other.fields {
            acc.field(name).merge(stats);
        }
    }

    fn result(acc: &Acc, window: &WindowInfo<'_>, ctx: &mut Context<Params>) -> Result<()> {
        let mut out = Record::new(window.key, window.end - 1)
            .with("window_start", window.start)
            .with("window_end", window.end)
            .with("count", acc.records as i64)
            .with("update", window.firing > 0);
        for (name, s) in &acc.fields {
            if s.count == 0 {
                continue;
            }
            out = out
                .with(format!("{name}_sum"), s.sum)
                .with(format!("{name}_min"), s.min)
                .with(format!("{name}_max"), s.max)
                .with(format!("{name}_avg"), s.sum / s.count as f64);
        }
        ctx.emit(&out)
    }
}
