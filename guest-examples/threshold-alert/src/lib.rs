//! `threshold-alert`: raise an alert when a value breaches a threshold in N
//! consecutive windows, and clear it with hysteresis.
//!
//! A `process` plugin that reads window results (for example from
//! `window-stats`). Per key it keeps, in keyed state, how many consecutive
//! results breached `threshold` and whether an alert is active. When
//! `consecutive` results in a row are above `threshold`, it emits an alert
//! (`state = "raised"`) on the main output. An active alert is cleared only
//! once a result falls below `clear_below` (hysteresis: values between the two
//! neither raise nor clear); the clearance goes to the side output `cleared`.
//!
//! Params: `field` (the field to watch, e.g. `temperature_max`), `threshold`,
//! `consecutive` (default 2), `clear_below` (default `threshold`).

use eddy_sdk::{Context, Record, RecordRef, Result};
use serde::{Deserialize, Serialize};

/// The operator's params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The field to watch.
    pub field: String,
    /// A value above this is a breach.
    pub threshold: f64,
    /// How many consecutive breaching results raise an alert.
    #[serde(default = "default_consecutive")]
    pub consecutive: u32,
    /// An active alert clears once a value falls below this; defaults to `threshold`.
    pub clear_below: Option<f64>,
}

fn default_consecutive() -> u32 {
    2
}

/// What the plugin remembers per key.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Alert {
    /// Consecutive breaching results so far.
    breaches: u32,
    /// Whether an alert is raised and not yet cleared.
    active: bool,
}

/// Judges one window result.
#[eddy_sdk::process(state = ["alert"], side_outputs = ["cleared"])]
pub fn threshold_alert(record: &RecordRef<'_>, ctx: &mut Context<Params>) -> Result<()> {
    let params = ctx.params();
    let Some(value) = record.f64(&params.field) else {
        return Ok(());
    };
    let (threshold, consecutive) = (params.threshold, params.consecutive);
    let clear_below = params.clear_below.unwrap_or(threshold);
    let state = ctx.state::<Alert>("alert");
    let mut alert = state.get(record.key)?.unwrap_or_default();

    let event = if value > threshold {
        alert.breaches += 1;
        (!alert.active && alert.breaches >= consecutive).then(|| {
            alert.active = true;
            ("", "raised")
        })
    } else {
        alert.breaches = 0;
        (alert.active && value < clear_below).then(|| {
            alert.active = false;
            ("cleared", "cleared")
        })
    };
    state.put(record.key, &alert)?;

    if let Some((output, what)) = event {
        let field = ctx.params().field.clone();
        ctx.emit_to(
            output,
            &Record::new(record.key, record.time)
                .with("state", what)
                .with("field", field.as_str())
                .with("value", value)
                .with("threshold", threshold)
                .with("windows", i64::from(alert.breaches)),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_sdk::{Value, native};

    fn run(values: &[f64]) -> Vec<(String, Record)> {
        let mut ctx = Context::new(
            Params {
                field: "t_max".into(),
                threshold: 45.0,
                consecutive: 2,
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
    }

    #[test]
    fn one_breach_is_not_an_alert() {
        assert!(run(&[50.0, 30.0, 50.0, 30.0]).is_empty());
    }

    #[test]
    fn two_consecutive_breaches_raise_once_and_hysteresis_clears() {
        let out = run(&[46.0, 47.0, 48.0, 42.0, 44.0, 39.0]);
        let states: Vec<(&str, i64)> = out
            .iter()
            .map(|(o, r)| {
                let Some(Value::Str(s)) = r.get("state") else {
                    panic!("no state in {r:?}")
                };
                assert_eq!(o, if &**s == "raised" { "" } else { "cleared" });
                (
                    if &**s == "raised" {
                        "raised"
                    } else {
                        "cleared"
                    },
                    r.time,
                )
            })
            .collect();
        // Raised at the second breach (t = 1000); 42 and 44 are inside the band; 39 clears.
        assert_eq!(states, [("raised", 1000), ("cleared", 5000)]);
    }
}
