//! Network namespaces for tests (`ip netns`), each joined to this machine
//! by a veth pair on a /24 of its own.
//!
//! Shared by the end-to-end tests and the fleet deploy test, which may run
//! at the same time in separate processes, beside namespaces that a killed
//! run left behind. So a namespace is named after the process that made it
//! (namespaces of processes that are gone are removed first), and its
//! subnet is one that no address or route on this machine overlaps, chosen
//! and taken under a lock shared by every process that makes one.

use std::fs::File;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Every namespace made here starts with this, then the maker's process id.
const PREFIX: &str = "eddyt";

/// Taken while a subnet is chosen and its addresses are added.
const LOCK: &str = "/tmp/eddy-test-netns.lock";

/// A network namespace with a veth pair to it, removed when dropped.
pub(crate) struct Namespace {
    /// The namespace's name, for `ip netns exec`.
    pub(crate) name: String,
    /// The host's end of the veth pair.
    host_link: String,
    /// The address of the host's end, which the namespace reaches.
    pub(crate) host_ip: String,
    /// The address of the namespace's end, which the host reaches.
    pub(crate) ns_ip: String,
}

/// `ip` with `args`; what it printed, or why it failed.
fn ip(args: &[&str]) -> Result<Output, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e} (cargo xtask test installs iproute2)"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(args: &[&str]) -> Output {
    ip(args).unwrap_or_else(|e| panic!("{e}"))
}

impl Namespace {
    /// A new namespace, `tag` in its name, its veth ends up and addressed.
    pub(crate) fn new(tag: &str) -> Namespace {
        static MADE: AtomicU32 = AtomicU32::new(0);
        remove_leftovers();
        let pid = std::process::id();
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        // Interface names hold 15 bytes: "e" + 7 digits + "x" + n + side.
        let (host_link, ns_link) = (format!("e{pid}x{n}h"), format!("e{pid}x{n}n"));
        let name = format!("{PREFIX}{pid}-{n}-{tag}");
        let lock = File::create(LOCK).unwrap_or_else(|e| panic!("{LOCK}: {e}"));
        lock.lock().unwrap_or_else(|e| panic!("{LOCK}: {e}"));
        let net = free_subnet();
        let ns = Namespace {
            name: name.clone(),
            host_link: host_link.clone(),
            host_ip: format!("{net}.1"),
            ns_ip: format!("{net}.2"),
        };
        must(&["netns", "add", &name]);
        must(&[
            "link", "add", &host_link, "type", "veth", "peer", "name", &ns_link,
        ]);
        must(&["link", "set", &ns_link, "netns", &name]);
        must(&[
            "addr",
            "add",
            &format!("{}/24", ns.host_ip),
            "dev",
            &host_link,
        ]);
        must(&["link", "set", &host_link, "up"]);
        must(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{}/24", ns.ns_ip),
            "dev",
            &ns_link,
        ]);
        must(&["-n", &name, "link", "set", &ns_link, "up"]);
        must(&["-n", &name, "link", "set", "lo", "up"]);
        drop(lock);
        ns
    }

    /// A command run inside the namespace.
    pub(crate) fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_link]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Removes the namespaces made here by processes that are gone, with their
/// veth pairs (a pair goes with its end inside).
fn remove_leftovers() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// `a.b.c.d/len` (or a bare address, or `default`) as a network and its
/// prefix length.
fn parse_net(text: &str) -> Option<(u32, u32)> {
    if text == "default" {
        return Some((0, 0));
    }
    let (address, len) = text.split_once('/').unwrap_or((text, "32"));
    let address: std::net::Ipv4Addr = address.parse().ok()?;
    Some((u32::from(address), len.parse().ok()?))
}

/// Whether two networks share an address: one holds the other.
fn overlap((a, a_len): (u32, u32), (b, b_len): (u32, u32)) -> bool {
    let len = a_len.min(b_len);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a & mask == b & mask
}

/// The first three octets of a /24 in 10.200.0.0/13 that no address or
/// route of this machine overlaps (the default route aside).
fn free_subnet() -> String {
    let mut taken = Vec::new();
    for args in [
        &["-4", "-o", "addr", "show"][..],
        &["-4", "route", "show", "table", "all"][..],
    ] {
        let out = must(args);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut words = line.split_whitespace();
            // `ip -o addr`: "N: dev inet a.b.c.d/len ..."; a route: its
            // destination first, perhaps after its type.
            let net = if args.contains(&"addr") {
                words.find(|w| *w == "inet").and_then(|_| words.next())
            } else {
                words.find(|w| {
                    !matches!(
                        *w,
                        "unicast"
                            | "local"
                            | "broadcast"
                            | "blackhole"
                            | "unreachable"
                            | "prohibit"
                            | "throw"
                            | "multicast"
                    )
                })
            };
            if let Some(net) = net.and_then(parse_net).filter(|&(_, len)| len > 0) {
                taken.push(net);
            }
        }
    }
    for second in 200..208u32 {
        for third in 1..255u32 {
            let candidate = ((10 << 24) | (second << 16) | (third << 8), 24);
            if !taken.iter().any(|&net| overlap(net, candidate)) {
                return format!("10.{second}.{third}");
            }
        }
    }
    panic!("no free /24 in 10.200.0.0/13: {taken:?}");
}

#[test]
fn networks_overlap_when_one_holds_the_other() {
    let net = |text| parse_net(text).unwrap();
    assert!(overlap(net("10.200.1.0/24"), net("10.200.1.7")));
    assert!(overlap(net("10.0.0.0/8"), net("10.200.3.0/24")));
    assert!(!overlap(net("10.200.1.0/24"), net("10.200.2.0/24")));
    assert!(!overlap(net("192.0.2.0/24"), net("10.200.1.0/24")));
    assert_eq!(net("default"), (0, 0));
}
