//! Sources built into the host. Source kinds a pipeline file names are
//! crates under `device-drivers/`, listed in the [registry](crate::registry);
//! what is here serves the host itself: [`RecordsDriver`] replays records
//! already in memory (`eddy plugin test`, benchmarks).

mod records;

pub use records::RecordsDriver;
