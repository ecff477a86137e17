//! The I/O layer: what stands between the engine and the outside world.
//!
//! Sources and sinks are opened here ([`source::open`], [`SinkPort`]) from
//! their kinds' settings. A source that runs as an async task is started at
//! its first poll and supervised on the runtime: after a failure it waits
//! out an exponential backoff with jitter ([`Backoff`]) and runs again. A
//! sink holds its records in order while its peer is down, up to its
//! buffer's bound, with an explicit and counted policy for when that is
//! full; a sink that runs as an async task delivers from that buffer,
//! batch by batch, at least once. Each component's [`Health`] (up,
//! retrying since when and why, failed, ended, with counters) is what
//! `eddy status` and `/metrics` show.

mod backoff;
mod health;
pub(crate) mod sink;
pub(crate) mod source;

pub(crate) use backoff::Backoff;
pub use health::{ComponentState, ComponentStatus, DeviceStatus};
pub(crate) use health::{Health, Role};
pub(crate) use sink::SinkPort;
pub(crate) use source::IoContext;
