//! `threshold-alert`: raise an alert when a value breaches a threshold in two
//! consecutive window results, and clear it with hysteresis.
//!
//! A `process` plugin that reads window results (for example from
//! `window-stats`). The rule is the seeds' Flink CEP pattern
//! `begin("first").where(breach).next("second").where(breach).within(T)`,
//! written with [`eddy_sdk::pattern`]: a result above `threshold` followed by
//! the key's very next result also above it, less than `within_ms` later,
//! raises an alert (`state = "raised"`) on the main output, once. An active
//! alert is cleared only when a result falls below `clear_below` (values
//! between the two neither raise nor clear); the clearance goes to the side
//! output `cleared`. Both are kept per key in keyed state.
//!
//! Params: `field` (e.g. `temperature_max`), `threshold`, `within_ms`
//! (default 2000, for 1 s windows), `clear_below` (default `threshold`).
//! They may change while it runs, from the device twin's desired state
//! (`twin`): `check_params` refuses a `clear_below` above `threshold` or a
//! `within_ms` that is not positive, and the old params then stay.

use eddy_sdk::pattern::{Pattern, PatternEvent};
use eddy_sdk::{Context, Record, RecordRef, Result, TimerRef};
use serde::{Deserialize, Serialize};

/// The operator's params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The field to watch.
    pub field: String,
    /// A value above this is a breach.
    pub threshold: f64,
    /// The second breach must come less than this after the first, in ms.
    #[serde(default = "default_within_ms")]
    pub within_ms: i64,
    /// An active alert clears once a value falls below this; defaults to `threshold`.
    pub clear_below: Option<f64>,
}

fn default_within_ms() -> i64 {
    2000
}

/// Whether an alert is raised and not yet cleared, per key.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Alert {
    active: bool,
}

/// "A breach, then the next result a breach too, within `within_ms`".
fn two_breaches(
    params: &Params,
) -> Pattern<impl Fn(&RecordRef<'_>) -> bool + use<>, impl Fn(&RecordRef<'_>) -> bool + use<>> {
    let (field, threshold) = (params.field.clone(), params.threshold);
    let breach = move |r: &RecordRef<'_>| r.f64(&field).is_some_and(|v| v > threshold);
    Pattern::begin("breach", breach.clone())
        .next(breach)
        .within(params.within_ms)
}

/// Params that cannot work: the alert would clear above where it raises,
/// or no second breach could come in time.
pub fn check_params(params: &Params) -> Result<()> {
    if !params.threshold.is_finite() {
        return Err(eddy_sdk::Error::msg("threshold must be a finite number"));
    }
    if let Some(clear) = params.clear_below
        && clear > params.threshold
    {
        return Err(eddy_sdk::Error::msg(format!(
            "clear_below ({clear}) must not be above threshold ({})",
            params.threshold
        )));
    }
    if params.within_ms <= 0 {
        return Err(eddy_sdk::Error::msg("within_ms must be positive"));
    }
    Ok(())
}

/// Judges one window result.
#[eddy_sdk::process(
    state = ["alert", "breach"],
    side_outputs = ["cleared"],
    timers,
    twin,
    validate = check_params
)]
pub fn threshold_alert(record: &RecordRef<'_>, ctx: &mut Context<Params>) -> Result<()> {
    let Some(value) = record.f64(&ctx.params().field) else {
        return Ok(());
    };
    let pattern = two_breaches(ctx.params());
    let events = pattern.advance(record, ctx)?;
    let state = ctx.state::<Alert>("alert");
    let mut alert = state.get(record.key)?.unwrap_or_default();
    let threshold = ctx.params().threshold;
    let clear_below = ctx.params().clear_below.unwrap_or(threshold);
    let field = ctx.params().field.clone();
    let report = |what: &str, first_time: Option<i64>| {
        let mut r = Record::new(record.key, record.time)
            .with("state", what)
            .with("field", field.as_str())
            .with("value", value)
            .with("threshold", threshold);
        if let Some(t) = first_time {
            r = r.with("first_time", t);
        }
        r
    };
    for event in events {
        if let PatternEvent::Matched { first, .. } = event
            && !alert.active
        {
            alert.active = true;
            ctx.emit(&report("raised", Some(first.time)))?;
        }
    }
    if alert.active && value < clear_below {
        alert.active = false;
        ctx.emit_to("cleared", &report("cleared", None))?;
    }
    state.put(record.key, &alert)
}

/// Lets partial matches of a key that went quiet time out.
#[eddy_sdk::on_timer]
pub fn expire(timer: &TimerRef<'_>, ctx: &mut Context<Params>) -> Result<()> {
    two_breaches(ctx.params()).on_timer(timer, ctx).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_sdk::{Value, native};

    fn run(values: &[f64]) -> Vec<(String, String, i64)> {
        let mut ctx = Context::new(
            Params {
                field: "t_max".into(),
                threshold: 45.0,
                within_ms: 2000,
                clear_below: Some(40.0),
            },
            0,
        );
        for (i, v) in values.iter().enumerate() {
            let r = Record::new("cell-3", i as i64 * 1000).with("t_max", *v);
            threshold_alert(&r.as_ref(), &mut ctx).unwrap();
        }
        ctx.flush();
        native::take_emitted()
            .into_iter()
            .map(|(output, r)| {
                let Some(Value::Str(s)) = r.get("state") else {
                    panic!("no state in {r:?}")
                };
                (output, s.to_string(), r.time)
            })
            .collect()
    }

    #[test]
    fn one_breach_is_not_an_alert() {
        assert!(run(&[50.0, 30.0, 50.0, 30.0]).is_empty());
    }

    #[test]
    fn two_consecutive_breaches_raise_once_and_hysteresis_clears() {
        // 46 starts a match, 47 completes it (raised at 1000); 48 matches again
        // but the alert is already active; 42 and 44 are inside the band; 39 clears.
        assert_eq!(
            run(&[46.0, 47.0, 48.0, 42.0, 44.0, 39.0]),
            [
                (String::new(), "raised".into(), 1000),
                ("cleared".into(), "cleared".into(), 5000)
            ]
        );
    }
}
