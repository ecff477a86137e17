//! The eddy host: runs pipelines of device sources, sandboxed WebAssembly
//! operators and sinks on an edge gateway.
//!
//! A pipeline is a TOML file ([`config`]) naming sources, operators
//! (WebAssembly plugins with params, a key and optionally a window) and
//! sinks, wired into a DAG by each node's `inputs`. Sources and sinks name
//! their kind by a sub-table whose settings the kind's own crate reads; the
//! [`registry`] lists the kinds this build has. [`dataflow`] validates the
//! pipeline into a graph without touching the outside world (`eddy check`),
//! then opens its sources and sinks through the I/O layer ([`io`]), which
//! runs network components as tasks on an async runtime, retries peers that
//! fail with backoff, and holds a sink's records while its peer is down.
//! The graph runs on one dedicated thread: sources are polled in
//! batches, every record advances its source's event-time watermark, window
//! operators buffer records per key and window until the watermark fires
//! them, and each operator calls its plugin once per batch through [`plugin`],
//! which runs guests under wasmtime with a CPU deadline, a memory cap and an
//! output cap. A plugin that traps, loops or over-allocates loses only the
//! batch it was given: the batch goes to the dead-letter log with the reason
//! and the plugin is restarted in a fresh store after a backoff. Keyed state
//! and timers are held by the host in [`state::KeyedState`], so they
//! survive those restarts, and [`checkpoint`] writes the whole state of a
//! pipeline to sled at intervals, so that it survives crashes and power loss.
//!
//! [`runtime`] starts and stops everything `eddy run` runs: the async
//! runtime, the pipeline, its state store and its API. A running pipeline
//! serves a token-protected local HTTP API ([`api`]) for its status
//! (components up or retrying, operators, memory) and for plugin hot swaps:
//! a new version takes over between two
//! batches, on probation, and is rolled back if it fails. Plugins can come as
//! signed bundles with code precompiled for the device ([`plugin::bundle`],
//! [`plugin::signing`]), so that a device build can leave the compiler out.
//!
//! The `eddy` binary ([`cli`]) runs and checks pipelines, talks to a running
//! one, signs and precompiles plugins, and lets plugin authors inspect and
//! test their plugins without any device.
//!
//! ```no_run
//! let pipeline = eddy_host::config::load("examples/ups-monitor.toml".as_ref())?;
//! let mut graph = eddy_host::dataflow::Graph::build(&pipeline)?; // validated, nothing opened
//! let io = tokio::runtime::Runtime::new()?;
//! let store = eddy_host::checkpoint::StateStore::open("state".as_ref())?; // checkpoints, outboxes
//! graph.open(Some(io.handle()), Some(&store))?; // files opened; network tasks start at the first poll
//! graph.attach_store(&store)?;
//! graph.run(&eddy_host::dataflow::RunControl::default())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod allocator;
pub mod api;
pub mod checkpoint;
pub mod cli;
pub mod config;
#[cfg(test)]
mod damage;
pub mod dataflow;
mod files;
mod internal_events;
pub mod io;
pub mod metrics;
pub mod plugin;
pub mod registry;
pub mod runtime;
pub mod sinks;
pub mod sources;
pub mod state;
pub mod twin;
