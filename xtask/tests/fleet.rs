//! `cargo xtask deploy` to a fleet of three devices that exist only for
//! this test: each is a network namespace (`ip netns`, a veth pair, an
//! address of its own) running its own `sshd` (Debian's openssh-server)
//! that knows only a key the test made, and eddy as a service under
//! runit's `runsv` — these machines do not run systemd as PID 1, so the
//! unit file itself is checked by `systemd-analyze verify` in the host's
//! release tests instead. The devices share this machine's file system;
//! each has its own root folder, and eddy's local API listens inside its
//! namespace.
//!
//! In order: a release to one device, then a release to all three; a release whose pipeline cannot
//! start on one device (rolled back there, the others updated, the deploy
//! failing); the same with that device as the canary (the others skipped);
//! the good release again (unchanged where it runs); a plugins-only deploy
//! under load (no restart, every window around the swap whole); and a
//! power cut right after a switch to a release that cannot start (the
//! device's boot counter brings it back by itself).
//!
//! The deploy ships the `eddy` that the workspace's tests use (with the
//! compiler, so the plugins go as `.wasm`), through `--eddy`: building a
//! release eddy for the target takes minutes and is what a deploy without
//! `--eddy` does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../../tests/netns.rs"]
#[allow(
    dead_code,
    reason = "shared with the end-to-end tests, which read other fields"
)]
mod netns;
use netns::Namespace;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn eventually(seconds: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One device: a namespace with sshd and runsv.
struct Device {
    name: String,
    ns: Namespace,
    root: PathBuf,
    sshd: Option<Child>,
    runsv: Option<Child>,
}

impl Device {
    fn start(dir: &Path, index: u32) -> Device {
        let name = format!("dev-{index}");
        let ns = Namespace::new(&name);
        let root = dir.join(&name);
        std::fs::create_dir_all(root.join("sv")).unwrap();
        let config = root.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress {address}\nPort 22\nHostKey {dir}/host_key\nPidFile {root}/sshd.pid\n\
                 AuthorizedKeysFile {dir}/client_key.pub\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nPrintMotd no\n",
                address = ns.ns_ip,
                dir = dir.display(),
                root = root.display()
            ),
        )
        .unwrap();
        // From here on, dropping the device stops what it started and
        // removes its namespace, should a step fail.
        let mut device = Device {
            name,
            ns,
            root,
            sshd: None,
            runsv: None,
        };
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = device.root.join("sshd.log");
        device.sshd = Some(
            device
                .ns
                .command("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        // The service: eddy-start under runsv, as `deploy/` lays it out.
        let script = device.root.join("sv/run");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nexec 2>>{root}/service.log\nexport EDDY_GOOD_AFTER_MS=1000\n\
                 [ -x {root}/bin/eddy-start ] || {{ sleep 1; exit 1; }}\nexec sh {root}/bin/eddy-start {root}\n",
                root = device.root.display()
            ),
        )
        .unwrap();
        run("chmod", &["755", script.to_str().unwrap()]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect((device.ns.ns_ip.as_str(), 22)).is_err() {
            let exited = device.sshd.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "sshd of {} does not listen on {} (exited: {exited:?}): {}",
                device.name,
                device.ns.ns_ip,
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        device.boot();
        device
    }

    /// The release `current` points at.
    fn current(&self) -> Option<String> {
        let link = std::fs::read_link(self.root.join("current")).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }

    fn link(&self, name: &str) -> Option<String> {
        let link = std::fs::read_link(self.root.join(name)).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }

    /// The release eddy reports running, asked inside the namespace.
    fn running(&self) -> Option<String> {
        let out = self
            .ns
            .command(self.root.join("current/eddy"))
            .args(["status", "--json"])
            .env("EDDY_STATE_DIR", self.root.join("state"))
            .output()
            .ok()?;
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        status["release"].as_str().map(str::to_owned)
    }

    /// Starts runsv in the namespace, as the device's boot does.
    fn boot(&mut self) {
        self.runsv = Some(
            self.ns
                .command("runsv")
                .arg(self.root.join("sv"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }

    /// The power goes: the supervisor and everything it started die at
    /// once, and the device boots again.
    fn power_cut(&mut self) {
        if let Some(mut runsv) = self.runsv.take() {
            let _ = runsv.kill();
            let _ = runsv.wait();
        }
        let _ = Command::new("pkill")
            .args(["-9", "-f"])
            .arg(self.root.to_string_lossy().as_ref())
            .output();
        // runsv's own lock and control files: a boot starts afresh.
        let _ = std::fs::remove_dir_all(self.root.join("sv/supervise"));
        self.boot();
    }

    fn results(&self) -> usize {
        std::fs::read_to_string(self.root.join("out.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let sv = self.root.join("sv");
        let _ = Command::new("sv").arg("force-stop").arg(&sv).output();
        let _ = Command::new("sv").arg("exit").arg(&sv).output();
        for child in [self.runsv.take(), self.sshd.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        // eddy, should runsv have left it.
        let _ = Command::new("pkill")
            .args(["-9", "-f"])
            .arg(self.root.join("current/eddy").to_string_lossy().as_ref())
            .output();
    }
}

/// A live simulated UPS, 1 s windows of the window-stats plugin, to a file
/// in the device's root (outside the releases).
fn pipeline(interval_ms: u64) -> String {
    pipeline_with(
        interval_ms,
        &root().join("target/plugins/window_stats.wasm"),
    )
}

fn pipeline_with(interval_ms: u64, plugin: &Path) -> String {
    assert!(
        plugin.exists(),
        "{} (cargo xtask guests builds it)",
        plugin.display()
    );
    format!(
        "[pipeline]\nname = \"site\"\n\
         [sources.ups.sim]\ninterval_ms = {interval_ms}\nups = [{{ name = \"ups-1\", strings = 1, cells_per_string = 2 }}]\n\
         [operators.stats]\ninputs = [\"ups\"]\nplugin = \"{}\"\nparams = {{ fields = [\"temperature\"] }}\nwindow.tumbling = {{ size_ms = 1000 }}\n\
         [sinks.out]\ninputs = [\"ups\", \"stats\"]\n[sinks.out.file]\npath = \"../../../out.jsonl\"\n",
        plugin.display()
    )
}

fn inventory(dir: &Path, devices: &[Device], rollout: &str, bad: Option<&str>) -> PathBuf {
    let mut text = format!(
        "[defaults]\npipeline = \"site.toml\"\nssh_config = \"ssh_config\"\n\n[rollout]\n{rollout}\n"
    );
    for d in devices {
        text.push_str(&format!(
            "\n[devices.{name}]\nssh = \"{name}\"\nroot = \"{root}\"\ngroups = [\"{group}\"]\n\
             service = {{ restart = \"sv -w 30 restart {{root}}/sv\", logs = \"tail -n 20 {{root}}/service.log\" }}\n",
            name = d.name,
            root = d.root.display(),
            group = if d.name == "dev-2" { "canary" } else { "rest" },
        ));
        if bad == Some(d.name.as_str()) {
            // Params the plugin refuses: this device's new release cannot
            // start its pipeline.
            text.push_str("overrides = { \"operators.stats.params.fields\" = 5 }\n");
        }
    }
    let path = dir.join("fleet.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn deploy(inventory: &Path) -> (bool, String, Duration) {
    deploy_with(inventory, &[])
}

fn deploy_with(inventory: &Path, args: &[&str]) -> (bool, String, Duration) {
    let eddy = root().join("target/debug/eddy");
    assert!(
        eddy.exists(),
        "{} (the workspace's tests build it)",
        eddy.display()
    );
    xtask_deploy(inventory, args, Some(&eddy))
}

/// `cargo xtask deploy` with `args`, shipping `eddy` (or building one per
/// target without it): success, what it printed, its wall time.
fn xtask_deploy(inventory: &Path, args: &[&str], eddy: Option<&Path>) -> (bool, String, Duration) {
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.arg("deploy").arg("--inventory").arg(inventory);
    if let Some(eddy) = eddy {
        command.arg("--eddy").arg(eddy);
    }
    let out = command.args(args).stdin(Stdio::null()).output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text, started.elapsed())
}

/// `count` devices in `d`, with the SSH keys, the known host key and the
/// SSH configuration (`Host dev-N`) the deploy reaches them with.
fn fleet(d: &Path, count: u32) -> Vec<Device> {
    for key in ["client_key", "host_key"] {
        let path = d.join(key);
        run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                path.to_str().unwrap(),
            ],
        );
    }
    let devices: Vec<Device> = (1..=count).map(|i| Device::start(d, i)).collect();
    // The devices' host key, known: the deploy checks it strictly.
    let host_key = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
    let mut known = String::new();
    let mut config = String::new();
    for device in &devices {
        known.push_str(&format!("{} {host_key}", device.ns.ns_ip));
        config.push_str(&format!(
            "Host {}\n  HostName {}\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {}\n  LogLevel ERROR\n",
            device.name,
            device.ns.ns_ip,
            d.join("client_key").display(),
            d.join("known_hosts").display()
        ));
    }
    std::fs::write(d.join("known_hosts"), known).unwrap();
    std::fs::write(d.join("ssh_config"), config).unwrap();
    devices
}

fn row<'a>(summary: &'a str, device: &str) -> &'a str {
    summary
        .lines()
        .find(|l| l.starts_with(&format!("{device} ")))
        .unwrap_or_else(|| panic!("no row for {device} in\n{summary}"))
}

#[test]
fn a_fleet_is_deployed_rolled_back_hot_swapped_and_survives_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut devices = fleet(d, 3);

    // 0. A release to dev-1 alone: the time of one device.
    let quick = "health_timeout_s = 10\nsettle_s = 2";
    std::fs::write(d.join("site.toml"), pipeline(200)).unwrap();
    let (ok, summary, one) = deploy_with(
        &inventory(d, &devices, quick, None),
        &["--devices", "dev-1"],
    );
    assert!(ok, "{summary}");
    let zeroth = devices[0].current().expect("dev-1 has a current release");

    // 1. The first release to all three (for dev-1, the second).
    std::fs::write(d.join("site.toml"), pipeline(100)).unwrap();
    let (ok, summary, took) = deploy(&inventory(d, &devices, quick, None));
    assert!(ok, "{summary}");
    let first = devices[0].current().expect("dev-1 has a current release");
    assert_ne!(first, zeroth);
    eprintln!(
        "deploy to one device: {:.1} s; to three: {:.1} s",
        one.as_secs_f64(),
        took.as_secs_f64()
    );
    for device in &devices {
        assert_eq!(
            device.current().as_deref(),
            Some(first.as_str()),
            "{summary}"
        );
        assert_eq!(
            device.running().as_deref(),
            Some(first.as_str()),
            "{}",
            device.name
        );
        let before = if device.name == "dev-1" {
            zeroth.as_str()
        } else {
            "none"
        };
        assert!(
            row(&summary, &device.name).contains(&format!("{before} → {first}")),
            "{summary}"
        );
        assert!(row(&summary, &device.name).contains("updated"), "{summary}");
    }
    eprintln!(
        "first deploy to three devices: {:.1} s\n{summary}",
        took.as_secs_f64()
    );
    eventually(20, "every device writes results", || {
        devices.iter().all(|d| d.results() > 5)
    });

    // 2. A new release; on dev-2 its pipeline cannot start. dev-2 goes
    //    back to the first release, the others run the new one, and the
    //    deploy fails.
    std::fs::write(d.join("site.toml"), pipeline(50)).unwrap();
    let (ok, summary, took) = deploy(&inventory(d, &devices, quick, Some("dev-2")));
    assert!(!ok, "a rolled-back device fails the deploy\n{summary}");
    eprintln!(
        "second deploy, dev-2 rolled back: {:.1} s\n{summary}",
        took.as_secs_f64()
    );
    let second = devices[0].current().unwrap();
    assert_ne!(second, first);
    for device in [&devices[0], &devices[2]] {
        assert_eq!(device.current().as_deref(), Some(second.as_str()));
        assert_eq!(
            device.running().as_deref(),
            Some(second.as_str()),
            "{}",
            device.name
        );
        assert_eq!(device.link("previous").as_deref(), Some(first.as_str()));
        assert!(row(&summary, &device.name).contains("updated"), "{summary}");
    }
    let dev2 = &devices[1];
    assert_eq!(dev2.current().as_deref(), Some(first.as_str()), "{summary}");
    assert_eq!(dev2.running().as_deref(), Some(first.as_str()));
    let failed = dev2.link("failed").expect("the failed release is marked");
    assert!(
        row(&summary, "dev-2").contains(&format!("{first} → {failed}")),
        "{summary}"
    );
    assert!(row(&summary, "dev-2").contains("ROLLED BACK"), "{summary}");
    assert!(
        summary.contains("2 of 3 devices run the new release"),
        "{summary}"
    );
    // The failure comes with the new release's last log lines.
    assert!(summary.contains("expected a sequence"), "{summary}");
    let before = dev2.results();
    eventually(20, "dev-2 writes results again", || {
        dev2.results() > before + 5
    });

    // 3. Canary first: dev-2 is the canary group, and fails again; the
    //    rollout stops there and the others keep the second release.
    std::fs::write(d.join("site.toml"), pipeline(40)).unwrap();
    let canary = format!("{quick}\ncanary = \"canary\"\nmax_failures = 0");
    let (ok, summary, _) = deploy(&inventory(d, &devices, &canary, Some("dev-2")));
    assert!(!ok, "{summary}");
    assert!(row(&summary, "dev-2").contains("ROLLED BACK"), "{summary}");
    for device in [&devices[0], &devices[2]] {
        assert!(row(&summary, &device.name).contains("skipped"), "{summary}");
        assert_eq!(device.current().as_deref(), Some(second.as_str()));
        assert_eq!(device.running().as_deref(), Some(second.as_str()));
    }
    assert_eq!(dev2.running().as_deref(), Some(first.as_str()));

    // 4. The second release again, without the fault: the devices that run
    //    it are unchanged, dev-2 is updated.
    std::fs::write(d.join("site.toml"), pipeline(50)).unwrap();
    let (ok, summary, _) = deploy(&inventory(d, &devices, quick, None));
    assert!(ok, "{summary}");
    assert!(row(&summary, "dev-1").contains("unchanged"), "{summary}");
    assert!(row(&summary, "dev-2").contains("updated"), "{summary}");
    for device in &devices {
        assert_eq!(device.running().as_deref(), Some(second.as_str()));
    }

    // 5. Plugins only, under load: a new build of the plugin (the same
    //    code, a custom section more) swapped into dev-1's running
    //    pipeline. No restart; every window of the records around the swap
    //    is there once, computed over exactly the records read.
    let v2 = d.join("v2");
    std::fs::create_dir_all(&v2).unwrap();
    let mut wasm = std::fs::read(root().join("target/plugins/window_stats.wasm")).unwrap();
    let custom = b"\x0afleet-testv2";
    wasm.extend_from_slice(&[0x00, custom.len() as u8]);
    wasm.extend_from_slice(custom);
    std::fs::write(v2.join("window_stats.wasm"), wasm).unwrap();
    std::fs::write(
        d.join("site.toml"),
        pipeline_with(50, &v2.join("window_stats.wasm")),
    )
    .unwrap();
    let dev1 = &devices[0];
    let from_ms = now_ms() - 3000;
    let (ok, summary, took) = deploy_with(
        &inventory(d, &devices, quick, None),
        &["--plugins-only", "--devices", "dev-1"],
    );
    assert!(ok, "{summary}");
    eprintln!(
        "plugins-only deploy to dev-1: {:.1} s\n{summary}",
        took.as_secs_f64()
    );
    assert!(
        row(&summary, "dev-1").contains("swapped stats"),
        "{summary}"
    );
    let third = dev1.current().unwrap();
    assert_ne!(third, second, "the release with the new plugin is current");
    assert_eq!(
        dev1.running().as_deref(),
        Some(second.as_str()),
        "the same process runs on: no restart"
    );
    let until_ms = now_ms();
    eventually(20, "windows after the swap are written", || {
        windows(dev1).iter().any(|w| w.start >= until_ms + 1000)
    });
    check_windows(dev1, from_ms, until_ms);
    // Another build of it, swapped into the same process again: judged by
    // the release that process started with, not the one `current` names.
    let mut v3 = std::fs::read(v2.join("window_stats.wasm")).unwrap();
    v3.extend_from_slice(&[0x00, custom.len() as u8]);
    v3.extend_from_slice(custom);
    std::fs::write(v2.join("window_stats.wasm"), v3).unwrap();
    let (ok, summary, _) = deploy_with(
        &inventory(d, &devices, quick, None),
        &["--plugins-only", "--devices", "dev-1"],
    );
    assert!(ok, "{summary}");
    assert!(
        row(&summary, "dev-1").contains(&format!("{third} → ")),
        "{summary}"
    );
    assert_ne!(dev1.current().as_deref(), Some(third.as_str()));
    assert_eq!(dev1.running().as_deref(), Some(second.as_str()));

    // 6. A power cut in the middle of a deploy: dev-3 gets a release that
    //    cannot start, and the power goes right after the switch, with the
    //    deploy. Nobody deploys again: the device's boot counter takes it
    //    back to the release that ran well.
    std::fs::write(d.join("site.toml"), pipeline(30)).unwrap();
    let fleet = inventory(d, &devices, quick, Some("dev-3"));
    let mut cut = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["deploy", "--devices", "dev-3", "--inventory"])
        .arg(&fleet)
        .arg("--eddy")
        .arg(root().join("target/debug/eddy"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dev3 = &mut devices[2];
    eventually(60, "the deploy switches dev-3", || {
        dev3.current().is_some_and(|c| c != second)
    });
    let _ = cut.kill();
    let _ = cut.wait();
    dev3.power_cut();
    let broken = dev3.current().unwrap();
    eventually(60, "dev-3 is back on the release that ran well", || {
        dev3.current().as_deref() == Some(second.as_str())
            && dev3.running().as_deref() == Some(second.as_str())
    });
    assert_eq!(dev3.link("failed").as_deref(), Some(broken.as_str()));
    let before = dev3.results();
    eventually(20, "dev-3 writes results again", || {
        dev3.results() > before + 5
    });
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A window result.
#[derive(Debug)]
struct Window {
    key: String,
    start: i64,
    end: i64,
    count: u64,
    sum: f64,
}

fn lines(device: &Device) -> Vec<serde_json::Value> {
    std::fs::read_to_string(device.root.join("out.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn windows(device: &Device) -> Vec<Window> {
    lines(device)
        .iter()
        .filter(|l| l["output"] == "stats")
        .map(|l| Window {
            key: l["key"].as_str().unwrap_or_default().to_owned(),
            start: l["fields"]["window_start"].as_i64().unwrap_or(0),
            end: l["fields"]["window_end"].as_i64().unwrap_or(0),
            count: l["fields"]["count"].as_u64().unwrap_or(0),
            sum: l["fields"]["temperature_sum"].as_f64().unwrap_or(0.0),
        })
        .collect()
}

/// Every window that starts within `from_ms..until_ms` (the swap inside)
/// is written once per key, and counts and sums exactly the readings the
/// device wrote for that key and time, which reach the file straight from
/// the source, without the plugin.
fn check_windows(device: &Device, from_ms: i64, until_ms: i64) {
    let all = lines(device);
    let windows = windows(device);
    let keys: std::collections::BTreeSet<&str> = windows.iter().map(|w| w.key.as_str()).collect();
    assert!(!keys.is_empty());
    for key in keys {
        let mut starts: Vec<i64> = windows
            .iter()
            .filter(|w| w.key == key && w.start >= from_ms && w.start < until_ms)
            .map(|w| w.start)
            .collect();
        let n = starts.len();
        starts.dedup();
        assert_eq!(starts.len(), n, "{key}: a window written twice");
        assert!(n >= 2, "{key}: {n} windows");
        for pair in starts.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                1000,
                "{key}: a window missing after {}",
                pair[0]
            );
        }
        for w in windows
            .iter()
            .filter(|w| w.key == key && starts.contains(&w.start))
        {
            let readings: Vec<f64> = all
                .iter()
                .filter(|l| l["output"] == "ups" && l["key"] == key)
                .filter(|l| (w.start..w.end).contains(&l["time"].as_i64().unwrap_or(-1)))
                .filter_map(|l| l["fields"]["temperature"].as_f64())
                .collect();
            assert_eq!(w.count, readings.len() as u64, "{key} at {}", w.start);
            let sum: f64 = readings.iter().sum();
            assert!(
                (w.sum - sum).abs() < 1e-6,
                "{key} at {}: {} against {sum}",
                w.start,
                w.sum
            );
        }
    }
}

/// The deploy as an operator runs it, without `--eddy`: eddy built in
/// release mode without the compiler for the device's target and the
/// plugins precompiled into bundles for it, to one device. Minutes of
/// building, so not in the default run:
/// `cargo nextest run -p xtask --test fleet --run-ignored only`.
#[test]
#[ignore = "builds a release eddy for the target: minutes"]
fn a_device_without_the_compiler_gets_a_built_release_with_precompiled_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let devices = fleet(d, 1);
    std::fs::write(d.join("site.toml"), pipeline(100)).unwrap();
    let inventory = inventory(d, &devices, "health_timeout_s = 20\nsettle_s = 2", None);
    let (ok, text, took) = xtask_deploy(&inventory, &[], None);
    assert!(ok, "{text}");
    eprintln!("built and deployed in {:.1} s\n{text}", took.as_secs_f64());
    let device = &devices[0];
    let release = device.root.join("current");
    assert!(release.join("plugins/window_stats.bundle").exists());
    assert!(!release.join("plugins/window_stats.wasm").exists());
    // The binary built for the device runs there, with the bundles.
    let version = Command::new(release.join("eddy"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
    assert_eq!(device.running(), device.current());
    eventually(20, "the device writes results", || device.results() > 5);
}
