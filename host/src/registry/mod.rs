//! The one place that lists every source and sink kind this build has.
//!
//! A kind is a folder (a crate under `device-drivers/`, or a folder of
//! `host/src/sinks/` for the built-in sinks), a Cargo feature, and one line
//! below. The pipeline file's loader, `eddy check`, `eddy components`, the
//! error messages that list what is known, and the docs all read this list.

#[macro_use]
mod macros;

use eddy_driver::Kind;

/// A kind, as `eddy components` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct KindInfo {
    /// The name of its sub-table: `[sources.NAME.<name>]`, `[sinks.NAME.<name>]`.
    pub name: &'static str,
    /// What it is, in one line.
    pub about: &'static str,
}

impl KindInfo {
    /// The name and line of a kind.
    pub const fn of<K: Kind>() -> KindInfo {
        KindInfo {
            name: K::NAME,
            about: K::ABOUT,
        }
    }
}

kinds! {
    sources: [
        #[cfg(feature = "sim")] eddy_driver_sim::SimConfig,
        #[cfg(feature = "file")] eddy_driver_file::FileSourceConfig,
        #[cfg(feature = "tcp")] eddy_driver_tcp::TcpSourceConfig,
    ]
    sinks: [
        crate::sinks::stdout::StdoutConfig,
        crate::sinks::null::NullConfig,
        crate::sinks::dead_letter::DeadLetterConfig,
        #[cfg(feature = "file")] eddy_driver_file::FileSinkConfig,
        #[cfg(feature = "tcp")] eddy_driver_tcp::TcpSinkConfig,
    ]
}

/// The names of `kinds`, for messages: `` `sim`, `file` ``.
pub fn names(kinds: &[KindInfo]) -> String {
    kinds
        .iter()
        .map(|k| format!("`{}`", k.name))
        .collect::<Vec<_>>()
        .join(", ")
}
