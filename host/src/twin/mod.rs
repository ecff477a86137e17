//! Device twins, compatible with AWS IoT's Device Shadow service.
//!
//! [`document`] is the shadow document algebra (merge, delta, limits),
//! [`topics`] the service's reserved topics, and [`shadow`] the device's
//! side of the protocol without I/O.

pub mod document;
pub mod shadow;
pub mod topics;
