//! Watermark generation and combination.

/// Flink's bounded-out-of-orderness watermark, advanced after every record:
/// `max event time seen − bound − 1 ms`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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

    /// The bound, in ms.
    pub fn bound_ms(&self) -> u64 {
        self.bound_ms as u64
    }

    /// Takes a record's time; returns the new watermark when it advanced.
    pub fn on_record(&mut self, time: i64) -> Option<i64> {
        if self.max_seen.is_some_and(|m| time <= m) {
            return None;
        }
        self.max_seen = Some(time);
        Some(time.saturating_sub(self.bound_ms).saturating_sub(1))
    }

    /// Takes a watermark the source keeps itself (see
    /// `eddy_driver::Driver::watermark`); returns it when it is ahead of
    /// the current one, which then never goes back.
    pub fn advance_to(&mut self, watermark: i64) -> Option<i64> {
        let current = self
            .max_seen
            .map(|m| m.saturating_sub(self.bound_ms).saturating_sub(1));
        if watermark == i64::MIN || current.is_some_and(|c| watermark <= c) {
            return None;
        }
        // The time whose bounded watermark is `watermark`.
        self.max_seen = Some(watermark.saturating_add(1).saturating_add(self.bound_ms));
        Some(watermark)
    }
}

/// One input's watermark and status.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Input {
    watermark: i64,
    /// Not idle.
    active: bool,
    /// Active and caught up with the combined watermark, so it counts.
    aligned: bool,
}

/// An operator's watermark: the minimum over its inputs that count, never
/// going back (Flink's `StatusWatermarkValve`). An idle input stops counting;
/// when it has records again it counts once its watermark has caught up with
/// the combined one. When every input is idle, the watermark holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct InputWatermarks {
    inputs: Vec<Input>,
    current: i64,
}

impl InputWatermarks {
    pub(crate) fn new(inputs: usize) -> Self {
        let input = Input {
            watermark: i64::MIN,
            active: true,
            aligned: true,
        };
        InputWatermarks {
            inputs: vec![input; inputs],
            current: i64::MIN,
        }
    }

    /// Takes back the watermarks of a checkpoint, every input active: one
    /// that is still idle turns idle again after its timeout.
    pub(crate) fn restore(&mut self, mut saved: InputWatermarks) {
        if saved.inputs.len() != self.inputs.len() {
            // The operator's inputs changed: only the combined watermark carries over.
            saved.inputs = self.inputs.clone();
            for input in &mut saved.inputs {
                input.watermark = saved.current;
            }
        }
        for input in &mut saved.inputs {
            input.active = true;
            input.aligned = input.watermark >= saved.current;
        }
        *self = saved;
    }

    /// The combined watermark.
    pub(crate) fn current(&self) -> i64 {
        self.current
    }

    /// Whether every input is idle.
    pub(crate) fn idle(&self) -> bool {
        self.inputs.iter().all(|i| !i.active)
    }

    /// Input `input` has a record: it is active again.
    pub(crate) fn activate(&mut self, input: usize) {
        let current = self.current;
        let slot = &mut self.inputs[input];
        if !slot.active {
            slot.active = true;
            slot.aligned = slot.watermark >= current;
        }
    }

    /// Takes input `input`'s watermark; returns the combined one when it advanced.
    pub(crate) fn advance(&mut self, input: usize, watermark: i64) -> Option<i64> {
        self.activate(input);
        let current = self.current;
        let slot = &mut self.inputs[input];
        if watermark > slot.watermark {
            slot.watermark = watermark;
        }
        if slot.watermark >= current {
            slot.aligned = true;
        }
        self.recompute()
    }

    /// Input `input` went idle; returns the combined watermark when that advanced it.
    pub(crate) fn set_idle(&mut self, input: usize) -> Option<i64> {
        let slot = &mut self.inputs[input];
        slot.active = false;
        slot.aligned = false;
        self.recompute()
    }

    fn recompute(&mut self) -> Option<i64> {
        let min = self
            .inputs
            .iter()
            .filter(|i| i.active && i.aligned)
            .map(|i| i.watermark)
            .min()?;
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
    fn a_source_watermark_only_advances_and_records_after_it_keep_it() {
        let mut w = BoundedOutOfOrderness::new(2000);
        assert_eq!(w.advance_to(i64::MIN), None, "no watermark yet");
        assert_eq!(w.advance_to(5_000), Some(5_000));
        assert_eq!(w.advance_to(4_000), None, "never back");
        assert_eq!(w.advance_to(5_000), None);
        assert_eq!(w.advance_to(7_500), Some(7_500));
        // A checkpointed generator keeps it: a record behind it moves nothing.
        assert_eq!(w.on_record(9_000), None);
        assert_eq!(w.on_record(9_502), Some(7_501));
    }

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
    fn an_idle_input_stops_holding_the_watermark_and_counts_again_once_caught_up() {
        let mut w = InputWatermarks::new(2);
        w.advance(0, 100);
        assert_eq!(w.advance(1, 50), Some(50));
        // Input 1 goes quiet: input 0 alone decides.
        assert_eq!(w.set_idle(1), Some(100));
        assert_eq!(w.advance(0, 300), Some(300));
        // Input 1 resumes behind: it does not pull the watermark back...
        w.activate(1);
        assert_eq!(w.advance(1, 200), None);
        assert_eq!(w.current(), 300);
        // While it is behind, input 0 alone moves the watermark...
        assert_eq!(w.advance(0, 500), Some(500));
        assert_eq!(w.advance(1, 400), None);
        // ...and once it has caught up it counts again: now it holds input 0 back.
        assert_eq!(w.advance(1, 600), None);
        assert_eq!(w.advance(0, 700), Some(600));
    }

    #[test]
    fn when_every_input_is_idle_the_watermark_holds() {
        let mut w = InputWatermarks::new(1);
        w.advance(0, 10);
        assert_eq!(w.set_idle(0), None);
        assert!(w.idle());
        assert_eq!(w.current(), 10);
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
