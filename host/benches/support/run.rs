//! Running `eddy run` from the benchmarks that drive brokers (MQTT, Kafka):
//! the command, its status, and plugin paths.

use std::path::Path;
use std::process::{Command, Stdio};

/// `eddy run p.toml` in `dir` with `pipeline` written there, its log in
/// `dir/eddy.log` (filter: `EDDY_BENCH_LOG`, else `info`).
pub(crate) fn eddy(dir: &Path, pipeline: &str) -> Command {
    std::fs::write(dir.join("p.toml"), pipeline).expect("pipeline");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eddy"));
    cmd.args(["run", "p.toml"])
        .current_dir(dir)
        .env("EDDY_STATE_DIR", dir.join("state"))
        .env(
            "EDDY_LOG",
            std::env::var("EDDY_BENCH_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("eddy.log")).expect("log"));
    cmd
}

/// `eddy status --json` of the run whose state is in `dir/state`.
pub(crate) fn status(dir: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["status", "--json"])
        .env("EDDY_STATE_DIR", dir.join("state"))
        .output()
        .expect("eddy status");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// A guest plugin's path, quoted for a pipeline file.
pub(crate) fn plugin(root: &Path, name: &str) -> String {
    format!(
        "{:?}",
        root.join(format!("target/plugins/{name}.wasm"))
            .display()
            .to_string()
    )
}
