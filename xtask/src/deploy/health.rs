//! Whether a device runs a release well, judged from what `eddy status
//! --json` printed there.

use serde_json::Value;

/// The verdict on one look at a device.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Health {
    /// Running `release`, every operator in service, every source
    /// connected (or ended).
    Healthy,
    /// Not (yet): why.
    Unhealthy(String),
}

/// Judges `status`, the JSON `eddy status --json` printed (`None`: the
/// local API did not answer), against the release that should run.
pub(crate) fn judge(status: Option<&str>, release: &str) -> Health {
    let Some(text) = status else {
        return Health::Unhealthy("the local API does not answer".into());
    };
    let status: Value = match serde_json::from_str(text) {
        Ok(status) => status,
        Err(e) => return Health::Unhealthy(format!("eddy status printed no JSON: {e}")),
    };
    let running = status["release"].as_str().unwrap_or("none");
    if running != release {
        return Health::Unhealthy(format!("it runs release {running}, not {release}"));
    }
    let list = |name: &str| status[name].as_array().cloned().unwrap_or_default();
    for operator in list("operators") {
        if let Some(why) = operator["quarantined"].as_str() {
            return Health::Unhealthy(format!(
                "operator `{}` is quarantined: {why}",
                operator["name"].as_str().unwrap_or("?")
            ));
        }
    }
    for source in list("sources") {
        let state = source["state"].as_str().unwrap_or("?");
        if !matches!(state, "up" | "ended") {
            let error = source["last_error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Health::Unhealthy(format!(
                "source `{}` is {state}{error}",
                source["name"].as_str().unwrap_or("?")
            ));
        }
    }
    Health::Healthy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(release: &str, quarantined: Option<&str>, source_state: &str) -> String {
        serde_json::json!({
            "pipeline": "site",
            "release": release,
            "sources": [{ "name": "ups", "state": source_state, "last_error": "refused" }],
            "operators": [{ "name": "stats", "quarantined": quarantined }],
            "sinks": [],
        })
        .to_string()
    }

    #[test]
    fn healthy_means_the_release_runs_with_every_operator_and_source() {
        assert_eq!(
            judge(Some(&status("r2", None, "up")), "r2"),
            Health::Healthy
        );
        assert_eq!(
            judge(Some(&status("r2", None, "ended")), "r2"),
            Health::Healthy
        );
        let why = |h: Health| match h {
            Health::Unhealthy(why) => why,
            Health::Healthy => panic!("healthy"),
        };
        assert!(why(judge(None, "r2")).contains("does not answer"));
        assert!(why(judge(Some("oops"), "r2")).contains("no JSON"));
        assert!(why(judge(Some(&status("r1", None, "up")), "r2")).contains("runs release r1"));
        assert!(
            why(judge(Some(&status("r2", Some("trap"), "up")), "r2"))
                .contains("`stats` is quarantined: trap")
        );
        assert_eq!(
            why(judge(Some(&status("r2", None, "retrying")), "r2")),
            "source `ups` is retrying: refused"
        );
    }
}
