//! The shared wasmtime engine, its epoch ticker, and the settings that
//! precompiled plugins must match.

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::ticker::Ticker;

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

/// The share of the address space the pooling allocator may reserve.
const POOL_SHARE_OF_ADDRESS_SPACE: u64 = 8;

/// A wasmtime engine set up for eddy plugins. Cheap to clone.
///
/// Epoch interruption gives every call a deadline at a few percent of cost
/// (fuel would cost two to three times more). The ticker thread holds only a
/// weak handle, so it ends when the last clone of the engine is dropped.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    /// Advances the epoch while guest code runs (see `ticker.rs`).
    ticker: Ticker,
    allocation: Allocation,
    /// The address space probed when the engine was sized, if it was.
    address_space_bits: Option<u32>,
    /// The largest memory and table its instances may start with, if it
    /// was sized for them.
    bounds: Option<InstanceBounds>,
}

/// The largest memory and table an engine's instances may have: the
/// largest caps of the operators it was sized for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InstanceBounds {
    /// Linear memory, in bytes.
    pub(crate) memory_bytes: usize,
    /// Table elements.
    pub(crate) table_elements: usize,
}

/// How plugin instances get their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// Each instance maps its own memory when it starts.
    OnDemand,
    /// Slots reserved once at start and reused: instances start faster and
    /// their memory is reset, not unmapped, when they end.
    Pooling {
        /// Instances that can be live at once.
        slots: u32,
    },
}

/// `[plugins] allocation`: how plugin instances get their memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocationChoice {
    /// A pool of slots reserved at start when it fits an eighth of the
    /// address space, memory mapped on demand otherwise.
    #[default]
    Auto,
    /// Always a pool; refused at start when it does not fit.
    Pooling,
    /// Each instance maps its memory when it starts.
    OnDemand,
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
    // Compiled plugin code named for `perf` (in /tmp/perf-PID.map), for
    // plugin authors profiling their plugins; off otherwise.
    if std::env::var_os("EDDY_PERF_MAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

impl PluginEngine {
    /// Builds an engine whose instances map memory on demand, and starts its ticker.
    pub fn new() -> wasmtime::Result<Self> {
        Self::start(config(), Allocation::OnDemand, None, None)
    }

    /// Builds an engine for up to `instances` live instances with memories of
    /// at most `max_memory` bytes and tables of at most `max_table` elements.
    /// With [`AllocationChoice::Auto`], the pooling allocator is used when
    /// its reservations fit in an eighth of the address space this process
    /// has (probed, since many aarch64 kernels give user space only 39
    /// bits), memory mapped on demand otherwise.
    pub fn for_instances(
        instances: u32,
        max_memory: usize,
        max_table: usize,
        choice: AllocationChoice,
    ) -> wasmtime::Result<Self> {
        let bits = address_space_bits();
        let bounds = Some(InstanceBounds {
            memory_bytes: max_memory,
            table_elements: max_table,
        });
        let slot = MEMORY_RESERVATION + MEMORY_GUARD;
        let budget = (1u64 << bits) / POOL_SHARE_OF_ADDRESS_SPACE;
        let wanted = u64::from(instances) * slot;
        match choice {
            AllocationChoice::OnDemand => {
                return Self::start(config(), Allocation::OnDemand, Some(bits), bounds);
            }
            AllocationChoice::Auto if wanted > budget => {
                tracing::info!(
                    address_space_bits = bits,
                    instances,
                    "plugin memory mapped on demand: a pool for every instance would not fit the address space"
                );
                return Self::start(config(), Allocation::OnDemand, Some(bits), bounds);
            }
            AllocationChoice::Pooling if wanted > budget => {
                return Err(wasmtime::Error::msg(format!(
                    "a pool of {instances} plugin memory slots needs {} GiB of address space, \
                     more than an eighth of this host's {bits} bits: use `allocation = \"auto\"` or `\"on_demand\"`",
                    wanted >> 30
                )));
            }
            _ => {}
        }
        let mut pool = PoolingAllocationConfig::new();
        pool.total_memories(instances)
            .total_core_instances(instances)
            .total_tables(instances)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .max_memory_size(max_memory.max(1 << 16))
            .table_elements(max_table.max(1))
            .max_unused_warm_slots(instances)
            .linear_memory_keep_resident(0);
        let mut config = config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        tracing::debug!(
            address_space_bits = bits,
            slots = instances,
            reserved_gib = wanted >> 30,
            "plugin memory pooled"
        );
        Self::start(
            config,
            Allocation::Pooling { slots: instances },
            Some(bits),
            bounds,
        )
    }

    /// The largest memory and table its instances may start with, if it was sized for them.
    pub(crate) fn bounds(&self) -> Option<InstanceBounds> {
        self.bounds
    }

    /// How instances get their memory.
    pub fn allocation(&self) -> Allocation {
        self.allocation
    }

    /// The bits of address space probed when the engine was sized for its instances.
    pub fn address_space_bits(&self) -> Option<u32> {
        self.address_space_bits
    }

    fn start(
        config: Config,
        allocation: Allocation,
        address_space_bits: Option<u32>,
        bounds: Option<InstanceBounds>,
    ) -> wasmtime::Result<Self> {
        let engine = Engine::new(&config)?;
        let ticker = Ticker::start(&engine)?;
        Ok(PluginEngine {
            engine,
            ticker,
            allocation,
            address_space_bits,
            bounds,
        })
    }

    /// An engine that compiles for this host with its settings, and runs
    /// nothing: for compiling plugins in a child process. (Wasmtime is
    /// built without parallel compilation: compiling takes one core, and
    /// its memory grows with the largest function, not with the cores.)
    #[cfg(feature = "compiler")]
    pub(crate) fn compiler() -> wasmtime::Result<Engine> {
        Engine::new(&config())
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

    /// Its epoch ticker: hold [`Ticker::running`] while guest code may run.
    pub(crate) fn ticker(&self) -> &Ticker {
        &self.ticker
    }
}

/// The bits of virtual address space user space has: from the highest
/// mapping of this process (its stack sits near the top), rounded up.
/// 47 on x86_64, 39 or 48 on aarch64 depending on the kernel; 39 when unknown.
pub fn address_space_bits() -> u32 {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 39;
    };
    let top = maps
        .lines()
        .filter_map(|line| line.split(['-', ' ']).nth(1))
        .filter_map(|end| u64::from_str_radix(end, 16).ok())
        // The kernel's half (x86_64's vsyscall page) is not user space.
        .filter(|end| *end < 1 << 63)
        .max()
        .unwrap_or(1 << 39);
    (64 - (top - 1).leading_zeros()).max(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probed_address_space_is_plausible() {
        let bits = address_space_bits();
        assert!((39..=57).contains(&bits), "{bits} bits");
        if cfg!(target_arch = "x86_64") {
            assert!(bits >= 47, "{bits} bits");
        }
    }

    #[test]
    fn a_pool_is_used_when_it_fits_and_not_when_it_does_not() {
        let engine =
            |instances, choice| PluginEngine::for_instances(instances, 64 << 20, 10_000, choice);
        let small = engine(8, AllocationChoice::Auto).unwrap();
        assert_eq!(small.allocation(), Allocation::Pooling { slots: 8 });
        // A pool of a million 4 GiB slots fits no address space.
        let huge = engine(1 << 20, AllocationChoice::Auto).unwrap();
        assert_eq!(huge.allocation(), Allocation::OnDemand);
        let forced = engine(1 << 20, AllocationChoice::Pooling).err().unwrap();
        assert!(forced.to_string().contains("use `allocation"), "{forced}");
        let asked = engine(8, AllocationChoice::OnDemand).unwrap();
        assert_eq!(asked.allocation(), Allocation::OnDemand);
    }
}
