//! `eddy status` and `eddy plugin swap|reset`: requests to a running eddy's API.

use std::path::Path;

use super::Failure;
use crate::api::client::Client;
use crate::io::{ComponentState, ComponentStatus};

/// Prints the running pipeline's status.
pub(crate) fn status(client: &Client, json: bool) -> Result<(), Failure> {
    let status = client.status().map_err(Failure::runtime)?;
    if json {
        let text = serde_json::to_string_pretty(&status).map_err(Failure::runtime)?;
        println!("{text}");
        return Ok(());
    }
    if let Some(release) = &status.release {
        println!("release {release}");
    }
    println!(
        "pipeline {}   resident memory {} (peak {})   dead-lettered {}",
        status.pipeline,
        mib(status.resident_bytes),
        mib(status.peak_resident_bytes),
        status.dead_lettered
    );
    if status.dead_letters_unwritten > 0 {
        println!(
            "dead letters not written, the log being full: {}",
            status.dead_letters_unwritten
        );
    }
    match status.address_space_bits {
        Some(bits) => println!(
            "plugin memory {} (address space {bits} bits)",
            status.plugin_memory
        ),
        None => println!("plugin memory {}", status.plugin_memory),
    }
    println!("\nsources");
    println!(
        "  {:<16} {:<8} {:<10} {:>12} {:>7} {:>8}",
        "name", "kind", "state", "records", "errors", "retries"
    );
    for s in &status.sources {
        let state = match (s.ended, s.idle) {
            (true, _) => "ended".to_owned(),
            (false, true) => format!("{} idle", state_name(s.health.state)),
            (false, false) => state_name(s.health.state).to_owned(),
        };
        println!(
            "  {:<16} {:<8} {:<10} {:>12} {:>7} {:>8}",
            s.name, s.health.kind, state, s.records, s.health.errors, s.health.retries
        );
        print_trouble(&s.health);
        for (name, d) in &s.health.devices {
            let fault = match (&d.last_fault, d.up) {
                (Some(why), false) => format!("   in fault: {why}"),
                (Some(why), true) => format!("   last fault: {why}"),
                (None, _) => String::new(),
            };
            println!(
                "    device {name:<16} {:<8} polls {:>8} faults {:>6}{fault}",
                if d.up { "up" } else { "fault" },
                d.polls,
                d.faults
            );
        }
    }
    println!("\noperators");
    println!(
        "  {:<16} {:<24} {:<12} {:>10} {:>8} {:>7} {:>8} {:>6} {:>9}",
        "name", "plugin", "state", "records", "dead", "faults", "restarts", "swaps", "rollbacks"
    );
    for o in &status.operators {
        println!(
            "  {:<16} {:<24} {:<12} {:>10} {:>8} {:>7} {:>8} {:>6} {:>9}",
            o.name,
            format!("{} {}", o.plugin, o.version),
            o.state,
            o.records_in,
            o.dead_lettered,
            o.faults,
            o.restarts,
            o.swaps,
            o.rollbacks
        );
        if let Some(limits) = &o.limits {
            println!(
                "  {:<16} memory {} of {}, state {} keys {} of {}, timers {} of {}",
                "",
                mib(o.memory_bytes),
                mib(limits.memory_bytes),
                o.usage.state_keys,
                mib(o.usage.state_bytes),
                mib(limits.state_bytes),
                o.usage.timers,
                limits.timers
            );
        }
        if let Some(reason) = &o.quarantined {
            println!("  {:<16} quarantined: plugin {reason}", "");
        }
        if let Some(from) = &o.probation_from {
            println!("  {:<16} on probation, replacing version {from}", "");
        }
    }
    println!("\nsinks");
    println!(
        "  {:<16} {:<8} {:<10} {:>12} {:>8} {:>8} {:>7} {:>8}",
        "name", "kind", "state", "written", "held", "dropped", "errors", "retries"
    );
    for s in &status.sinks {
        println!(
            "  {:<16} {:<8} {:<10} {:>12} {:>8} {:>8} {:>7} {:>8}",
            s.name,
            s.health.kind,
            state_name(s.health.state),
            s.written,
            s.held,
            s.dropped,
            s.health.errors,
            s.health.retries
        );
        if let Some(o) = &s.outbox {
            let oldest = o.oldest_age_ms.map_or(String::new(), |ms| {
                format!(", oldest {:.1} s", ms as f64 / 1000.0)
            });
            println!(
                "  {:<16} outbox {} results, {}{oldest}; dropped {} full, {} expired; {} not sent again after a restore",
                "",
                o.entries,
                mib(o.bytes),
                o.dropped_full,
                o.expired,
                o.replayed
            );
        }
        print_trouble(&s.health);
    }
    Ok(())
}

/// Bytes in MiB, for people.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn state_name(state: ComponentState) -> &'static str {
    match state {
        ComponentState::Starting => "starting",
        ComponentState::Up => "up",
        ComponentState::Retrying => "retrying",
        ComponentState::Failed => "failed",
        ComponentState::Ended => "ended",
    }
}

/// For a component that is down: since when, and why.
fn print_trouble(health: &ComponentStatus) {
    if !matches!(
        health.state,
        ComponentState::Retrying | ComponentState::Failed
    ) {
        return;
    }
    let for_s = (crate::dataflow::wall_clock_ms() - health.since_ms).max(0) as f64 / 1e3;
    let error = health.last_error.as_deref().unwrap_or("unknown error");
    println!(
        "  {:<16} {} for {for_s:.1} s: {error}",
        "",
        state_name(health.state)
    );
}

/// Swaps an operator's plugin; exit 1 when the new version was rolled back,
/// 2 when it was refused.
pub(crate) fn swap(
    client: &Client,
    pipeline: &str,
    operator: &str,
    file: &Path,
    reset_state: bool,
) -> Result<(), Failure> {
    let bytes =
        std::fs::read(file).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    let answer = client
        .swap(pipeline, operator, &bytes, reset_state)
        .map_err(Failure::runtime)?;
    let versions = format!(
        "{} -> {}",
        answer.from.as_deref().unwrap_or("?"),
        answer.to.as_deref().unwrap_or("?")
    );
    let pause = answer
        .pause_ms
        .map(|p| format!(", paused {p:.2} ms"))
        .unwrap_or_default();
    let error = answer.error.clone().unwrap_or_default();
    match answer.outcome.as_str() {
        "kept" => {
            println!("swapped {operator}: {versions}{pause}; passed probation");
            Ok(())
        }
        "on_probation" => {
            println!("swapped {operator}: on probation (no verdict yet; see `eddy status`)");
            Ok(())
        }
        "rolled_back" => Err(Failure::runtime(format!(
            "swap of {operator} rolled back{pause}: {error}"
        ))),
        _ => Err(Failure::usage(format!(
            "swap of {operator} refused: {error}"
        ))),
    }
}

/// Lifts an operator's quarantine.
pub(crate) fn reset(client: &Client, pipeline: &str, operator: &str) -> Result<(), Failure> {
    client.reset(pipeline, operator).map_err(Failure::runtime)?;
    println!("reset {operator}: its plugin starts afresh");
    Ok(())
}
