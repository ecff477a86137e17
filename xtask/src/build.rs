//! `cargo xtask build --target T`: release builds of the host.

use std::path::PathBuf;

use xshell::{Shell, cmd};

use crate::prerequisites;

/// Targets eddy is built for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Target {
    /// 64-bit ARM Linux gateways.
    #[value(name = "aarch64-unknown-linux-gnu")]
    Aarch64,
    /// x86_64 Linux gateways.
    #[value(name = "x86_64-unknown-linux-gnu")]
    X86_64,
}

impl Target {
    pub(crate) fn triple(self) -> &'static str {
        match self {
            Target::Aarch64 => "aarch64-unknown-linux-gnu",
            Target::X86_64 => "x86_64-unknown-linux-gnu",
        }
    }
}

/// Builds `eddy` in release mode and returns the binary's path. Without the
/// compiler, the binary is copied to `eddy-precompiled-only` next to it, so
/// that both builds can be kept.
pub(crate) fn run(sh: &Shell, target: Target, compiler: bool) -> anyhow::Result<PathBuf> {
    let triple = target.triple();
    prerequisites::host_build(sh)?;
    let _cflags = match target {
        Target::Aarch64 => {
            prerequisites::cross_aarch64(sh)?;
            let flags = prerequisites::cross_curl_headers(sh)?;
            Some(sh.push_env("CFLAGS_aarch64_unknown_linux_gnu", flags))
        }
        Target::X86_64 => None,
    };
    prerequisites::rustup_target(sh, triple)?;
    let cargo = crate::cargo();
    let features: &[&str] = if compiler {
        &[]
    } else {
        &["--no-default-features", "--features", "components,mimalloc"]
    };
    cmd!(
        sh,
        "{cargo} build --quiet --release -p eddy-host --target {triple} {features...}"
    )
    .run()?;
    let mut binary = PathBuf::from(format!("target/{triple}/release/eddy"));
    if !compiler {
        let copy = binary.with_file_name("eddy-precompiled-only");
        sh.copy_file(&binary, &copy)?;
        binary = copy;
    }
    let size = std::fs::metadata(sh.current_dir().join(&binary))?.len();
    eprintln!(
        "{} ({}): {:.2} MiB ({} bytes)",
        binary.display(),
        if compiler {
            "with the compiler"
        } else {
            "without the compiler"
        },
        size as f64 / (1 << 20) as f64,
        size
    );
    Ok(binary)
}
