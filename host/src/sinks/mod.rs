//! Sinks: where a pipeline's results go.
//!
//! The sink contract is the `eddy-sink` crate; sink kinds live in folders
//! of their own, each with its settings type and its sink, and are listed
//! once in the [registry](crate::registry). The built-in kinds are here:
//! [`stdout`], [`null`], [`twin`] (latest values on device twins) and
//! [`dead_letter`], which also holds every pipeline's dead-letter log. [`MemorySink`] keeps records in memory for
//! tests and embedding.

pub mod dead_letter;
mod memory;
pub mod null;
pub mod stdout;
pub mod twin;

pub use dead_letter::{DeadLetter, DeadLetterEntry, DeadLetterInput};
pub use eddy_sink::{Out, Sink, SinkError};
pub use memory::MemorySink;
pub use null::NullSink;
pub use stdout::StdoutSink;
