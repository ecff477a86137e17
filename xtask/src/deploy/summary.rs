//! The table a deploy ends with: each device, its release before and
//! after, its health, its time and what went wrong.

use std::fmt::Write;
use std::time::Duration;

use super::device::{Outcome, Verdict};

fn verdict(v: &Verdict) -> &'static str {
    match v {
        Verdict::Updated => "updated",
        Verdict::Unchanged => "unchanged",
        Verdict::RolledBack => "ROLLED BACK",
        Verdict::Failed => "FAILED",
        Verdict::Skipped => "skipped",
    }
}

/// One line, for a device's progress bar once it is done.
pub(crate) fn short(o: &Outcome) -> String {
    format!(
        "{} {} → {} ({:.1} s)",
        verdict(&o.verdict),
        o.old.as_deref().unwrap_or("none"),
        o.new,
        o.elapsed.as_secs_f64()
    )
}

/// The table, with the deploy's wall time; errors (with log lines) below.
pub(crate) fn table(outcomes: &[Outcome], elapsed: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<16} {:<30} {:<12} {:<28} {:>7}",
        "device", "release", "result", "health", "time"
    );
    for o in outcomes {
        let release = format!("{} → {}", o.old.as_deref().unwrap_or("none"), o.new);
        let health: String = o.health.chars().take(28).collect();
        let _ = writeln!(
            out,
            "{:<16} {:<30} {:<12} {:<28} {:>6.1}s",
            o.device,
            release,
            verdict(&o.verdict),
            health,
            o.elapsed.as_secs_f64()
        );
    }
    let ok = outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Updated | Verdict::Unchanged))
        .count();
    let _ = writeln!(
        out,
        "{ok} of {} devices run the new release; {:.1} s in all",
        outcomes.len(),
        elapsed.as_secs_f64()
    );
    for o in outcomes {
        if let Some(error) = &o.error {
            let _ = writeln!(out, "\n{}: {error}", o.device);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_each_device_its_releases_and_its_failure() {
        let outcome = |device: &str, verdict, error: Option<&str>| Outcome {
            device: device.into(),
            old: Some("r1".into()),
            new: "r2".into(),
            verdict,
            health: if error.is_some() {
                "source `ups` is retrying".into()
            } else {
                "healthy".into()
            },
            error: error.map(str::to_owned),
            elapsed: Duration::from_millis(4200),
        };
        let text = table(
            &[
                outcome("site-1", Verdict::Updated, None),
                outcome(
                    "site-2",
                    Verdict::RolledBack,
                    Some("release r2 not healthy\nlog line"),
                ),
            ],
            Duration::from_secs(9),
        );
        let line = |device: &str| {
            text.lines()
                .find(|l| l.starts_with(device))
                .unwrap()
                .to_owned()
        };
        assert!(line("site-1").contains("r1 → r2") && line("site-1").contains("updated"));
        assert!(line("site-2").contains("ROLLED BACK") && line("site-2").contains("4.2s"));
        assert!(text.contains("1 of 2 devices run the new release; 9.0 s in all"));
        assert!(text.contains("site-2: release r2 not healthy\nlog line"));
    }
}
