//! The WebAssembly plugin host.
//!
//! - [`PluginEngine`]: one wasmtime `Engine` with epoch interruption and the
//!   ticker thread that advances epochs, so every call can have a deadline.
//! - [`PluginModule`]: a compiled plugin with its [`Manifest`], checked
//!   against this host's ABI version, with its `Linker` and `InstancePre`
//!   built once.
//! - [`PluginRunner`]: what an operator holds. It calls the plugin through
//!   `TypedFunc`s, catches every failure as a [`PluginFault`], and after a
//!   trap drops the instance and starts a fresh one (a new `Store`) after an
//!   exponential backoff. Keyed state and timers live outside the instance,
//!   in the runner's [`crate::state::OperatorState`]. A version that keeps
//!   failing is quarantined ([`QuarantinePolicy`]); another version can be
//!   swapped in between two calls, on probation until it has proven itself.
//!
//! The guest side of the contract is documented in `eddy-abi`.

pub mod bundle;
mod caps;
mod compile;
mod deadline;
mod engine;
mod fault;
pub mod grants;
mod health;
mod imports;
mod instance;
mod intern;
mod loader;
mod manifest;
mod module;
mod runner;
pub mod signing;
mod swap;
mod swapped;
mod ticker;

pub use caps::{Cap, PluginCaps};
#[cfg(feature = "compiler")]
pub use compile::worker as compile_worker;
pub use compile::{CompileLimits, compile_in_child_processes};
pub use eddy_abi::{Manifest, OperatorKind};
pub use engine::{Allocation, AllocationChoice, PluginEngine, address_space_bits};
pub use fault::PluginFault;
pub use health::QuarantinePolicy;
pub use loader::Loader;
pub use manifest::read_manifest;
pub use module::{Entry, LoadError, PluginModule};
pub use runner::{OperatorLogic, OutputRun, Outputs, PluginLimits, PluginRunner, RunnerCounters};
pub use swap::{SwapError, SwapOutcome, SwapReport};
pub use swapped::{KeptSwaps, SwappedPlugins};
