//! Certificates the TLS tests make with the `openssl` command: a CA, and
//! a server's certificate for an IP address signed by it.

use std::path::Path;
use std::process::Command;

/// Runs openssl in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (cargo xtask test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `name` (name.pem, name.key).
pub(crate) fn make_ca(dir: &Path, name: &str) {
    let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=eddy test {name}"),
            "-keyout",
            &key,
            "-out",
            &pem,
        ],
    );
}

/// A server certificate `name` (name.pem, name.key) for `ip`, signed by
/// the CA `ca`.
pub(crate) fn server_cert(dir: &Path, name: &str, ca: &str, ip: &str) {
    let (pem, key, csr) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("{name}.csr"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={ip}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    let ext = format!("{name}.ext");
    std::fs::write(dir.join(&ext), format!("subjectAltName=IP:{ip}\n")).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ],
    );
}
