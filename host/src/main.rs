//! The `eddy` command.

fn main() -> std::process::ExitCode {
    eddy_host::cli::main()
}
