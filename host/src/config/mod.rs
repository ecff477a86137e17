//! The pipeline file: a TOML document of sources, operators and sinks.
//!
//! ```toml
//! [pipeline]
//! name = "ups-monitor"
//!
//! [sources.ups]
//! bounded_out_of_orderness_ms = 2000
//! [sources.ups.sim]            # the driver, and its settings
//! seed = 42
//!
//! [operators.stats]
//! inputs = ["ups"]
//! plugin = "../target/plugins/window_stats.wasm"
//! window.tumbling = { size_ms = 30000 }
//!
//! [sinks.console]
//! inputs = ["stats"]
//! [sinks.console.stdout]        # the sink kind, and its settings
//! ```
//!
//! Sources and sinks name their kind by a sub-table, whose settings the
//! kind's own type reads ([`crate::registry`] lists the kinds). Every table
//! rejects keys it does not know. Relative paths are relative to
//! the pipeline file's folder. An operator's or sink's `inputs` name sources
//! and operators; `"op.name"` names the side output `name` of operator `op`,
//! and `"op.late"` its late records. Errors name file, line and column.

mod bounded;
mod component;
mod error;
#[cfg(test)]
mod fuzz;
mod pipeline;

pub use component::{
    BufferConfig, Component, OutboxConfig, RetryConfig, SinkTable, SourceTable, WhenFull,
};
pub use error::{ConfigError, Location};
pub use pipeline::{
    ApiConfig, CheckpointConfig, CountConfig, Grants, JournalMode, OperatorConfig, PipelineConfig,
    PipelineSection, PluginDefaults, SessionConfig, SlidingConfig, StateVersionMismatch,
    TrustConfig, TumblingConfig, WindowConfig, WindowTime,
};

use std::path::{Path, PathBuf};

/// A pipeline file, parsed, with what is needed to point at its text.
pub struct LoadedPipeline {
    /// The parsed configuration.
    pub config: PipelineConfig,
    /// The file it came from.
    pub path: PathBuf,
    /// Its text, to turn byte spans into lines and columns.
    pub text: String,
}

/// Reads and parses a pipeline file.
pub fn load(path: &Path) -> Result<LoadedPipeline, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, text)
}

/// Parses pipeline text that claims to come from `path`.
pub fn parse(path: &Path, text: String) -> Result<LoadedPipeline, ConfigError> {
    match toml::from_str::<PipelineConfig>(&text) {
        Ok(config) => Ok(LoadedPipeline {
            config,
            path: path.to_owned(),
            text,
        }),
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            Err(ConfigError::Invalid {
                location: Location::of(path, &text, offset),
                message: e.message().trim_end().to_owned(),
            })
        }
    }
}

impl LoadedPipeline {
    /// An error about the text at byte `offset`.
    pub fn error_at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            location: Location::of(&self.path, &self.text, offset),
            message: message.into(),
        }
    }

    /// The folder paths in the file are relative to.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// A path from the file, made relative to the file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    /// The pipeline's name: as given, or the file's stem.
    pub fn name(&self) -> String {
        self.config.pipeline.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map_or_else(|| "pipeline".into(), |s| s.to_string_lossy().into_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("p.toml"), text.to_owned())
            .err()
            .unwrap()
            .to_string()
    }

    #[test]
    fn unknown_keys_are_errors_with_their_place() {
        let e = err("[pipeline]\nname = \"x\"\ncolour = 3\n");
        assert!(e.starts_with("p.toml:3:1: unknown field `colour`"), "{e}");
    }

    #[test]
    fn a_wrong_type_says_what_was_expected() {
        let e = err("[operators.a]\ninputs = [\"s\"]\nplugin = 3\n");
        assert!(e.starts_with("p.toml:3:10:"), "{e}");
        assert!(e.contains("expected"), "{e}");
    }

    #[test]
    fn limits_beyond_what_a_plugin_can_have_are_refused_where_written() {
        let e = err("[plugins]\nmemory_limit_bytes = 5_000_000_000\n");
        assert!(
            e.starts_with(
                "p.toml:2:22: 5000000000 is over the most a plugin's memory can be, 4294967296"
            ),
            "{e}"
        );
        let e = err(
            "[operators.a]\ninputs = [\"s\"]\nplugin = \"a.wasm\"\ntable_limit_elements = 10_000_001\n",
        );
        assert!(
            e.starts_with("p.toml:4:24: 10000001 is over the most"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_driver_setting_points_into_the_driver_table() {
        let e = err("[sources.s.sim]\nseed = 1\nspeeed = 2\n");
        assert!(e.starts_with("p.toml:3:1: unknown field `speeed`"), "{e}");
    }
}
