//! How a component's table in a pipeline file becomes a running source:
//! validated first, without touching the outside world; opened when the
//! pipeline runs.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Driver, DriverError, Invalid, Services, SourceTask};

/// A component kind: the name of its sub-table in a pipeline file
/// (`[sources.NAME.file]`, `[sinks.NAME.tcp]`) and one line about it. The
/// host's registry lists kinds by these.
pub trait Kind {
    /// The sub-table's name.
    const NAME: &'static str;
    /// What it is, in one line, for `eddy components` and the docs.
    const ABOUT: &'static str;
}

/// What a component is told when it is validated and opened.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The pipeline's name.
    pub pipeline: &'a str,
    /// The component's name (the `NAME` of `[sources.NAME]`).
    pub name: &'a str,
    /// The folder relative paths are relative to: the pipeline file's.
    pub base_dir: &'a Path,
    /// What the runtime shares with components (empty while validating).
    pub services: &'a Services,
    /// The source's watermark settings (the default for sinks), for a
    /// source that keeps its own watermarks (see [`crate::Driver::watermark`]).
    pub watermarks: Watermarks,
}

/// A source's watermark settings, from its table in the pipeline file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermarks {
    /// `bounded_out_of_orderness_ms`: how far out of order records may come.
    pub bounded_out_of_orderness_ms: u64,
    /// `idle_timeout_ms`: after this long without records an input (the
    /// source, or a part of it such as a Kafka partition) is idle and holds
    /// no watermark back.
    pub idle_timeout_ms: Option<u64>,
}

impl Context<'_> {
    /// A path from the pipeline file, relative to the file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_relative() {
            self.base_dir.join(path)
        } else {
            path.to_owned()
        }
    }
}

/// The settings of a source kind: what its sub-table deserializes into.
///
/// `eddy check` calls [`SourceConfig::validate`] only: it must not connect
/// to anything, open devices or create files. `eddy run` validates, then
/// [`SourceConfig::open`]s.
pub trait SourceConfig: fmt::Debug + Send + Sync + 'static {
    /// Checks the settings without touching the outside world.
    fn validate(&self, cx: &Context<'_>) -> Result<(), Invalid>;

    /// Makes the source. A polled driver may open local files here; a task
    /// connects when the host starts it, so an unreachable peer is not an
    /// error here. A [`DriverError::Config`] error stops `eddy run`.
    fn open(&self, cx: &Context<'_>) -> Result<Source, DriverError>;

    /// Whether the source can go back to an earlier position (a file, a
    /// Kafka partition), so that it needs no ingest journal.
    fn rewindable(&self) -> bool {
        false
    }
}

/// An opened source.
pub enum Source {
    /// Polled on the pipeline thread; it answers at once.
    Polled(Box<dyn Driver>),
    /// Does its I/O on the async runtime; the host starts and supervises
    /// it, and polls its records from a bounded channel.
    Task(Box<dyn SourceTask>),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Polled(_) => "Source::Polled",
            Source::Task(_) => "Source::Task",
        })
    }
}
