//! Helpers: the binary, the plugins, scratch folders and output files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// The `eddy` binary under test.
pub(crate) fn eddy() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eddy"));
    cmd.env("EDDY_LOG", "warn");
    // Tests run in parallel: each API on a free port.
    cmd.env("EDDY_API_LISTEN", "127.0.0.1:0");
    cmd
}

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_owned()
}

/// A built guest plugin, e.g. `window_stats`.
pub(crate) fn plugin(name: &str) -> PathBuf {
    let path = root().join("target/plugins").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask guests` (cargo xtask test does)",
        path.display()
    );
    path
}

/// Runs eddy with arguments, returning its output.
pub(crate) fn run(args: &[&str], dir: &Path) -> Output {
    eddy()
        .args(args)
        .current_dir(dir)
        .env("EDDY_STATE_DIR", dir.join("state"))
        .output()
        .expect("eddy starts")
}

/// Like [`run`], with info-level logs on standard error (what was restored).
pub(crate) fn run_logged(args: &[&str], dir: &Path) -> Output {
    eddy()
        .args(args)
        .current_dir(dir)
        .env("EDDY_STATE_DIR", dir.join("state"))
        .env("EDDY_LOG", "info")
        .output()
        .expect("eddy starts")
}

/// Writes `text` as `p.toml` in a fresh folder and runs it to the end with
/// `eddy run`, which must succeed; returns the folder with what it wrote.
pub(crate) fn run_in_folder(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let out = run(&["run", "p.toml"], dir.path());
    assert!(out.status.success(), "eddy failed: {}", stderr(&out));
    dir
}

/// Standard error as text.
pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Standard output as text.
pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The JSON lines of a file (none if it does not exist).
pub(crate) fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    lines(&text)
}

/// The JSON lines of a text.
pub(crate) fn lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// A TOML string literal for a path.
pub(crate) fn toml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// Signs `input` with the secret key `key` into `dir/NAME.bundle`, in `dir`; must succeed.
pub(crate) fn sign(dir: &Path, input: &Path, key: &str, name: &str) -> PathBuf {
    let output = dir.join(format!("{name}.bundle"));
    let out = run(
        &[
            "plugin",
            "sign",
            input.to_str().unwrap(),
            "--key",
            key,
            "--output",
            output.to_str().unwrap(),
        ],
        dir,
    );
    assert!(out.status.success(), "eddy plugin sign: {}", stderr(&out));
    output
}

/// Compiles a WebAssembly text module into `dir/name`.
pub(crate) fn write_wasm(dir: &Path, name: &str, wat: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    path
}

/// `eddy run p.toml` in the background (log in `eddy.log`), once its API is up.
pub(crate) fn start(dir: &Path) -> Child {
    let _ = std::fs::remove_file(dir.join("eddy.log"));
    let mut run = Running::spawn(dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("state/api.json").exists() {
        assert!(Instant::now() < deadline, "the API never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    run.0.take().expect("just spawned")
}

/// The last lines of the log of a background `eddy run` (see [`start`]),
/// for a failed assertion to show what the server saw.
pub(crate) fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("eddy.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `eddy status --json` of the running pipeline.
pub(crate) fn status(dir: &Path) -> serde_json::Value {
    let out = run(&["status", "--json"], dir);
    assert!(out.status.success(), "status: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// `eddy status --json` of the eddy whose state directory is
/// `dir/state`; null while none answers (not started yet, stopping).
pub(crate) fn try_status(dir: &Path) -> serde_json::Value {
    eddy()
        .args(["status", "--json"])
        .env("EDDY_STATE_DIR", dir.join("state"))
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or_default()
}

/// Waits until `check` holds, for up to `seconds`; `what` explains a
/// failure when it does not.
pub(crate) fn eventually(seconds: u64, what: impl Fn() -> String, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "{}", what());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `GET /metrics` of the running eddy whose state directory is `dir/state`.
pub(crate) fn metrics(dir: &Path) -> String {
    let endpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state/api.json")).unwrap()).unwrap();
    let token = std::fs::read_to_string(dir.join("state/api.token")).unwrap();
    ureq::get(format!("{}/metrics", endpoint["url"].as_str().unwrap()))
        .header("Authorization", format!("Bearer {}", token.trim()))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap()
}

/// One operator of a status.
pub(crate) fn operator<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap()
}

/// Waits for a background `eddy run` to end; it must succeed.
pub(crate) fn finish(mut child: Child, dir: &Path) {
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(dir.join("eddy.log")).unwrap_or_default();
    assert!(status.success(), "eddy failed: {log}");
}

/// A running eddy (see [`start`]): [`Running::stop`] sends SIGTERM and
/// checks it ends well; dropped without that (a failed assertion), it is
/// killed, so a failing test leaves none behind.
pub(crate) struct Running(pub(crate) Option<std::process::Child>);

impl Running {
    /// `eddy run p.toml` in `dir` in the background, its log appended to
    /// `dir/eddy.log` (so that the logs of runs killed and started again
    /// stay together); returns at once.
    pub(crate) fn spawn(dir: &Path) -> Running {
        let _ = std::fs::remove_file(dir.join("state/api.json"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("eddy.log"))
            .unwrap();
        let child = eddy()
            .args(["run", "p.toml"])
            .current_dir(dir)
            .env("EDDY_STATE_DIR", dir.join("state"))
            // EDDY_TEST_LOG sets eddy's log filter when a test is debugged.
            .env(
                "EDDY_LOG",
                std::env::var("EDDY_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("eddy starts");
        Running(Some(child))
    }

    /// SIGKILL, and the end of the process.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then the end of the run, which must succeed.
    pub(crate) fn stop(mut self, dir: &std::path::Path) {
        if let Some(child) = self.0.take() {
            // SAFETY: kill(2) with a pid this test started.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            finish(child, dir);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free TCP port on 127.0.0.1 (nothing listens on it yet), below the
/// kernel's ephemeral range (32768 and up): a port the kernel hands out
/// can be taken by any outgoing connection while a test has stopped its
/// server to restart it on that port. Tests run as processes of their own,
/// so where each starts looking is spread by its pid and the clock.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    const LOW: u64 = 10_000;
    const SPAN: u64 = 22_000;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let seed = u64::from(std::process::id()).wrapping_mul(2_654_435_761) ^ nanos;
    for _ in 0..SPAN {
        let port = (LOW + (seed + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN)
}

/// A small seeded generator (xorshift), for kill times and the like.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// A number below `n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
