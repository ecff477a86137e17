//! One device, over one multiplexed SSH session (the `openssh` crate over
//! the system's `ssh`): ship a release, switch to it, restart, judge its
//! health, and go back to the release before when it is not healthy; or,
//! for plugins only, swap them into the running pipeline through the
//! device's local API and swap them back when it is not healthy.

use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

use super::health::{Health, judge};
use super::inventory::{Plan, Rollout};
use super::stage::Staged;

/// The launcher and the unit, from `deploy/`.
const EDDY_START: &str = include_str!("../../../deploy/eddy-start");
const UNIT: &str = include_str!("../../../deploy/eddy.service");

/// Releases kept on a device besides the current, previous and failed ones.
const KEEP: usize = 3;

/// How a device's deploy ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It runs the new release, healthy.
    Updated,
    /// It already ran the release, healthy.
    Unchanged,
    /// The new release was not healthy; the device runs the one before
    /// again (healthy, or not: said in `error`).
    RolledBack,
    /// The deploy failed before or without a way back.
    Failed,
    /// Not tried: the rollout stopped before it.
    Skipped,
}

/// What happened on one device.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// The device.
    pub(crate) device: String,
    /// The release it ran before (none on a first deploy).
    pub(crate) old: Option<String>,
    /// The release shipped.
    pub(crate) new: String,
    /// How it ended.
    pub(crate) verdict: Verdict,
    /// The health seen last.
    pub(crate) health: String,
    /// What went wrong, with the new release's last log lines.
    pub(crate) error: Option<String>,
    /// Wall time.
    pub(crate) elapsed: Duration,
}

/// `s` quoted for `sh`.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A connected device.
pub(crate) struct Device {
    session: Session,
    plan: Plan,
    root: String,
}

impl Device {
    /// Opens the SSH session (its control master lives in a temporary
    /// folder; every command of this deploy goes through it).
    pub(crate) async fn connect(plan: &Plan) -> anyhow::Result<Device> {
        let mut builder = SessionBuilder::default();
        builder
            .known_hosts_check(KnownHosts::Strict)
            .connect_timeout(Duration::from_secs(15))
            .server_alive_interval(Duration::from_secs(15));
        if let Some(config) = &plan.ssh_config {
            builder.config_file(config);
        }
        let session = builder
            .connect_mux(&plan.ssh)
            .await
            .map_err(|e| anyhow::anyhow!("ssh {}: {e}", plan.ssh))?;
        Ok(Device {
            session,
            root: plan.root.trim_end_matches('/').to_owned(),
            plan: plan.clone(),
        })
    }

    /// Runs `script` with `sh -c`; its standard output, or an error with
    /// its standard error.
    pub(crate) async fn sh(&self, script: &str) -> anyhow::Result<String> {
        let output = self
            .session
            .command("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| anyhow::anyhow!("ssh {}: {e}", self.plan.ssh))?;
        if !output.status.success() {
            anyhow::bail!(
                "`{}` failed on {} ({}): {}{}",
                script.lines().next().unwrap_or_default(),
                self.plan.name,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                String::from_utf8_lossy(&output.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Writes `content` to `path` on the device (through a temporary file
    /// renamed over it).
    async fn upload(&self, path: &str, content: &[u8], mode: &str) -> anyhow::Result<()> {
        let partial = format!("{path}.partial");
        let script = format!(
            "cat > {p} && chmod {mode} {p} && mv {p} {f}",
            p = quote(&partial),
            f = quote(path)
        );
        let mut child = self
            .session
            .command("sh")
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| anyhow::anyhow!("ssh {}: {e}", self.plan.ssh))?;
        let mut stdin = child
            .stdin()
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdin to {}", self.plan.name))?;
        stdin.write_all(content).await?;
        stdin.shutdown().await?;
        drop(stdin);
        let output = child.wait_with_output().await?;
        if !output.status.success() {
            anyhow::bail!(
                "writing {path} on {}: {}",
                self.plan.name,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    fn fill(&self, command: &str) -> String {
        command.replace("{root}", &self.root)
    }

    /// The release `current` points at.
    async fn current(&self) -> anyhow::Result<Option<String>> {
        let out = self
            .sh(&format!(
                "readlink {} || true",
                quote(&format!("{}/current", self.root))
            ))
            .await?;
        Ok(out
            .trim()
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_owned))
    }

    /// Ships `release` unless the device has it whole already.
    async fn ship(&self, release: &Staged, bar: &ProgressBar) -> anyhow::Result<()> {
        let dir = format!("{}/releases/{}", self.root, release.id);
        let have = self
            .sh(&format!(
                "test -e {} && echo yes || true",
                quote(&format!("{dir}/.complete"))
            ))
            .await?;
        if have.trim() != "yes" {
            let partial = format!("{}/releases/.{}.partial", self.root, release.id);
            self.sh(&format!(
                "rm -rf {p} && mkdir -p {p}/pipelines {p}/plugins {p}/keys",
                p = quote(&partial)
            ))
            .await?;
            let total: usize = release.files.values().map(|c| c.len()).sum();
            let mut sent = 0;
            for (path, content) in &release.files {
                bar.set_message(format!(
                    "uploading {:.1} of {:.1} MiB",
                    sent as f64 / 1048576.0,
                    total as f64 / 1048576.0
                ));
                let mode = if path == "eddy" { "755" } else { "644" };
                self.upload(&format!("{partial}/{path}"), content, mode)
                    .await?;
                sent += content.len();
            }
            self.upload(
                &format!("{partial}/PIPELINE"),
                release.pipeline.as_bytes(),
                "644",
            )
            .await?;
            self.sh(&format!(
                "touch {p}/.complete && sync && rm -rf {d} && mv {p} {d}",
                p = quote(&partial),
                d = quote(&dir)
            ))
            .await?;
        }
        // The launcher and the service, whatever release runs.
        self.sh(&format!(
            "mkdir -p {r}/bin {r}/state",
            r = quote(&self.root)
        ))
        .await?;
        self.upload(
            &format!("{}/bin/eddy-start", self.root),
            EDDY_START.as_bytes(),
            "755",
        )
        .await?;
        let unit = UNIT.replace("@ROOT@", &self.root);
        self.upload(
            &format!("{}/bin/eddy.service", self.root),
            unit.as_bytes(),
            "644",
        )
        .await?;
        if self.plan.service.restart.is_none() {
            self.sh(&format!(
                "id -u eddy >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin eddy; \
                 groupadd -f dialout && groupadd -f i2c && \
                 chown eddy:eddy {r} && chown -R eddy:eddy {r}/state && \
                 install -m 644 {r}/bin/eddy.service /etc/systemd/system/eddy.service && \
                 systemctl daemon-reload && systemctl enable eddy",
                r = quote(&self.root)
            ))
            .await?;
        }
        Ok(())
    }

    /// Points `current` at `to` atomically. Forward, the release it
    /// pointed at becomes `previous` first (so that a cut between the two
    /// leaves the boot counter a way back); back (`rollback`), `previous`
    /// goes, since it would be `current` itself.
    async fn switch(&self, to: &str, rollback: bool) -> anyhow::Result<()> {
        let previous = if rollback {
            "rm -f previous && "
        } else {
            "if [ -n \"$old\" ] && [ \"$old\" != \"releases/$new\" ]; then \
             ln -sfn \"$old\" .previous.new && mv -T .previous.new previous; fi && "
        };
        self.sh(&format!(
            "cd {r} && new={to} && old=$(readlink current || true) && {previous}\
             ln -sfn \"releases/$new\" .current.new && mv -T .current.new current && sync",
            r = quote(&self.root),
            to = quote(to)
        ))
        .await?;
        Ok(())
    }

    /// Points `failed` at `release`: what went wrong stays to be looked at,
    /// and pruning leaves it.
    async fn mark_failed(&self, release: &str) -> anyhow::Result<()> {
        self.sh(&format!(
            "cd {r} && ln -sfn releases/{new} .failed.new && mv -T .failed.new failed",
            r = quote(&self.root),
            new = quote(release)
        ))
        .await
        .map(drop)
    }

    async fn restart(&self) -> anyhow::Result<()> {
        let command = match &self.plan.service.restart {
            Some(command) => self.fill(command),
            None => "systemctl restart eddy".to_owned(),
        };
        self.sh(&command).await.map(drop)
    }

    /// The service's last log lines.
    async fn logs(&self) -> String {
        let command = match &self.plan.service.logs {
            Some(command) => self.fill(command),
            None => "journalctl -u eddy -n 40 --no-pager".to_owned(),
        };
        self.sh(&command)
            .await
            .unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// What prints the local API's `eddy status --json` (nothing when it
    /// does not answer).
    fn status_command(&self) -> String {
        format!(
            "EDDY_STATE_DIR={r}/state {r}/current/eddy status --json 2>/dev/null || true",
            r = quote(&self.root)
        )
    }

    /// The release the running eddy reports (it keeps the one it started
    /// with through plugins-only deploys, which move `current` on).
    async fn running_release(&self) -> Option<String> {
        let out = self.sh(&self.status_command()).await.ok()?;
        let status: serde_json::Value = serde_json::from_str(out.trim()).ok()?;
        status["release"].as_str().map(str::to_owned)
    }

    /// Waits for `release` to be healthy, then to stay so for the settle
    /// time; the last verdict.
    async fn healthy(&self, release: &str, rollout: &Rollout, bar: &ProgressBar) -> Health {
        let start = Instant::now();
        let timeout = Duration::from_secs(rollout.health_timeout_s);
        let settle = Duration::from_secs(rollout.settle_s);
        let mut healthy_since: Option<Instant> = None;
        let status = self.status_command();
        loop {
            let out = self.sh(&status).await.unwrap_or_default();
            let out = out.trim();
            let verdict = judge((!out.is_empty()).then_some(out), release);
            match &verdict {
                Health::Healthy => {
                    let since = *healthy_since.get_or_insert_with(Instant::now);
                    bar.set_message(format!(
                        "healthy, settling ({} s)",
                        since.elapsed().as_secs()
                    ));
                    if since.elapsed() >= settle {
                        return verdict;
                    }
                }
                Health::Unhealthy(why) => {
                    healthy_since = None;
                    bar.set_message(format!("waiting for health: {why}"));
                    if start.elapsed() >= timeout {
                        return verdict;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Removes old releases: all but current, previous, failed and the
    /// newest few.
    async fn prune(&self) -> anyhow::Result<()> {
        self.sh(&format!(
            "cd {r}/releases && keep=\"$(for l in current previous failed; do readlink ../$l; done 2>/dev/null)\" ; \
             for old in $(ls -1t | tail -n +{n}); do \
               case \"$keep\" in *\"releases/$old\"*) ;; *) rm -rf \"$old\" ;; esac; \
             done",
            r = quote(&self.root),
            n = KEEP + 1
        ))
        .await
        .map(drop)
    }

    /// Closes the session.
    pub(crate) async fn close(self) {
        let _ = self.session.close().await;
    }
}

/// What a deploy does on each device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Ship, switch, restart, judge; roll back when the new release is not
    /// healthy.
    Full,
    /// Ship, and swap the plugins into the running pipeline (no restart,
    /// no record lost); swap the old ones back when it is not healthy. A
    /// release that changes eddy or the pipeline is refused: that needs a
    /// full deploy.
    PluginsOnly,
}

/// Deploys `release` to the device of `plan`.
pub(crate) async fn deploy(
    plan: &Plan,
    release: &Staged,
    rollout: &Rollout,
    bar: &ProgressBar,
    mode: Mode,
) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        device: plan.name.clone(),
        old: None,
        new: release.id.clone(),
        verdict: Verdict::Failed,
        health: "-".into(),
        error: None,
        elapsed: Duration::ZERO,
    };
    bar.set_message("connecting");
    match Device::connect(plan).await {
        Ok(device) => {
            let result = match mode {
                Mode::Full => deploy_on(&device, release, rollout, bar, &mut outcome).await,
                Mode::PluginsOnly => swap_on(&device, release, rollout, bar, &mut outcome).await,
            };
            if let Err(e) = result {
                outcome.verdict = Verdict::Failed;
                outcome.error = Some(format!("{e:#}"));
            }
            device.close().await;
        }
        Err(e) => outcome.error = Some(e.to_string()),
    }
    outcome.elapsed = started.elapsed();
    outcome
}

async fn deploy_on(
    device: &Device,
    release: &Staged,
    rollout: &Rollout,
    bar: &ProgressBar,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    outcome.old = device.current().await?;
    device.ship(release, bar).await?;
    if outcome.old.as_deref() == Some(release.id.as_str()) {
        bar.set_message("already there; checking health");
        // After a plugins-only deploy the process reports the release it
        // started with, whose eddy and pipeline are these.
        let running = device
            .running_release()
            .await
            .unwrap_or_else(|| release.id.clone());
        if device.healthy(&running, rollout, bar).await == Health::Healthy {
            outcome.verdict = Verdict::Unchanged;
            outcome.health = "healthy".into();
            return Ok(());
        }
        // Running it, but not well: start it again.
    }
    bar.set_message("switching");
    device.switch(&release.id, false).await?;
    // From here on, whatever fails takes the device back.
    let health = match device.restart().await {
        Ok(()) => device.healthy(&release.id, rollout, bar).await,
        Err(e) => Health::Unhealthy(format!("{e:#}")),
    };
    match health {
        Health::Healthy => {
            outcome.verdict = Verdict::Updated;
            outcome.health = "healthy".into();
            if let Err(e) = device.prune().await {
                outcome.error = Some(format!("old releases not pruned: {e:#}"));
            }
            Ok(())
        }
        Health::Unhealthy(why) => {
            let logs = device.logs().await;
            outcome.health = why.clone();
            let mut error = format!(
                "release {} not healthy: {why}\n{}",
                release.id,
                logs.trim_end()
            );
            match outcome.old.clone().filter(|old| *old != release.id) {
                Some(old) => {
                    bar.set_message(format!("rolling back to {old}"));
                    device.switch(&old, true).await?;
                    if let Err(e) = device.mark_failed(&release.id).await {
                        error.push_str(&format!("\n(marking it failed: {e:#})"));
                    }
                    outcome.verdict = Verdict::RolledBack;
                    let back = match device.restart().await {
                        Ok(()) => device.healthy(&old, rollout, bar).await,
                        Err(e) => Health::Unhealthy(format!("{e:#}")),
                    };
                    if let Health::Unhealthy(why) = back {
                        error.push_str(&format!(
                            "\nand {old}, rolled back to, is not healthy either: {why}"
                        ));
                    }
                }
                None => {
                    error.push_str("\nno release before it to go back to");
                    outcome.verdict = Verdict::Failed;
                }
            }
            outcome.error = Some(error);
            Ok(())
        }
    }
}

/// Whether the release that runs has the same eddy and pipeline as
/// `release`, which then differs in plugins only; and which operators'
/// plugins differ.
async fn changed_plugins(
    device: &Device,
    old: &str,
    release: &Staged,
) -> anyhow::Result<Vec<(String, String)>> {
    let (old_dir, new_dir) = (
        format!("{}/releases/{old}", device.root),
        format!("{}/releases/{}", device.root, release.id),
    );
    let same = device
        .sh(&format!(
            "cd {n} && cmp -s eddy {o}/eddy && cmp -s PIPELINE {o}/PIPELINE && \
             cmp -s \"$(cat PIPELINE)\" {o}/\"$(cat PIPELINE)\" && echo same || true",
            n = quote(&new_dir),
            o = quote(&old_dir)
        ))
        .await?;
    if same.trim() != "same" {
        anyhow::bail!(
            "release {old} runs another eddy or pipeline than {}: --plugins-only swaps plugins only; deploy without it",
            release.id
        );
    }
    let mut changed = Vec::new();
    for (operator, path) in &release.operator_plugins {
        let differs = device
            .sh(&format!(
                "cmp -s {n} {o} || echo differs",
                n = quote(&format!("{new_dir}/{path}")),
                o = quote(&format!("{old_dir}/{path}"))
            ))
            .await?;
        if differs.trim() == "differs" {
            changed.push((operator.clone(), path.clone()));
        }
    }
    Ok(changed)
}

impl Device {
    /// Swaps `operator`'s plugin for `file` in the running pipeline.
    async fn swap(&self, pipeline: &str, operator: &str, file: &str) -> anyhow::Result<()> {
        self.sh(&format!(
            "EDDY_STATE_DIR={r}/state {r}/current/eddy plugin swap {p} {o} {f}",
            r = quote(&self.root),
            p = quote(pipeline),
            o = quote(operator),
            f = quote(file)
        ))
        .await
        .map(drop)
    }
}

async fn swap_on(
    device: &Device,
    release: &Staged,
    rollout: &Rollout,
    bar: &ProgressBar,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let Some(old) = device.current().await? else {
        anyhow::bail!("no release runs there yet: deploy without --plugins-only first");
    };
    outcome.old = Some(old.clone());
    if old == release.id {
        outcome.verdict = Verdict::Unchanged;
        outcome.health = "unchanged".into();
        return Ok(());
    }
    device.ship(release, bar).await?;
    let changed = changed_plugins(device, &old, release).await?;
    let Some(process) = device.running_release().await else {
        anyhow::bail!("eddy does not answer there: nothing to swap into");
    };
    let new_dir = format!("{}/releases/{}", device.root, release.id);
    let old_dir = format!("{}/releases/{old}", device.root);
    let mut swapped = Vec::new();
    let mut failure = None;
    for (operator, path) in &changed {
        bar.set_message(format!("swapping {operator}"));
        match device
            .swap(
                &release.pipeline_name,
                operator,
                &format!("{new_dir}/{path}"),
            )
            .await
        {
            Ok(()) => swapped.push((operator, path)),
            Err(e) => {
                failure = Some(format!("{e:#}"));
                break;
            }
        }
    }
    let health = match failure {
        Some(why) => Health::Unhealthy(why),
        None => device.healthy(&process, rollout, bar).await,
    };
    let names: Vec<&str> = changed.iter().map(|(o, _)| o.as_str()).collect();
    match health {
        Health::Healthy => {
            // A restart or a reboot runs the new plugins too.
            device.switch(&release.id, false).await?;
            outcome.verdict = Verdict::Updated;
            outcome.health = format!(
                "healthy; swapped {}",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            );
            if let Err(e) = device.prune().await {
                outcome.error = Some(format!("old releases not pruned: {e:#}"));
            }
        }
        Health::Unhealthy(why) => {
            let logs = device.logs().await;
            let mut error = format!(
                "after swapping {} of release {}: {why}\n{}",
                names.join(", "),
                release.id,
                logs.trim_end()
            );
            for (operator, path) in swapped.iter().rev() {
                bar.set_message(format!("swapping {operator} back"));
                if let Err(e) = device
                    .swap(
                        &release.pipeline_name,
                        operator,
                        &format!("{old_dir}/{path}"),
                    )
                    .await
                {
                    error.push_str(&format!("\nswapping {operator} back failed: {e:#}"));
                }
            }
            if let Err(e) = device.mark_failed(&release.id).await {
                error.push_str(&format!("\n(marking it failed: {e:#})"));
            }
            outcome.verdict = Verdict::RolledBack;
            outcome.health = why;
            if let Health::Unhealthy(why) = device.healthy(&process, rollout, bar).await {
                error.push_str(&format!(
                    "\nand with the old plugins back it is not healthy either: {why}"
                ));
            }
            outcome.error = Some(error);
        }
    }
    Ok(())
}
