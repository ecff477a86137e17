//! Incremental aggregates: a small accumulator per key and window, instead of
//! every record.
//!
//! Implement [`Aggregate`] and mark the impl with `#[eddy_sdk::aggregate]`.
//! The host keeps each window's accumulator (serialized with postcard) and
//! hands the plugin only the records that arrived since, so window state stays
//! small however many records a window holds. Sessions that merge have their
//! accumulators merged with [`Aggregate::merge`]. When a window fires,
//! [`Aggregate::result`] turns its accumulator into output.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Context, RecordRef, Result};

/// The window a result is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowInfo<'a> {
    /// The key.
    pub key: &'a str,
    /// First millisecond (inclusive).
    pub start: i64,
    /// End (exclusive); results are stamped `end - 1` by convention.
    pub end: i64,
    /// 0 for the first firing, `n` for the n-th update (late records).
    pub firing: u32,
}

/// Flink's `AggregateFunction`: `create` is [`Default`], then `add`, `merge`
/// and `result`.
pub trait Aggregate: 'static {
    /// The operator's params.
    type Params: DeserializeOwned + 'static;
    /// The accumulator; `Default` creates an empty one. The host keeps it
    /// encoded between folds, and a window's result may be emitted from the
    /// accumulator as folded or as decoded again: it must decode to what was
    /// encoded (no `#[serde(skip)]` caches that `result` reads).
    type Acc: Default + Serialize + DeserializeOwned;

    /// Adds one record.
    fn add(acc: &mut Self::Acc, record: &RecordRef<'_>, params: &Self::Params);

    /// Merges `other` into `acc` (sessions that a record joined).
    fn merge(acc: &mut Self::Acc, other: Self::Acc);

    /// Emits the window's result.
    fn result(
        acc: &Self::Acc,
        window: &WindowInfo<'_>,
        ctx: &mut Context<Self::Params>,
    ) -> Result<()>;
}
