//! Releases on a device, as `deploy/eddy-start` runs them: versioned
//! folders, a `current` link, the state outside the releases, and a boot
//! counter that takes a release that never becomes healthy back to the
//! previous one by the device itself.
//!
//! This machine does not run systemd as PID 1, so the service manager is a
//! test supervisor that starts `eddy-start` again whenever it exits, as
//! `Restart=always` does; the unit file itself is checked with
//! `systemd-analyze verify`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::{eventually, root as repo_root, try_status as status};

/// A live simulated UPS to a file: runs until stopped.
const GOOD: &str = r#"
[pipeline]
name = "site"
[sources.ups.sim]
interval_ms = 100
ups = [{ name = "ups-1", strings = 1, cells_per_string = 2 }]
[sinks.out]
inputs = ["ups"]
[sinks.out.file]
path = "../../../out.jsonl"
"#;

/// A release that cannot start: its plugin is not there.
const BROKEN: &str = r#"
[pipeline]
name = "site"
[sources.ups.sim]
interval_ms = 100
[operators.stats]
inputs = ["ups"]
plugin = "plugins/missing.wasm"
[sinks.out]
inputs = ["stats"]
[sinks.out.file]
path = "../../../out.jsonl"
"#;

/// Lays out `root/releases/ID` with eddy and `pipelines/site.toml`.
fn release(root: &Path, id: &str, pipeline: &str) {
    let dir = root.join("releases").join(id);
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_eddy"), dir.join("eddy")).unwrap();
    std::fs::write(dir.join("pipelines/site.toml"), pipeline).unwrap();
}

/// Points `root/NAME` at `releases/ID`, as a deploy does.
fn point(root: &Path, name: &str, id: &str) {
    let new = root.join(format!(".{name}.new"));
    let _ = std::fs::remove_file(&new);
    std::os::unix::fs::symlink(format!("releases/{id}"), &new).unwrap();
    std::fs::rename(&new, root.join(name)).unwrap();
}

fn link(root: &Path, name: &str) -> Option<String> {
    let target: PathBuf = std::fs::read_link(root.join(name)).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

fn boot(root: &Path) -> String {
    std::fs::read_to_string(root.join("boot"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn service_log(root: &Path) -> String {
    let text = std::fs::read_to_string(root.join("service.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Starts `eddy-start` again whenever it exits, until dropped.
struct Supervisor {
    stop: Arc<AtomicBool>,
    starts: Arc<AtomicUsize>,
    child: Arc<std::sync::Mutex<Option<Child>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervisor {
    fn start(root: &Path) -> Supervisor {
        let stop = Arc::new(AtomicBool::new(false));
        let starts = Arc::new(AtomicUsize::new(0));
        let child: Arc<std::sync::Mutex<Option<Child>>> = Arc::default();
        let (s, n, c, root) = (stop.clone(), starts.clone(), child.clone(), root.to_owned());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(root.join("service.log"))
                    .unwrap();
                let spawned = Command::new("sh")
                    .arg(root.join("bin/eddy-start"))
                    .arg(&root)
                    .arg("pipelines/site.toml")
                    .arg("3")
                    .env("EDDY_GOOD_AFTER_MS", "500")
                    .env("EDDY_LOG", "info")
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .unwrap();
                n.fetch_add(1, Ordering::Relaxed);
                *c.lock().unwrap() = Some(spawned);
                loop {
                    std::thread::sleep(Duration::from_millis(20));
                    let mut guard = c.lock().unwrap();
                    let Some(running) = guard.as_mut() else {
                        break;
                    };
                    if running.try_wait().unwrap().is_some() {
                        *guard = None;
                        break;
                    }
                    if s.load(Ordering::Relaxed) {
                        let _ = running.kill();
                        let _ = running.wait();
                        *guard = None;
                        break;
                    }
                }
                // RestartSec, shortened.
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Supervisor {
            stop,
            starts,
            child,
            thread: Some(thread),
        }
    }

    /// SIGKILL of the running eddy, as a power cut would leave it.
    fn kill_running(&self) {
        if let Some(child) = self.child.lock().unwrap().as_mut() {
            let _ = child.kill();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A device root with `eddy-start` installed and release `r1` current.
fn device() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("eddy");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("state")).unwrap();
    std::fs::copy(
        repo_root().join("deploy/eddy-start"),
        root.join("bin/eddy-start"),
    )
    .unwrap();
    release(&root, "r1", GOOD);
    point(&root, "current", "r1");
    (dir, root)
}

#[test]
fn a_release_that_never_becomes_healthy_is_rolled_back_by_the_device_itself() {
    let (_dir, root) = device();
    // A stray link from a switch cut short changes nothing.
    std::os::unix::fs::symlink("releases/nowhere", root.join(".current.new")).unwrap();
    let supervisor = Supervisor::start(&root);
    eventually(
        30,
        || {
            format!(
                "r1 marked good: boot `{}`\n{}",
                boot(&root),
                service_log(&root)
            )
        },
        || boot(&root) == "r1 0 good",
    );
    assert_eq!(status(&root)["release"], "r1");

    // A deploy switches to r2, which cannot start, and the power goes.
    release(&root, "r2", BROKEN);
    point(&root, "previous", "r1");
    point(&root, "current", "r2");
    supervisor.kill_running();
    // Three starts of r2, then the device goes back to r1 by itself.
    eventually(
        60,
        || format!("back on r1: boot `{}`\n{}", boot(&root), service_log(&root)),
        || link(&root, "current").as_deref() == Some("r1") && status(&root)["release"] == "r1",
    );
    assert_eq!(link(&root, "failed").as_deref(), Some("r2"));
    assert!(
        service_log(&root).contains("release r2 did not become healthy in 3 starts; back to r1"),
        "{}",
        service_log(&root)
    );
    // The state lives outside the releases: r1 goes on from where it was.
    assert!(root.join("state").read_dir().unwrap().next().is_some());
    let starts = supervisor.starts.load(Ordering::Relaxed);
    assert!(starts >= 5, "r1, three of r2, r1 again: {starts}");
    drop(supervisor);
}

#[test]
fn the_service_unit_passes_systemd_analyze() {
    let unit = std::fs::read_to_string(repo_root().join("deploy/eddy.service"))
        .unwrap()
        .replace("@ROOT@", "/opt/eddy");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eddy.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (cargo xtask test installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}
