//! The release this eddy runs on a deployed device, as `deploy/eddy-start`
//! starts it: its id, and the boot counter it marks good once the
//! pipeline has run healthy for a while, so that the device keeps this
//! release after the next restart instead of rolling it back.

use std::path::PathBuf;
use std::time::Duration;

/// How long a release runs healthy before it is marked good, unless
/// `EDDY_GOOD_AFTER_MS` says otherwise.
const GOOD_AFTER: Duration = Duration::from_secs(30);

/// The release, from the environment `eddy-start` sets.
#[derive(Debug, Clone)]
pub(crate) struct Release {
    id: String,
    root: PathBuf,
}

impl Release {
    /// `EDDY_RELEASE` and `EDDY_RELEASE_ROOT`, when both are set.
    pub(crate) fn from_env() -> Option<Release> {
        let id = std::env::var("EDDY_RELEASE").ok()?;
        let root = std::env::var_os("EDDY_RELEASE_ROOT")?;
        Some(Release {
            id,
            root: root.into(),
        })
    }

    /// Its id (the name of its folder under `releases/`).
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// How long to run healthy before [`Release::mark_good`].
    pub(crate) fn good_after() -> Duration {
        std::env::var("EDDY_GOOD_AFTER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(GOOD_AFTER, Duration::from_millis)
    }

    /// Marks the release good in the boot counter (`ROOT/boot`, written
    /// whole and renamed over the old one), if the counter is about this
    /// release; false when it is about another.
    pub(crate) fn mark_good(&self) -> std::io::Result<bool> {
        let boot = self.root.join("boot");
        let text = std::fs::read_to_string(&boot).unwrap_or_default();
        if text.split_whitespace().next() != Some(self.id.as_str()) {
            return Ok(false);
        }
        let fresh = self.root.join(".boot.good");
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&fresh)?;
            writeln!(file, "{} 0 good", self.id)?;
            file.sync_all()?;
        }
        std::fs::rename(&fresh, &boot)?;
        Ok(true)
    }
}
