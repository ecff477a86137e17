//! Device twins, compatible with AWS IoT's Device Shadow service.
//!
//! [`document`] is the shadow document algebra (merge, delta, limits),
//! [`topics`] the service's reserved topics, and [`shadow`] the device's
//! side of the protocol without I/O. [`local`] keeps each twin in the
//! host's state store; [`service`] is the sync loop of this host's twin
//! (`[twin]`, [`TwinConfig`]), which applies desired params to running
//! plugins and reports the host's status.

pub mod commands;
mod config;
pub mod document;
pub mod local;
pub mod reports;
#[cfg(feature = "mqtt")]
pub mod service;
pub mod shadow;
pub mod topics;

pub use config::TwinConfig;
