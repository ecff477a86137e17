//! A bounded source over records already in memory.

use eddy_driver::{Driver, DriverError, Poll, Record};

/// Replays a list of records, then ends. `eddy plugin test` feeds plugins with it.
pub struct RecordsDriver {
    records: std::vec::IntoIter<Record>,
}

impl RecordsDriver {
    /// A source that yields these records in order.
    pub fn new(records: Vec<Record>) -> Self {
        RecordsDriver {
            records: records.into_iter(),
        }
    }
}

impl Driver for RecordsDriver {
    fn poll(&mut self, out: &mut Vec<Record>, max: usize) -> Result<Poll, DriverError> {
        let before = out.len();
        out.extend(self.records.by_ref().take(max));
        Ok(if out.len() == before {
            Poll::Ended
        } else {
            Poll::Ready
        })
    }
}
