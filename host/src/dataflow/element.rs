//! What flows along the edges of a pipeline.

use eddy_abi::Record;

/// A record, or a promise that no record older than a time follows.
#[derive(Debug, Clone, PartialEq)]
pub enum Element {
    /// One event.
    Record(Record),
    /// Event time has reached this point: later records should not be older.
    Watermark(i64),
    /// The input has had no records for its idle timeout: until it has some
    /// again, it does not hold back the watermark of what it feeds.
    Idle,
}
