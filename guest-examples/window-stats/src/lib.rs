//! `window-stats`: count, sum, min, max and average per key and window.
//!
//! A `window` plugin: the pipeline says which windows (e.g. 30 s tumbling on
//! event time) and the host hands it each key's records when a window fires.
//! It emits one record per key and window, stamped at the window's last
//! millisecond, with `count`, `window_start`, `window_end`, `update` (whether
//! this firing replaces an earlier one) and, for every numeric field `f` it
//! is told to watch, `f_sum`, `f_min`, `f_max` and `f_avg`.
//!
//! Params: `fields`, the names of the fields to aggregate (default: every
//! numeric field of the window's first record).

use std::cell::RefCell;

use eddy_sdk::{Context, Names, Record, Result, WindowRef};
use serde::Deserialize;

/// The operator's params.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Fields to aggregate; empty means every numeric field.
    #[serde(default)]
    pub fields: Vec<String>,
}

/// Running statistics of one field.
#[derive(Debug, Clone, Copy)]
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

    fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

thread_local! {
    /// The output's field names, made once: a result allocates no name.
    static NAMES: RefCell<Names> = RefCell::default();
}

/// Aggregates one fired window.
#[eddy_sdk::window]
pub fn window_stats(window: &WindowRef<'_>, ctx: &mut Context<Params>) -> Result<()> {
    let Some(first) = window.records.first() else {
        return Ok(());
    };
    let fields: Vec<&str> = if ctx.params().fields.is_empty() {
        first
            .fields
            .iter()
            .filter(|(_, v)| v.as_f64().is_some())
            .map(|(n, _)| *n)
            .collect()
    } else {
        ctx.params().fields.iter().map(String::as_str).collect()
    };
    let mut stats = vec![Stats::EMPTY; fields.len()];
    for record in &window.records {
        for (name, s) in fields.iter().zip(stats.iter_mut()) {
            if let Some(v) = record.f64(name) {
                s.add(v);
            }
        }
    }
    let out = NAMES.with(|names| {
        let mut names = names.borrow_mut();
        let mut out = Record::new(window.key, window.end - 1)
            .with(names.get("window_start"), window.start)
            .with(names.get("window_end"), window.end)
            .with(names.get("count"), window.records.len() as i64)
            .with(names.get("update"), window.firing > 0);
        for (name, s) in fields.iter().zip(&stats) {
            if s.count == 0 {
                continue;
            }
            let [sum, min, max, avg] =
                ["_sum", "_min", "_max", "_avg"].map(|s| names.joined(name, s));
            out = out
                .with(sum, s.sum)
                .with(min, s.min)
                .with(max, s.max)
                .with(avg, s.sum / s.count as f64);
        }
        out
    });
    ctx.emit(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_sdk::{Value, native};

    #[test]
    fn aggregates_the_named_fields() {
        let records = [
            Record::new("cell-1", 1_000).with("t", 20.0).with("v", 13.0),
            Record::new("cell-1", 1_500).with("t", 30.0).with("v", 13.2),
        ];
        let window = WindowRef {
            key: "cell-1",
            start: 0,
            end: 2_000,
            firing: 0,
            records: records.iter().map(Record::as_ref).collect(),
        };
        let mut ctx = Context::new(
            Params {
                fields: vec!["t".into()],
            },
            1_999,
        );
        window_stats(&window, &mut ctx).unwrap();
        ctx.flush();
        let out = native::take_emitted();
        assert_eq!(out.len(), 1);
        let r = &out[0].1;
        assert_eq!(r.time, 1_999);
        assert_eq!(r.get("count"), Some(&Value::I64(2)));
        assert_eq!(r.get("t_avg"), Some(&Value::F64(25.0)));
        assert_eq!(r.get("t_min"), Some(&Value::F64(20.0)));
        assert_eq!(r.get("t_max"), Some(&Value::F64(30.0)));
        assert_eq!(r.get("v_avg"), None);
    }
}
