//! Settings with an upper bound, refused where they are written (so the
//! error names file:line:column) when a value is over it.

use serde::{Deserialize, Deserializer, de::Error};

/// The most linear memory a plugin may be given: 4 GiB, all that a 32-bit
/// WebAssembly memory addresses.
pub(crate) const MAX_MEMORY_BYTES: u64 = 1 << 32;

/// The most table elements a plugin may be given: a thousand times the
/// default, so that a pool of tables for every instance stays small.
pub(crate) const MAX_TABLE_ELEMENTS: u64 = 10_000_000;

fn at_most<E: Error>(value: u64, max: u64, what: &str) -> Result<u64, E> {
    if value > max {
        return Err(E::custom(format!(
            "{value} is over the most {what} can be, {max}"
        )));
    }
    Ok(value)
}

/// `memory_limit_bytes`: at most [`MAX_MEMORY_BYTES`].
pub(super) fn memory_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    at_most(u64::deserialize(d)?, MAX_MEMORY_BYTES, "a plugin's memory")
}

/// An operator's `memory_limit_bytes`, if given: at most [`MAX_MEMORY_BYTES`].
pub(super) fn option_memory_bytes<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(d)?
        .map(|v| at_most(v, MAX_MEMORY_BYTES, "a plugin's memory"))
        .transpose()
}

/// `table_limit_elements`: at most [`MAX_TABLE_ELEMENTS`].
pub(super) fn table_elements<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    at_most(
        u64::deserialize(d)?,
        MAX_TABLE_ELEMENTS,
        "a plugin's tables",
    )
}

/// An operator's `table_limit_elements`, if given: at most [`MAX_TABLE_ELEMENTS`].
pub(super) fn option_table_elements<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(d)?
        .map(|v| at_most(v, MAX_TABLE_ELEMENTS, "a plugin's tables"))
        .transpose()
}
