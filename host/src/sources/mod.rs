//! Sources: the drivers a pipeline reads from.
//!
//! A `[sources.NAME]` table holds exactly one driver table (`sim`, `file`, …);
//! [`build`] is the one place that maps it to a driver. Device drivers live in
//! their own crates under `device-drivers/`, behind a Cargo feature so a
//! device build carries only the drivers it uses; the file source lives here.

pub mod file;
mod records;

pub use records::RecordsDriver;

use eddy_driver::Driver;
use toml::Spanned;

use crate::config::{ConfigError, LoadedPipeline, SourceConfig};

/// The driver a source table asks for.
pub fn build(
    pipeline: &LoadedPipeline,
    name: &str,
    config: &Spanned<SourceConfig>,
) -> Result<Box<dyn Driver>, ConfigError> {
    let source = config.get_ref();
    let mut drivers: Vec<Box<dyn Driver>> = Vec::new();
    #[cfg(feature = "sim")]
    if let Some(sim) = &source.sim {
        let driver = eddy_driver_sim::SimDriver::new(sim.get_ref())
            .map_err(|e| pipeline.error_at(sim.span().start, format!("source `{name}`: {e}")))?;
        drivers.push(Box::new(driver));
    }
    if let Some(file) = &source.file {
        let path = pipeline.resolve(&file.get_ref().path);
        let driver = file::FileDriver::open(file.get_ref(), &path)
            .map_err(|e| pipeline.error_at(file.span().start, format!("source `{name}`: {e}")))?;
        drivers.push(Box::new(driver));
    }
    let known = if cfg!(feature = "sim") {
        "sim, file"
    } else {
        "file"
    };
    match drivers.len() {
        1 => Ok(drivers.remove(0)),
        n => Err(pipeline.error_at(
            config.span().start,
            format!("source `{name}` has {n} driver tables; expected exactly one of: {known}"),
        )),
    }
}
