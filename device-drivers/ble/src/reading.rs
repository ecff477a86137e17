//! What a decoder gives: readings, or why there are none.

/// One value a sensor sent: a field name (with its unit where it has one,
/// e.g. `pressure_hpa`) and the value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The field it becomes in a record.
    pub name: &'static str,
    /// The value, scaled to the unit the name says.
    pub value: f64,
}

impl Reading {
    pub(crate) fn new(name: &'static str, value: f64) -> Self {
        Reading { name, value }
    }
}

/// Why bytes are not a readable advertisement or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer or more bytes than the format has.
    #[error("{format}: {got} bytes, expected {expected}")]
    Length {
        /// The format.
        format: &'static str,
        /// How many bytes came.
        got: usize,
        /// How many the format has.
        expected: &'static str,
    },
    /// A version, format or marker byte this decoder does not read.
    #[error("{format}: {what}")]
    Unsupported {
        /// The format.
        format: &'static str,
        /// What is not supported.
        what: String,
    },
}
