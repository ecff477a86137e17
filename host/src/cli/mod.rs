//! The `eddy` command line.
//!
//! Exit codes: 0 success, 1 failure, 2 a pipeline file or argument that is wrong.

mod bundle;
mod check;
mod plugin;
mod run;
mod state;
mod status;
mod twin;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::api::client::Client;
use crate::config::ConfigError;
use crate::dataflow::BuildError;

/// eddy: window and alert logic for edge gateways, as sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "eddy", version, about)]
pub struct Cli {
    /// The host's state store (checkpoints, ingest journal): one directory per
    /// host. Default: `$XDG_STATE_HOME/eddy`, or `~/.local/state/eddy`.
    #[arg(long, global = true, env = "EDDY_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The local API of a running eddy, for `status` and `plugin swap|reset`.
    /// Default: the one whose address `eddy run` wrote to the state directory.
    #[arg(long, global = true, env = "EDDY_API", value_name = "URL")]
    pub api: Option<String>,
    /// The API's bearer token. Default: `api.token` in the state directory.
    #[arg(
        long,
        global = true,
        env = "EDDY_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline until its sources end, a signal, or --duration.
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Stop after this long (e.g. `15s`, `2m`).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Overrides `[api] listen` (e.g. `127.0.0.1:0` for any free port).
        #[arg(long, env = "EDDY_API_LISTEN", value_name = "ADDRESS")]
        api_listen: Option<String>,
    },
    /// Show what the running pipeline is doing: sources, operators (state,
    /// quarantine, swaps, dead letters), sinks, memory.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a pipeline file: syntax, names, plugins and their params.
    Check {
        /// The pipeline file.
        pipeline: PathBuf,
    },
    /// Look into and try out plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// See, move and reset the checkpointed state of pipelines.
    #[command(subcommand)]
    State(state::StateCommand),
    /// The device twins a running eddy syncs: its local copies, which are
    /// there while the cloud link is down.
    #[command(subcommand)]
    Twin(twin::TwinCommand),
    /// Signing keys for plugin bundles.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// List the source and sink kinds this build of eddy has.
    Components {
        /// As JSON.
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// As a Markdown table (for the docs).
        #[arg(long)]
        markdown: bool,
    },
}

/// `eddy keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make an ed25519 key pair: NAME.key (secret) and NAME.pub (public).
    Gen {
        /// The keys' file name, without extension.
        name: String,
        /// Where to write them.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

/// `eddy plugin …`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Print a plugin's manifest and exports; for a bundle, also its signer and artifacts.
    Inspect {
        /// The plugin (`.wasm` or bundle).
        file: PathBuf,
    },
    /// Run a plugin over records from a file, with no devices; print what it emits.
    Test(plugin::TestArgs),
    /// Swap a running operator's plugin for another version, without
    /// stopping the pipeline or losing a record.
    Swap {
        /// The pipeline.
        pipeline: String,
        /// The operator.
        operator: String,
        /// The new plugin (`.wasm` or bundle).
        file: PathBuf,
        /// Start the new version with empty state (needed when its
        /// `state_version` differs).
        #[arg(long)]
        reset_state: bool,
    },
    /// Sign a plugin (`.wasm` or bundle) into a bundle that hosts with the
    /// matching public key in `[trust] keys` accept.
    Sign {
        /// The plugin.
        file: PathBuf,
        /// The secret key (`eddy keys gen`).
        #[arg(long)]
        key: PathBuf,
        /// The signed bundle. Default: the plugin's name with `.bundle`.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Compile a plugin ahead of time for devices (`x86_64-unknown-linux-gnu`,
    /// `aarch64-unknown-linux-gnu`); writes an unsigned bundle with the
    /// `.wasm` and one artifact per target.
    #[cfg(feature = "compiler")]
    Precompile {
        /// The plugin (`.wasm` or bundle).
        file: PathBuf,
        /// A target triple; repeat for several.
        #[arg(long, required = true)]
        target: Vec<String>,
        /// The bundle. Default: the plugin's name with `.bundle`.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Compile a `.wasm` read on stdin and write the compiled module on
    /// stdout: the child process eddy compiles plugins in.
    #[cfg(feature = "compiler")]
    #[command(hide = true)]
    CompileWorker {
        /// The address space the compiler may use.
        #[arg(long)]
        memory_limit_bytes: u64,
    },
    /// Lift an operator's quarantine: its plugin is started afresh.
    Reset {
        /// The pipeline.
        pipeline: String,
        /// The operator.
        operator: String,
    },
}

/// Parses the command line, runs the command, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "compiler")]
    if let Command::Plugin(PluginCommand::CompileWorker { memory_limit_bytes }) = cli.command {
        return crate::plugin::compile_worker(memory_limit_bytes);
    }
    // Plugins are compiled in child processes of this binary, bounded in
    // memory and time (see `plugin::compile`).
    if let Ok(exe) = std::env::current_exe() {
        crate::plugin::compile_in_child_processes(exe);
    }
    init_logging();
    ignore_file_size_signal();
    if !matches!(cli.command, Command::Run { .. }) {
        quiet_on_closed_pipe();
    }
    let state_dir = cli.state_dir.unwrap_or_else(default_state_dir);
    let client = || {
        Client::new(cli.api.clone(), cli.api_token.clone(), &state_dir).map_err(Failure::runtime)
    };
    let result = match cli.command {
        Command::Run {
            pipeline,
            duration,
            api_listen,
        } => run::run(&pipeline, duration, api_listen.as_deref(), &state_dir),
        Command::Status { json } => client().and_then(|c| status::status(&c, json)),
        Command::Plugin(PluginCommand::Swap {
            pipeline,
            operator,
            file,
            reset_state,
        }) => client().and_then(|c| status::swap(&c, &pipeline, &operator, &file, reset_state)),
        Command::Plugin(PluginCommand::Sign { file, key, output }) => {
            bundle::sign(&file, &key, output.as_deref())
        }
        #[cfg(feature = "compiler")]
        Command::Plugin(PluginCommand::Precompile {
            file,
            target,
            output,
        }) => bundle::precompile(&file, &target, output.as_deref()),
        Command::Keys(KeysCommand::Gen { name, dir }) => bundle::keys_gen(&dir, &name),
        Command::Plugin(PluginCommand::Reset { pipeline, operator }) => {
            client().and_then(|c| status::reset(&c, &pipeline, &operator))
        }
        Command::Check { pipeline } => check::check(&pipeline),
        Command::Plugin(PluginCommand::Inspect { file }) => plugin::inspect(&file),
        Command::Plugin(PluginCommand::Test(args)) => plugin::test(&args),
        #[cfg(feature = "compiler")]
        Command::Plugin(PluginCommand::CompileWorker { .. }) => Ok(()),
        Command::State(command) => state::state(command, &state_dir),
        Command::Twin(command) => client().and_then(|c| twin::twin(&c, command)),
        Command::Components { json, markdown } => components(json, markdown),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Prints the kinds of the registry.
fn components(json: bool, markdown: bool) -> Result<(), Failure> {
    use crate::registry::{SINK_KINDS, SOURCE_KINDS};
    if json {
        let all = serde_json::json!({ "sources": SOURCE_KINDS, "sinks": SINK_KINDS });
        println!("{all:#}");
        return Ok(());
    }
    if markdown {
        print!("{}", crate::registry::markdown());
        return Ok(());
    }
    for (section, kinds) in [("sources", SOURCE_KINDS), ("sinks", SINK_KINDS)] {
        println!("{section}");
        for kind in kinds {
            println!("  {:<12} {}", kind.name, kind.about);
        }
    }
    Ok(())
}

/// `$XDG_STATE_HOME/eddy`, or `~/.local/state/eddy`, or `./eddy-state`.
fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("eddy");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/eddy"),
        None => PathBuf::from("eddy-state"),
    }
}

/// Lets a command whose output is piped into a reader that stops early (such
/// as `head`) end quietly, as Unix tools do, instead of failing to print.
/// Not for `eddy run`, whose sinks report a closed pipe as an error and stop cleanly.
fn quiet_on_closed_pipe() {
    // SAFETY: restoring the default disposition of SIGPIPE has no
    // preconditions; it happens before any other thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A file that reaches the process's size limit (`ulimit -f`) fails the
/// write that went over (EFBIG), which the sink retries and reports, instead
/// of killing the process with SIGXFSZ.
fn ignore_file_size_signal() {
    // SAFETY: ignoring a signal has no preconditions; it happens before any
    // other thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDDY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// A command's failure: what to print and the exit code.
pub(crate) struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    /// Something went wrong at run time.
    pub(crate) fn runtime(message: impl ToString) -> Self {
        Failure {
            message: message.to_string(),
            code: 1,
        }
    }

    /// The user's input (a file, an argument) is wrong.
    pub(crate) fn usage(message: impl ToString) -> Self {
        Failure {
            message: message.to_string(),
            code: 2,
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::usage(e)
    }
}

impl From<BuildError> for Failure {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Config(e) => Failure::usage(e),
            e @ BuildError::Engine { .. } => Failure::runtime(e),
        }
    }
}
