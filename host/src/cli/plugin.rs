//! `eddy plugin inspect` and `eddy plugin test`: the plugin author's tools.

use std::path::{Path, PathBuf};

use eddy_abi::ABI_VERSION;
use serde::Deserialize;

use super::Failure;
use crate::config::{TumblingConfig, WindowConfig, WindowTime};
use crate::dataflow::{Graph, Harness, RunControl};
use crate::plugin::bundle::{self, Bundle};
use crate::plugin::{Loader, PluginEngine, PluginLimits, read_manifest, signing};
use crate::sinks::StdoutSink;

/// Arguments of `eddy plugin test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The plugin's `.wasm` file.
    pub file: PathBuf,
    /// Input records as JSON lines: {"key": "...", "time": ms, "fields": {...}}.
    #[arg(long)]
    pub input: PathBuf,
    /// Params as JSON, or @FILE to read them from a JSON file.
    #[arg(long, default_value = "{}")]
    pub params: String,
    /// For a window plugin: tumbling window size in ms (short for --window).
    #[arg(long, conflicts_with = "window")]
    pub window_ms: Option<u64>,
    /// For a window plugin: the window as in a pipeline file, e.g.
    /// 'sliding = { size_ms = 2000, slide_ms = 1000 }' or 'session = { gap_ms = 500 }'.
    #[arg(long)]
    pub window: Option<String>,
    /// How long fired event-time windows are kept for late records, in ms.
    #[arg(long, default_value_t = 0)]
    pub allowed_lateness_ms: u64,
    /// Key records by this field instead of their key.
    #[arg(long)]
    pub key_by: Option<String>,
    /// How far out of order the input may be, in ms.
    #[arg(long, default_value_t = 0)]
    pub bounded_out_of_orderness_ms: u64,
    /// Records per plugin call.
    #[arg(long, default_value_t = 1024)]
    pub batch_size: usize,
    /// CPU deadline per call, in ms.
    #[arg(long, default_value_t = 1000)]
    pub deadline_ms: u64,
    /// Where failed batches are written (JSON lines).
    #[arg(long, default_value = "plugin-test-dead-letter.jsonl")]
    pub dead_letter: PathBuf,
}

/// Prints the manifest and exports of a plugin, and a bundle's signer and artifacts.
pub(crate) fn inspect(file: &Path) -> Result<(), Failure> {
    let bytes =
        std::fs::read(file).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    let at_file = |e: &dyn std::fmt::Display| Failure::runtime(format!("{}: {e}", file.display()));
    let body = if bundle::is_bundle(&bytes) {
        let bundle = Bundle::parse(&bytes).map_err(|e| at_file(&e))?;
        Some((bundle.signature, bundle.decode().map_err(|e| at_file(&e))?))
    } else {
        None
    };
    let wasm = body.as_ref().map_or(&bytes[..], |(_, b)| &b.wasm[..]);
    let manifest = read_manifest(wasm).map_err(|e| at_file(&e))?;
    println!("file:          {}", file.display());
    if let Some((signature, body)) = &body {
        let signed = signature.map_or("no".to_owned(), |s| {
            format!("by key {}", signing::key_id(&s.key))
        });
        println!("signed:        {signed}");
        let host = PluginEngine::host_target();
        let engine = PluginEngine::fingerprint(host);
        for artifact in &body.artifacts {
            let fits = if artifact.target == host && artifact.engine == engine {
                "loads on this host"
            } else {
                "not for this host"
            };
            println!(
                "artifact:      {} (engine {}, {} bytes): {fits}",
                artifact.target,
                artifact.engine,
                artifact.code.len()
            );
        }
    }
    println!("name:          {}", manifest.name);
    println!("version:       {}", manifest.version);
    println!(
        "abi version:   {} (this host: {ABI_VERSION})",
        manifest.abi_version
    );
    println!(
        "kind:          {}",
        serde_json::to_string(&manifest.kind)
            .unwrap_or_default()
            .trim_matches('"')
    );
    println!("state version: {}", manifest.state_version);
    let caps = &manifest.capabilities;
    println!("state:         {}", or_none(&caps.state));
    println!("side outputs:  {}", or_none(&caps.side_outputs));
    println!("timers:        {}", if caps.timers { "yes" } else { "no" });
    let engine = PluginEngine::new().map_err(Failure::runtime)?;
    let module = Loader::new(engine, None)
        .load_bytes(&bytes)
        .map_err(|e| at_file(&e))?;
    let code = if module.is_precompiled() {
        "its precompiled artifact"
    } else {
        "its .wasm, compiled here"
    };
    println!("runs from:     {code}");
    println!("exports:");
    for (name, ty) in module.exports() {
        println!("  {name:<10} {ty}");
    }
    Ok(())
}

fn or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A window given as `KIND = { ... }`, read as the pipeline file's `window.KIND`.
fn window_from_spec(spec: &str) -> Result<WindowConfig, Failure> {
    let table: toml::Table =
        toml::from_str(spec).map_err(|e| Failure::usage(format!("--window: {}", e.message())))?;
    WindowConfig::deserialize(toml::Value::Table(table))
        .map_err(|e| Failure::usage(format!("--window: {}", e.message())))
}

/// The records of a JSON-lines file in eddy's record format; the first
/// line that is not a record is an error, named by file and line.
fn read_records(path: &std::path::Path) -> Result<Vec<eddy_abi::Record>, Failure> {
    use eddy_codec::{Decoding, Format, Meta, StreamDecoder};
    let bytes =
        std::fs::read(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    let mut decoder =
        StreamDecoder::new(Decoding::new(Format::Json, "key", "time")).map_err(Failure::runtime)?;
    let mut records = Vec::new();
    match decoder
        .decode_all(&bytes, &Meta::now(), &mut records)
        .first()
    {
        Some(e) => Err(Failure::usage(format!(
            "{}:{}: {}",
            path.display(),
            e.line.unwrap_or(1),
            e.reason
        ))),
        None => Ok(records),
    }
}

/// Runs a plugin over records from a file and prints what it emits.
pub(crate) fn test(args: &TestArgs) -> Result<(), Failure> {
    let params_text = match args.params.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("{path}: {e}")))?
        }
        None => args.params.clone(),
    };
    let params: serde_json::Value = serde_json::from_str(&params_text)
        .map_err(|e| Failure::usage(format!("--params is not JSON: {e}")))?;
    let records = read_records(&args.input)?;
    let engine = PluginEngine::new().map_err(Failure::runtime)?;
    let module = Loader::new(engine.clone(), None)
        .load(&args.file)
        .map_err(|e| Failure::runtime(format!("{}: {e}", args.file.display())))?;
    let window = match (&args.window, args.window_ms) {
        (Some(spec), _) => Some(window_from_spec(spec)?),
        (None, Some(size_ms)) => Some(WindowConfig::Tumbling(TumblingConfig {
            size_ms,
            offset_ms: 0,
            time: WindowTime::Event,
        })),
        (None, None) => None,
    };
    let harness = Harness {
        params,
        window,
        allowed_lateness_ms: args.allowed_lateness_ms,
        key_by: args.key_by.clone(),
        bounded_out_of_orderness_ms: args.bounded_out_of_orderness_ms,
        batch_size: args.batch_size,
        limits: PluginLimits {
            deadline: std::time::Duration::from_millis(args.deadline_ms),
            ..PluginLimits::default()
        },
        dead_letter_path: args.dead_letter.clone(),
    };
    let mut graph = Graph::single_plugin(
        &engine,
        module,
        records,
        Box::new(StdoutSink::new()),
        &harness,
    )
    .map_err(Failure::usage)?;
    let summary = graph
        .run(&RunControl::default())
        .map_err(Failure::runtime)?;
    if summary.dead_lettered > 0 {
        return Err(Failure::runtime(format!(
            "{} record(s) failed; see {}",
            summary.dead_lettered,
            args.dead_letter.display()
        )));
    }
    Ok(())
}
