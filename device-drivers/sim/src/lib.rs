//! The `sim` driver: simulated UPS battery strings and room sensors.
//!
//! It stands in for real devices in the demo, the tests and the benchmarks.
//! Every device reads once per `interval_ms` of simulated event time; the
//! simulated clock runs at `speed` times the wall clock (or as fast as the
//! pipeline takes records, with `speed = 0`). Readings come from a seeded
//! generator, so one seed always gives the same records in the same order.
//! With a start time set, a checkpoint holds the simulation's place (its
//! clock, its generator, the readings it holds back), and a restarted
//! pipeline goes on from there as if it had never stopped.
//!
//! - A UPS has `strings` battery strings of `cells_per_string` cells; each cell
//!   reports `voltage` (V), `temperature` (°C) and `resistance` (mΩ) under the
//!   key `UPS/string-S/cell-CC`.
//! - A room sensor reports `temperature` (°C) and `humidity` (%) under its name.
//! - Faults ([`FaultConfig`]) make a chosen cell overheat from a given moment.
//! - Disorder ([`DisorderConfig`]) holds some readings back, so they arrive
//!   out of order or, when held longer than a pipeline's out-of-orderness
//!   bound, late.
//!
//! [`SimConfig`] is what a pipeline's `[sources.NAME.sim]` table holds, and
//! [`SimDriver`] implements [`eddy_driver::Driver`].

#![warn(missing_docs, unreachable_pub)]

mod config;
mod devices;
mod driver;

pub use config::{DisorderConfig, FaultConfig, FaultKind, RoomConfig, SimConfig, UpsConfig};
pub use driver::SimDriver;
