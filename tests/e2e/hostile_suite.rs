//! The whole hostile suite at once, with plugin memory pooled and mapped on
//! demand: every hostile mode as an operator beside a healthy window
//! operator, and plugins that attack at load, compile and instantiation time
//! offered as swaps to the running pipeline. The healthy operator's output
//! must be byte-identical to its run alone, every hostile operator's input
//! must be in the dead-letter log with the cap or fault that stopped it, and
//! the host's peak resident memory (`VmHWM`) must stay within 256 MiB of the
//! healthy run's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::abi::{MISSING_EXPORT, UNKNOWN_IMPORT, WRONG_ABI};
use crate::hostile::{TABLE_GROW, healthy_graph, logged_peak};
use crate::support::{
    eddy, finish, json_lines, operator, plugin, run, sign, start, status, stderr, toml_path,
    write_wasm,
};

/// The most the host's peak resident memory may exceed the healthy run's.
const PEAK_OVER_HEALTHY: u64 = 256 << 20;

/// Every runtime mode of the hostile plugin.
const MODES: [&str; 10] = [
    "loop",
    "grow",
    "trap",
    "emit_gigabyte",
    "recurse",
    "bad_pointer",
    "fail",
    "state_flood",
    "timer_flood",
    "emit_flood",
];

/// What stops each operator of the suite, as its dead letters say.
const REASONS: [(&str, &str); 11] = [
    ("loop", "ran past its deadline"),
    ("grow", "hit its memory cap"),
    ("trap", "wasm `unreachable` instruction executed"),
    ("emit_gigabyte", "emitted more than its output cap"),
    ("recurse", "call stack exhausted"),
    ("bad_pointer", "handed `emit` an out-of-bounds range"),
    ("fail", "returned an error"),
    ("state_flood", "(`state_limit_bytes`)"),
    ("timer_flood", "(`timer_limit`)"),
    ("emit_flood", "(`output_limit_bytes`)"),
    ("table_grow", "(`table_limit_elements`)"),
];

/// Imports keyed state without declaring (or being granted) any.
const UNGRANTED_IMPORT: &str = r#"
(module
  (@custom "eddy.manifest" "{\"name\":\"sneaky\",\"version\":\"0.1.0\",\"abi_version\":1,\"kind\":\"process\"}")
  (import "eddy" "state_get" (func (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (result i32) i32.const 0)
  (func (export "process") (param i32 i32) (result i32) i32.const 0))
"#;

/// A well-formed process plugin named `name`, with `extra` added to the module.
fn process_plugin(name: &str, memory_pages: u32, extra: &str) -> String {
    format!(
        r#"(module
  (@custom "eddy.manifest" "{{\"name\":\"{name}\",\"version\":\"0.1.0\",\"abi_version\":1,\"kind\":\"process\"}}")
  (memory (export "memory") {memory_pages})
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (result i32) i32.const 0)
  (func (export "process") (param i32 i32) (result i32) i32.const 0)
  {extra})"#
    )
}

/// Straight-line code of about `bytes` bytes: `x = x + 5`, over and over,
/// which the compiler turns into as many values to allocate registers for.
fn heavy_function(bytes: usize) -> String {
    // local.get 0 (2 bytes), i32.const 5 (2), i32.add (1), local.set 0 (2).
    let step = "(local.set 0 (i32.add (local.get 0) (i32.const 5)))\n";
    format!(
        "(func (param i32) (result i32) {} (local.get 0))",
        step.repeat(bytes / 7)
    )
}

/// The suite's pipeline. `hostile` is the hostile plugin (a signed,
/// precompiled bundle: its operators load without compiling, so that their
/// tight compile limits only meet the swaps) and `grower` the signed
/// table-growing plugin; without them, the healthy operator alone.
fn suite_pipeline(
    stats: &Path,
    speed: u32,
    hostile: Option<(&Path, &Path)>,
    allocation: &str,
) -> String {
    let mut text = format!(
        r#"[pipeline]
name = "site"
batch_size = 64
dead_letter_path = "dead-letter.jsonl"

[trust]
keys = ["site.pub"]

[plugins]
deadline_ms = 200
memory_limit_bytes = 16_777_216
output_limit_bytes = 8_388_608
restart_backoff_ms = 1
max_restart_backoff_ms = 1
state_limit_bytes = 16_777_216
allocation = "{allocation}"

[checkpoint]
interval_ms = 1000
"#
    );
    text.push_str(&healthy_graph(stats, speed, 300_000, ""));
    if let Some((hostile, grower)) = hostile {
        for mode in MODES {
            let limits = match mode {
                // Swaps to these two meet their compile limits.
                "recurse" => "compile_memory_limit_bytes = 67_108_864\n",
                "bad_pointer" => "compile_timeout_ms = 200\n",
                // The floods meet their caps, not the deadline, however
                // busy the machine.
                "state_flood" | "timer_flood" | "emit_flood" => "deadline_ms = 5000\n",
                _ => "",
            };
            text.push_str(&format!(
                "\n[operators.{mode}]\ninputs = [\"ups\"]\nplugin = {}\nparams = {{ mode = \"{mode}\" }}\n{limits}",
                toml_path(hostile)
            ));
        }
        text.push_str(&format!(
            "\n[operators.table_grow]\ninputs = [\"ups\"]\nplugin = {}\n",
            toml_path(grower)
        ));
    }
    text
}

/// The host's target, for precompiling.
fn host_target() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "aarch64-unknown-linux-gnu"
    } else {
        "x86_64-unknown-linux-gnu"
    }
}

/// Plugins offered as swaps that must be refused, each with the reason.
fn refusals(d: &Path) -> Vec<(String, PathBuf, String)> {
    let signed = |name: &str, wat: &str| {
        let wasm = write_wasm(d, &format!("{name}.wasm"), wat);
        sign(d, &wasm, "site.key", name)
    };
    let mut tampered = std::fs::read(d.join("hostile.bundle")).unwrap();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x40;
    std::fs::write(d.join("tampered.bundle"), tampered).unwrap();
    // One function of 300 000 `nop`s: its body is that, a byte for its
    // (empty) locals and one for `end`; it is function 4, after the four exports.
    let big_body = 300_000 + 2;
    let heavy = heavy_function(250_000);
    let mut list =
        vec![
        (
            "trap",
            signed("old", WRONG_ABI),
            "built for eddy ABI version 99, but this host speaks ABI version 1".to_owned(),
        ),
        (
            "trap",
            signed("half", MISSING_EXPORT),
            "lacks the export `process`".to_owned(),
        ),
        (
            "trap",
            signed("nosy", UNKNOWN_IMPORT),
            "imports what this host does not provide".to_owned(),
        ),
        (
            "trap",
            signed("sneaky", UNGRANTED_IMPORT),
            "imports `state_get`, which needs keyed state".to_owned(),
        ),
        (
            "trap",
            d.join("tampered.bundle"),
            "does not verify: the bundle was altered after it was signed".to_owned(),
        ),
        (
            "trap",
            signed(
                "big",
                &process_plugin("big", 1, &format!("(func {})", "nop\n".repeat(300_000))),
            ),
            format!(
                "function 4 has {big_body} bytes, over the limit of 262144 (`function_limit_bytes`)"
            ),
        ),
        (
            "recurse",
            signed("heavy", &process_plugin("heavy", 1, &heavy)),
            "within its memory limit of 67108864 bytes (`compile_memory_limit_bytes`)".to_owned(),
        ),
        (
            "bad_pointer",
            d.join("heavy.bundle"),
            "compiling took longer than 200 ms (`compile_timeout_ms`)".to_owned(),
        ),
        (
            "trap",
            signed(
                "stuck",
                &process_plugin("stuck", 1, "(func $spin (loop $l (br $l))) (start $spin)"),
            ),
            "ran past its deadline of 200 ms".to_owned(),
        ),
        (
            "trap",
            signed("wide", &process_plugin("wide", 1, "(table 1000000 funcref)")),
            "its table starts at 1000000 elements, over the cap of 10000 (`table_limit_elements`)"
                .to_owned(),
        ),
        (
            "trap",
            signed("fat", &process_plugin("fat", 4000, "")),
            "its memory starts at 262144000 bytes, over the cap of 16777216 (`memory_limit_bytes`)"
                .to_owned(),
        ),
    ];
    list.sort_by_key(|(operator, _, _)| *operator);
    list.into_iter()
        .map(|(operator, bundle, reason)| (operator.to_owned(), bundle, reason))
        .collect()
}

fn the_whole_suite(allocation: &str, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(run(&["keys", "gen", "site"], d).status.success());
    let stats = sign(d, &plugin("window_stats"), "site.key", "stats");
    let pre = run(
        &[
            "plugin",
            "precompile",
            plugin("hostile").to_str().unwrap(),
            "--target",
            host_target(),
            "--output",
            "hostile-pre.bundle",
        ],
        d,
    );
    assert!(pre.status.success(), "{}", stderr(&pre));
    let hostile = sign(d, &d.join("hostile-pre.bundle"), "site.key", "hostile");
    let grower = sign(
        d,
        &write_wasm(d, "grower.wasm", TABLE_GROW),
        "site.key",
        "grower",
    );

    // The healthy operator alone, unpaced: its output and peak memory.
    std::fs::write(
        d.join("p.toml"),
        suite_pipeline(&stats, 0, None, allocation),
    )
    .unwrap();
    let alone = eddy()
        .args(["run", "p.toml"])
        .current_dir(d)
        .env("EDDY_STATE_DIR", d.join("state"))
        .env("EDDY_LOG", "info")
        .output()
        .unwrap();
    assert!(alone.status.success(), "{}", stderr(&alone));
    let healthy_peak = logged_peak(&stderr(&alone)) << 20;
    let healthy = std::fs::read(d.join("healthy.jsonl")).unwrap();
    assert_eq!(json_lines(&d.join("healthy.jsonl")).len(), 4 * 30);
    std::fs::remove_file(d.join("healthy.jsonl")).unwrap();
    std::fs::remove_dir_all(d.join("state")).unwrap();

    // With every hostile operator, paced so that the run lasts 15 s.
    std::fs::write(
        d.join("p.toml"),
        suite_pipeline(&stats, 20, Some((&hostile, &grower)), allocation),
    )
    .unwrap();
    let child = start(d);
    let at_start = status(d);
    assert_eq!(at_start["plugin_memory"], expected, "{at_start}");

    for (operator, bundle, reason) in refusals(d) {
        let out = run(
            &[
                "plugin",
                "swap",
                "site",
                &operator,
                bundle.to_str().unwrap(),
            ],
            d,
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&reason),
            "expected {reason:?} in {}",
            stderr(&out)
        );
    }

    // Every operator that faults keeps failing until it is quarantined (a
    // clean error return is not a fault that breaks the instance: `fail`
    // keeps being called).
    let deadline = Instant::now() + Duration::from_secs(60);
    let during = loop {
        let now = status(d);
        let done = REASONS
            .iter()
            .filter(|(name, _)| *name != "fail")
            .all(|(name, _)| operator(&now, name)["state"] == "quarantined");
        if done {
            break now;
        }
        assert!(Instant::now() < deadline, "not all quarantined: {now}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(operator(&during, "stats")["state"], "running");
    assert_eq!(operator(&during, "stats")["faults"], 0);
    // What the host holds for the state flood stays under its cap (16 MiB
    // here, so that checkpoints of it stay quick in a debug build; the
    // default is tested alone, in `hostile`). How much of it was committed
    // depends on how the records were batched: a call whose writes would
    // cross the cap commits none of them.
    let flood = operator(&during, "state_flood");
    let held = flood["usage"]["state_bytes"].as_u64().unwrap();
    assert!(held <= 16 << 20, "{flood}");
    assert_eq!(flood["limits"]["state_bytes"], 16 << 20);
    finish(child, d);

    assert!(
        std::fs::read(d.join("healthy.jsonl")).unwrap() == healthy,
        "the healthy operator's output is byte-identical to its run alone"
    );
    let dead = json_lines(&d.join("dead-letter.jsonl"));
    for (mode, reason) in REASONS {
        assert!(
            dead.iter()
                .any(|e| e["node"] == mode && e["reason"].as_str().unwrap().contains(reason)),
            "no dead letter of `{mode}` with {reason:?}"
        );
    }
    assert!(dead.iter().all(|e| e["node"] != "stats"));
    let log = std::fs::read_to_string(d.join("eddy.log")).unwrap();
    let peak = logged_peak(&log) << 20;
    println!(
        "{allocation}: peak resident memory {} MiB alone, {} MiB with the suite",
        healthy_peak >> 20,
        peak >> 20
    );
    assert!(
        peak <= healthy_peak + PEAK_OVER_HEALTHY,
        "peak resident memory {} MiB, over {} MiB + {} MiB",
        peak >> 20,
        healthy_peak >> 20,
        PEAK_OVER_HEALTHY >> 20
    );
}

#[test]
fn the_whole_suite_with_pooled_memory_leaves_the_healthy_operator_and_the_host_alone() {
    the_whole_suite("pooling", "pooled (26 slots)");
}

#[test]
fn the_whole_suite_with_memory_on_demand_leaves_the_healthy_operator_and_the_host_alone() {
    the_whole_suite("on_demand", "on demand");
}
