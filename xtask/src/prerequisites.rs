//! Installing what builds and tests need, idempotently: nothing is installed twice.

use xshell::{Shell, cmd};

/// Adds a rustup target unless it is installed.
pub(crate) fn rustup_target(sh: &Shell, target: &str) -> anyhow::Result<()> {
    let installed = cmd!(sh, "rustup target list --installed").read()?;
    if !installed.lines().any(|l| l.trim() == target) {
        cmd!(sh, "rustup target add {target}").run()?;
    }
    Ok(())
}

/// Installs Debian packages that are missing.
pub(crate) fn apt(sh: &Shell, packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            let format = "${Status}";
            cmd!(sh, "dpkg-query -W -f={format} {p}")
                .quiet()
                .ignore_stderr()
                .read()
                .map_or(true, |status| !status.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let sudo: &[&str] = if is_root(sh) { &[] } else { &["sudo"] };
    cmd!(sh, "env {sudo...} apt-get update -qq")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    cmd!(
        sh,
        "env {sudo...} apt-get install -y -qq --no-install-recommends {missing...}"
    )
    .env("DEBIAN_FRONTEND", "noninteractive")
    .run()?;
    Ok(())
}

fn is_root(sh: &Shell) -> bool {
    cmd!(sh, "id -u").read().is_ok_and(|uid| uid.trim() == "0")
}

/// What building the host takes besides Rust: cmake (librdkafka is built
/// from source) and the curl headers its configuration includes even when
/// built without curl.
pub(crate) fn host_build(sh: &Shell) -> anyhow::Result<()> {
    apt(sh, &["cmake", "libcurl4-openssl-dev"])
}

/// The curl headers for the aarch64 build of librdkafka, which includes
/// them without using curl: the host's (curl's headers are the same on
/// every architecture), copied to a folder of their own so that no other
/// host header reaches the cross compiler. Returns the flags that add it.
pub(crate) fn cross_curl_headers(sh: &Shell) -> anyhow::Result<String> {
    host_build(sh)?;
    let include = crate::project_root().join("target/aarch64-include");
    let from = ["/usr/include/x86_64-linux-gnu/curl", "/usr/include/curl"]
        .into_iter()
        .map(std::path::Path::new)
        .find(|p| p.join("curl.h").exists())
        .ok_or_else(|| {
            anyhow::anyhow!("curl/curl.h is missing: apt-get install libcurl4-openssl-dev")
        })?;
    let to = include.join("curl");
    if !to.join("curl.h").exists() {
        sh.create_dir(&to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            sh.copy_file(entry.path(), &to)?;
        }
    }
    Ok(format!("-I{}", include.display()))
}

/// The aarch64 cross toolchain and qemu-user.
pub(crate) fn cross_aarch64(sh: &Shell) -> anyhow::Result<()> {
    apt(
        sh,
        &[
            "gcc-aarch64-linux-gnu",
            "g++-aarch64-linux-gnu",
            "libc6-dev-arm64-cross",
            "qemu-user-static",
        ],
    )?;
    rustup_target(sh, "aarch64-unknown-linux-gnu")
}

/// The peers the tests start: `socat` (serial line pairs), `dbus-daemon`
/// and python-dbusmock for the system Python (BlueZ mocked on a private
/// bus), the mosquitto broker, openssl (the TLS tests make their CAs),
/// systemd's `systemd-analyze` (the service unit is verified with it),
/// OpenSSH's server and client, runit and iproute2 (the fleet deploy test
/// makes devices of network namespaces with an sshd and a runsv each), and
/// a Python virtual environment at
/// `target/peers-venv` with pymodbus and paho-mqtt, whose interpreter the
/// tests find there (or in `EDDY_TEST_PYTHON`).
pub(crate) fn test_peers(sh: &Shell) -> anyhow::Result<()> {
    apt(
        sh,
        &[
            "socat",
            "python3-venv",
            "dbus",
            "python3-dbusmock",
            "mosquitto",
            "openssl",
            "systemd",
            "openssh-server",
            "openssh-client",
            "runit",
            "iproute2",
        ],
    )?;
    let venv = crate::project_root().join("target/peers-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        cmd!(sh, "python3 -m venv {venv}").run()?;
    }
    let wanted = ["pymodbus==3.16.1", "pyserial==3.5", "paho-mqtt==2.1.0"];
    let have = cmd!(sh, "{python} -m pip freeze").quiet().read()?;
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| !have.lines().any(|l| l.trim() == *w))
        .collect();
    if !missing.is_empty() {
        cmd!(
            sh,
            "{python} -m pip install --quiet --disable-pip-version-check {missing...}"
        )
        .run()?;
    }
    Ok(())
}
