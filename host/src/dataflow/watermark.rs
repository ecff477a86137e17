//! Watermark generation and combination.

/// Flink's bounded-out-of-orderness watermark, advanced after every record:
/// `max event time seen − bound − 1 ms`.
#[derive(Debug, Clone)]
pub struct BoundedOutOfOrderness {
    bound_ms: i64,
    max_seen: Option<i64>,
}

impl BoundedOutOfOrderness {
    /// A generator allowing records to be up to `bound_ms` out of order.
    pub fn new(bound_ms: u64) -> Self {
        BoundedOutOfOrderness {
            bound_ms: bound_ms.min(i64::MAX as u64) as i64,
            max_seen: None,
        }
    }

    /// Takes a record's time; returns the new watermark when it advanced.
    pub fn on_record(&mut self, time: i64) -> Option<i64> {
        if self.max_seen.is_some_and(|m| time <= m) {
            return None;
        }
        self.max_seen = Some(time);
        Some(time.saturating_sub(self.bound_ms).saturating_sub(1))
    }
}

/// An operator's watermark: the minimum over its inputs, never going back.
#[derive(Debug, Clone)]
pub(crate) struct InputWatermarks {
    inputs: Vec<i64>,
    current: i64,
}

impl InputWatermarks {
    pub(crate) fn new(inputs: usize) -> Self {
        InputWatermarks {
            inputs: vec![i64::MIN; inputs],
            current: i64::MIN,
        }
    }

    /// The combined watermark.
    pub(crate) fn current(&self) -> i64 {
        self.current
    }

    /// Takes input `input`'s watermark; returns the combined one when it advanced.
    pub(crate) fn advance(&mut self, input: usize, watermark: i64) -> Option<i64> {
        let slot = &mut self.inputs[input];
        if watermark <= *slot {
            return None;
        }
        *slot = watermark;
        let min = self.inputs.iter().copied().min().unwrap_or(i64::MIN);
        (min > self.current).then(|| {
            self.current = min;
            min
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_is_max_minus_bound_minus_one_and_only_advances() {
        let mut w = BoundedOutOfOrderness::new(2000);
        assert_eq!(w.on_record(10_000), Some(7_999));
        assert_eq!(w.on_record(9_000), None);
        assert_eq!(w.on_record(10_000), None);
        assert_eq!(w.on_record(10_001), Some(8_000));
    }

    #[test]
    fn zero_bound_is_monotonous_timestamps() {
        let mut w = BoundedOutOfOrderness::new(0);
        assert_eq!(w.on_record(5), Some(4));
    }

    #[test]
    fn combined_watermark_is_the_minimum_over_inputs() {
        let mut w = InputWatermarks::new(2);
        assert_eq!(w.advance(0, 100), None);
        assert_eq!(w.advance(1, 50), Some(50));
        assert_eq!(w.advance(1, 200), Some(100));
        assert_eq!(w.advance(0, 90), None);
        assert_eq!(w.current(), 100);
    }
}
