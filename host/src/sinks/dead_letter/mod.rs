//! The dead-letter log and the `dead_letter` sink.
//!
//! Every pipeline has one log ([`DeadLetter`], `[pipeline] dead_letter_path`):
//! input a plugin call failed on, late records nobody routes, input a
//! source could not read, records a sink refused, each with the reason, as
//! JSON lines. The engine hands it [`DeadLetterEntry`]s as one of its
//! outputs. The `dead_letter` sink kind routes any output there too.

mod config;
mod log;
mod sink;

pub use config::DeadLetterConfig;
pub use log::{DeadLetter, DeadLetterEntry, DeadLetterInput, DeadTimer, DeadWindow};
pub use sink::DeadLetterSink;
