//! The shared wasmtime engine, its epoch ticker, and the settings that
//! precompiled plugins must match.

use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine};

/// How often the ticker advances the epoch: the granularity of deadlines.
const TICK: Duration = Duration::from_millis(5);

/// The wasmtime version eddy is pinned to (the workspace's `=48.0.8`); part
/// of the engine fingerprint.
const WASMTIME_VERSION: &str = "48.0.8";

/// Address space reserved per linear memory. Explicit, not defaults: 4 GiB
/// lets the compiled code drop bounds checks, and a 39-bit aarch64 address
/// space (512 GiB) still holds a hundred such memories.
const MEMORY_RESERVATION: u64 = 1 << 32;
/// Guard pages after each memory.
const MEMORY_GUARD: u64 = 32 << 20;
/// Memories grow in place within their reservation, so none is kept for moving.
const MEMORY_RESERVATION_FOR_GROWTH: u64 = 0;
/// The most wasm stack a call may use.
const MAX_WASM_STACK: usize = 512 << 10;

/// A wasmtime engine set up for eddy plugins. Cheap to clone.
///
/// Epoch interruption gives every call a deadline at a few percent of cost
/// (fuel would cost two to three times more). The ticker thread holds only a
/// weak handle, so it ends when the last clone of the engine is dropped.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
}

/// The engine settings of every eddy engine, for the host and the precompiler alike.
fn config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    #[cfg(feature = "compiler")]
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config.memory_reservation(MEMORY_RESERVATION);
    config.memory_guard_size(MEMORY_GUARD);
    config.memory_reservation_for_growth(MEMORY_RESERVATION_FOR_GROWTH);
    config.max_wasm_stack(MAX_WASM_STACK);
    config
}

impl PluginEngine {
    /// Builds the engine and starts its ticker.
    pub fn new() -> wasmtime::Result<Self> {
        let engine = Engine::new(&config())?;
        let weak = engine.weak();
        thread::Builder::new()
            .name("eddy-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    thread::sleep(TICK);
                }
            })?;
        Ok(PluginEngine { engine })
    }

    /// An engine that compiles for `target` with the host's settings, for
    /// precompiling plugins on a build machine.
    #[cfg(feature = "compiler")]
    pub fn precompiler(target: &str) -> wasmtime::Result<Engine> {
        let mut config = config();
        config.target(target)?;
        Engine::new(&config)
    }

    /// The fingerprint of the engine settings for `target`: an artifact
    /// precompiled with another fingerprint cannot be loaded. It covers the
    /// wasmtime version, eddy's ABI version, the target and every setting
    /// that shapes compiled code, and is the same whether or not the host
    /// was built with the compiler.
    pub fn fingerprint(target: &str) -> String {
        let settings = format!(
            "wasmtime {WASMTIME_VERSION}; eddy abi {}; target {target}; epoch interruption; \
             cranelift opt speed; memory reservation {MEMORY_RESERVATION}; guard {MEMORY_GUARD}; \
             reservation for growth {MEMORY_RESERVATION_FOR_GROWTH}; max wasm stack {MAX_WASM_STACK}",
            eddy_abi::ABI_VERSION
        );
        Sha256::digest(settings.as_bytes())[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The target triple this host runs on.
    pub fn host_target() -> &'static str {
        if cfg!(target_arch = "aarch64") {
            "aarch64-unknown-linux-gnu"
        } else {
            "x86_64-unknown-linux-gnu"
        }
    }

    /// The wasmtime engine.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Epoch ticks that cover `deadline`: at least the deadline, at most one tick more.
    pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
        (deadline.as_micros() / TICK.as_micros()) as u64 + 1
    }
}
