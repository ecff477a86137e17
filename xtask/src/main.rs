//! `cargo xtask`: the project's automation, one module per task.
//!
//! - `guests`: build every guest example to `wasm32-unknown-unknown` and copy
//!   the plugins to `target/plugins/`.
//! - `demo`: build the guests and run `examples/ups-monitor.toml` for a while.
//! - `test`: install what the tests need, then check formatting and lints, and
//!   run every test, including an aarch64 build run under qemu-user.
//! - `bench`: the benchmarks (`target/bench/*.json`); `--vs-flink`: eddy and
//!   Apache Flink side by side on the same job.
//! - `build --target T [--no-compiler]`: a release build of the host for a target.
//! - `precompile --target T [--key K]`: every guest plugin compiled ahead of
//!   time for a target, as bundles in `target/plugins/T/`, signed with `K`.
//! - `test-kafka`: the Kafka tests against a real Kafka-protocol broker
//!   (tansu, built on first use: minutes).
//! - `soak`: resident memory over a long run with churning keys and state TTL.
//! - `fuzz`: the fuzz properties (tests named `fuzz_…`) for a given time.
//! - `docs`: the README's table of source and sink kinds, from the registry.
//! - `deploy --inventory F --plan`: what a deploy would send where (the
//!   shipping itself is not built yet).

#![warn(missing_docs, unreachable_pub)]

mod bench;
mod build;
mod demo;
mod deploy;
mod docs;
mod fuzz;
mod guests;
mod kafka;
mod precompile;
mod prerequisites;
mod report;
mod soak;
mod test;
mod vs_flink;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use xshell::Shell;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "eddy's build, test and bench tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the guest examples to wasm32 and collect them in target/plugins/.
    Guests,
    /// Build the guests and run the demo pipeline for a bounded time.
    Demo {
        /// How long to run.
        #[arg(long, default_value = "12s")]
        duration: String,
    },
    /// Install test prerequisites, then run formatting, lints and all tests.
    Test {
        /// Skip the aarch64 cross-build and qemu run.
        #[arg(long)]
        no_cross: bool,
    },
    /// Run the Kafka tests against a real Kafka-protocol broker (tansu,
    /// built on first use, which takes minutes).
    TestKafka,
    /// Run the benchmarks and write target/bench/*.json and BENCHMARKS.md.
    Bench {
        /// Only eddy against Apache Flink on the same job (installs Flink
        /// from PyPI and a JDK if missing).
        #[arg(long)]
        vs_flink: bool,
        /// Records in the generated file of the Flink comparison.
        #[arg(long, default_value_t = 10_000_000)]
        records: u64,
        /// Only write BENCHMARKS.md again from target/bench/*.json (after
        /// running single benchmarks with `cargo bench --bench NAME`).
        #[arg(long, conflicts_with = "vs_flink")]
        report: bool,
    },
    /// Run eddy for a long time with churning keys; check memory stays flat.
    Soak {
        /// How long, in minutes.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// Without state TTL, to see the growth it prevents.
        #[arg(long)]
        no_ttl: bool,
    },
    /// Run the fuzz properties (tests named `fuzz_…`) with fresh inputs for a while.
    Fuzz {
        /// How long, in minutes.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// Inputs per property in each pass.
        #[arg(long, default_value_t = 5000)]
        cases: u32,
    },
    /// Write the README's table of source and sink kinds from the registry.
    Docs,
    /// Deploy to the devices of an inventory: build eddy and precompile
    /// the plugins for each target, ship them over SSH in parallel, switch,
    /// check health, roll back the devices where the new release is not
    /// healthy; canary group first.
    Deploy {
        /// The inventory file.
        #[arg(long, default_value = "fleet.toml")]
        inventory: PathBuf,
        /// Only these devices (comma-separated names).
        #[arg(long, value_delimiter = ',', conflicts_with = "group")]
        devices: Vec<String>,
        /// Only the devices of this group.
        #[arg(long)]
        group: Option<String>,
        /// Print what would go where, and stop.
        #[arg(long)]
        plan: bool,
        /// Ship this eddy binary (with the compiler: plugins go as `.wasm`)
        /// instead of building one per target.
        #[arg(long)]
        eddy: Option<PathBuf>,
        /// Sign the precompiled plugins with this secret key (`eddy keys gen`).
        #[arg(long)]
        key: Option<PathBuf>,
        /// Only plugins: swap them into the running pipelines through each
        /// device's API, without a restart (eddy and the pipeline must be
        /// those the device runs).
        #[arg(long)]
        plugins_only: bool,
    },
    /// Release build of the host for a target.
    Build {
        /// `aarch64-unknown-linux-gnu` or `x86_64-unknown-linux-gnu`.
        #[arg(long)]
        target: build::Target,
        /// Leave Cranelift out: the host runs only precompiled plugins.
        #[arg(long)]
        no_compiler: bool,
    },
    /// Compile every guest plugin ahead of time for a target (bundles in target/plugins/TARGET/).
    Precompile {
        /// `aarch64-unknown-linux-gnu` or `x86_64-unknown-linux-gnu`.
        #[arg(long)]
        target: build::Target,
        /// Sign the bundles with this secret key (`eddy keys gen`).
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    match cli.task {
        Task::Guests => guests::run(&sh).map(drop),
        Task::Demo { duration } => demo::run(&sh, &duration),
        Task::Test { no_cross } => test::run(&sh, !no_cross),
        Task::Bench {
            vs_flink,
            records,
            report,
        } => {
            if report {
                report::write(&sh)
            } else if vs_flink {
                vs_flink::run(&sh, records)
            } else {
                bench::run(&sh)
            }
        }
        Task::Build {
            target,
            no_compiler,
        } => build::run(&sh, target, !no_compiler).map(drop),
        Task::Precompile { target, key } => precompile::run(&sh, target, key.as_deref()).map(drop),
        Task::Soak { minutes, no_ttl } => soak::run(&sh, minutes, !no_ttl),
        Task::Deploy {
            inventory,
            devices,
            group,
            plan,
            eddy,
            key,
            plugins_only,
        } => deploy::run(
            &sh,
            &deploy::Options {
                inventory: absolute(inventory)?,
                devices,
                group,
                plan,
                eddy: eddy.map(absolute).transpose()?,
                key: key.map(absolute).transpose()?,
                plugins_only,
            },
        ),
        Task::Fuzz { minutes, cases } => fuzz::run(&sh, minutes, cases),
        Task::Docs => docs::run(&sh),
        Task::TestKafka => kafka::run(&sh),
    }
}

/// `path` from the directory xtask was started in (it works from the
/// workspace root).
fn absolute(path: PathBuf) -> anyhow::Result<PathBuf> {
    Ok(std::path::absolute(path)?)
}

/// The workspace root.
fn project_root() -> PathBuf {
    let manifest =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    PathBuf::from(manifest)
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The cargo that runs us.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}
