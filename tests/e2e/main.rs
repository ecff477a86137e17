//! End-to-end tests: the real `eddy` binary, real compiled plugins, real files.
//!
//! The plugins are the guest examples as `cargo xtask guests` builds them into
//! `target/plugins/`; `cargo xtask test` builds them before running these.

mod abi;
mod api;
mod ble;
mod certs;
mod check;
mod codec;
mod conformance;
mod crash;
mod demo;
mod grants;
mod hostile;
mod hostile_suite;
mod idleness;
mod kafka;
mod kafka_tls;
mod late;
mod modbus;
mod modbus_peer;
mod mqtt;
#[path = "../netns.rs"]
#[allow(
    dead_code,
    reason = "shared with the fleet test, which reads other fields"
)]
mod netns;
mod outage;
mod peer;
mod plugin_test;
mod processing_time;
mod release;
mod seeds_job;
mod shared_broker;
mod signing;
mod state_cmd;
mod storm;
mod support;
mod swap;
mod twin;
mod upgrade;
