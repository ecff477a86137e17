//! The shared wasmtime engine and its epoch ticker.

use std::thread;
use std::time::Duration;

use wasmtime::{Config, Engine, OptLevel};

/// How often the ticker advances the epoch: the granularity of deadlines.
const TICK: Duration = Duration::from_millis(5);

/// A wasmtime engine set up for eddy plugins. Cheap to clone.
///
/// Epoch interruption gives every call a deadline at a few percent of cost
/// (fuel would cost two to three times more). The ticker thread holds only a
/// weak handle, so it ends when the last clone of the engine is dropped.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
}

impl PluginEngine {
    /// Builds the engine and starts its ticker.
    pub fn new() -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.cranelift_opt_level(OptLevel::Speed);
        // Explicit, not defaults: a 4 GiB reservation lets Cranelift drop bounds
        // checks; growth is in place so no reserve for moving is needed. Small
        // aarch64 devices with 39-bit address spaces still fit dozens of plugins.
        config.memory_reservation(1 << 32);
        config.memory_guard_size(32 << 20);
        config.memory_reservation_for_growth(0);
        config.max_wasm_stack(512 << 10);
        let engine = Engine::new(&config)?;
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

    /// The wasmtime engine.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Epoch ticks that cover `deadline`: at least the deadline, at most one tick more.
    pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
        (deadline.as_micros() / TICK.as_micros()) as u64 + 1
    }
}
