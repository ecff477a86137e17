//! A recorder that keeps what is recorded before the real one is built,
//! and replays it into that one, in order, when it takes over.

use std::sync::{Arc, Mutex, OnceLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Level, Metadata,
    Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{PrometheusHandle, PrometheusRecorder};

/// Operations kept before the recorder is built; more are dropped, and
/// how many is logged when it takes over. Its clock calibrates for 200 ms
/// at most, in which a pipeline records a few per component and batch.
const KEPT: usize = 100_000;

/// What replayed operations are registered with.
static METADATA: Metadata<'static> = Metadata::new("eddy", Level::INFO, None);

/// One operation on a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    CounterIncrement(u64),
    CounterAbsolute(u64),
    GaugeIncrement(f64),
    GaugeDecrement(f64),
    GaugeSet(f64),
    HistogramRecord(f64, usize),
}

impl Op {
    /// Applies it to the handle `to` gives for `key`, of the op's kind.
    fn apply(self, to: &PrometheusRecorder, key: &Key) {
        match self {
            Op::CounterIncrement(_) | Op::CounterAbsolute(_) => {
                Counter::register(to, key).run(self)
            }
            Op::GaugeIncrement(_) | Op::GaugeDecrement(_) | Op::GaugeSet(_) => {
                Gauge::register(to, key).run(self);
            }
            Op::HistogramRecord(..) => Histogram::register(to, key).run(self),
        }
    }
}

/// The kind of a described metric.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// What is kept until the recorder is built, in the order it came.
#[derive(Debug, Clone, PartialEq)]
enum Kept {
    Op(Key, Op),
    Describe(Kind, KeyName, Option<Unit>, SharedString),
}

impl Kept {
    fn apply(self, to: &PrometheusRecorder) {
        match self {
            Kept::Op(key, op) => op.apply(to, &key),
            Kept::Describe(Kind::Counter, name, unit, text) => {
                to.describe_counter(name, unit, text)
            }
            Kept::Describe(Kind::Gauge, name, unit, text) => to.describe_gauge(name, unit, text),
            Kept::Describe(Kind::Histogram, name, unit, text) => {
                to.describe_histogram(name, unit, text);
            }
        }
    }
}

/// The built recorder, and the handle that renders it.
struct Built {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

/// Operations kept until the recorder is built.
#[derive(Default)]
struct Waiting {
    kept: Vec<Kept>,
    dropped: u64,
}

/// Forwards to the built recorder, or keeps the operation until it is.
#[derive(Default)]
pub(super) struct Deferred {
    built: OnceLock<Built>,
    waiting: Mutex<Waiting>,
}

impl Deferred {
    /// Replays what was kept into `recorder`, which takes every operation
    /// from then on.
    ///
    /// What was kept is replayed a batch at a time outside the lock, so
    /// that threads recording meanwhile (queueing behind it, in order) do
    /// not wait for a whole replay on this thread's low priority. The
    /// recorder takes over under the lock once nothing is left: an
    /// operation that found no recorder and waits for the lock finds it
    /// once it has the lock, after everything kept.
    pub(super) fn take_over(&self, recorder: PrometheusRecorder) {
        let dropped = loop {
            let batch = {
                let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                if waiting.kept.is_empty() {
                    let handle = recorder.handle();
                    let _ = self.built.set(Built { recorder, handle });
                    waiting.kept = Vec::new();
                    break waiting.dropped;
                }
                std::mem::take(&mut waiting.kept)
            };
            for kept in batch {
                kept.apply(&recorder);
            }
        };
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "metrics recorded before the recorder was built were dropped"
            );
        }
    }

    /// What renders the metrics, once the recorder is built.
    pub(super) fn handle(&self) -> Option<&PrometheusHandle> {
        self.built.get().map(|b| &b.handle)
    }

    /// Applies `op` on `key` to the built recorder, or keeps it.
    fn record(&self, key: &Key, op: Op) {
        match self.built.get() {
            Some(built) => op.apply(&built.recorder, key),
            None => self.keep(|| Kept::Op(key.clone(), op)),
        }
    }

    /// Keeps what `kept` makes until the recorder is built, or applies it
    /// to the built one.
    fn keep(&self, kept: impl FnOnce() -> Kept) {
        if let Some(built) = self.built.get() {
            return kept().apply(&built.recorder);
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(built) = self.built.get() {
            drop(waiting);
            return kept().apply(&built.recorder);
        }
        if waiting.kept.len() < KEPT {
            waiting.kept.push(kept());
        } else {
            waiting.dropped += 1;
        }
    }
}

/// The process's recorder: [`Deferred`], shared with what renders it.
pub(super) struct Installed(pub(super) Arc<Deferred>);

/// A metric's handle made before the recorder was built: its operations
/// go through [`Deferred::record`] until the recorder is built, then to
/// the handle the recorder gives for its key.
struct Handle<H> {
    key: Key,
    to: Arc<Deferred>,
    resolved: OnceLock<H>,
}

/// A metric's handle of the built recorder: what a [`Handle`] resolves
/// to, and what kept operations are replayed on.
trait Register: Sized {
    fn register(recorder: &PrometheusRecorder, key: &Key) -> Self;

    /// Runs `op`, one of this kind's.
    fn run(&self, op: Op);
}

impl Register for Counter {
    fn register(recorder: &PrometheusRecorder, key: &Key) -> Self {
        recorder.register_counter(key, &METADATA)
    }

    fn run(&self, op: Op) {
        match op {
            Op::CounterIncrement(v) => self.increment(v),
            Op::CounterAbsolute(v) => self.absolute(v),
            _ => debug_assert!(false, "{op:?} on a counter"),
        }
    }
}

impl Register for Gauge {
    fn register(recorder: &PrometheusRecorder, key: &Key) -> Self {
        recorder.register_gauge(key, &METADATA)
    }

    fn run(&self, op: Op) {
        match op {
            Op::GaugeIncrement(v) => self.increment(v),
            Op::GaugeDecrement(v) => self.decrement(v),
            Op::GaugeSet(v) => self.set(v),
            _ => debug_assert!(false, "{op:?} on a gauge"),
        }
    }
}

impl Register for Histogram {
    fn register(recorder: &PrometheusRecorder, key: &Key) -> Self {
        recorder.register_histogram(key, &METADATA)
    }

    fn run(&self, op: Op) {
        match op {
            Op::HistogramRecord(v, n) => self.record_many(v, n),
            _ => debug_assert!(false, "{op:?} on a histogram"),
        }
    }
}

impl<H: Register> Handle<H> {
    fn new(key: &Key, to: &Arc<Deferred>) -> Arc<Self> {
        Arc::new(Handle {
            key: key.clone(),
            to: to.clone(),
            resolved: OnceLock::new(),
        })
    }

    /// Runs `op` on the built recorder's handle for the key, or keeps it
    /// until the recorder is built.
    fn apply(&self, op: Op) {
        match self.to.built.get() {
            Some(built) => self
                .resolved
                .get_or_init(|| H::register(&built.recorder, &self.key))
                .run(op),
            None => self.to.record(&self.key, op),
        }
    }
}

impl CounterFn for Handle<Counter> {
    fn increment(&self, value: u64) {
        self.apply(Op::CounterIncrement(value));
    }

    fn absolute(&self, value: u64) {
        self.apply(Op::CounterAbsolute(value));
    }
}

impl GaugeFn for Handle<Gauge> {
    fn increment(&self, value: f64) {
        self.apply(Op::GaugeIncrement(value));
    }

    fn decrement(&self, value: f64) {
        self.apply(Op::GaugeDecrement(value));
    }

    fn set(&self, value: f64) {
        self.apply(Op::GaugeSet(value));
    }
}

impl HistogramFn for Handle<Histogram> {
    fn record(&self, value: f64) {
        self.apply(Op::HistogramRecord(value, 1));
    }

    fn record_many(&self, value: f64, count: usize) {
        self.apply(Op::HistogramRecord(value, count));
    }
}

impl Recorder for Installed {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0
            .keep(|| Kept::Describe(Kind::Counter, key, unit, description));
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0
            .keep(|| Kept::Describe(Kind::Gauge, key, unit, description));
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0
            .keep(|| Kept::Describe(Kind::Histogram, key, unit, description));
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        match self.0.built.get() {
            Some(built) => built.recorder.register_counter(key, metadata),
            None => Counter::from_arc(Handle::<Counter>::new(key, &self.0)),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        match self.0.built.get() {
            Some(built) => built.recorder.register_gauge(key, metadata),
            None => Gauge::from_arc(Handle::<Gauge>::new(key, &self.0)),
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        match self.0.built.get() {
            Some(built) => built.recorder.register_histogram(key, metadata),
            None => Histogram::from_arc(Handle::<Histogram>::new(key, &self.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;

    /// The value of the sample line of `name` in `text`.
    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    #[test]
    fn what_is_recorded_before_the_recorder_is_built_is_rendered_after() {
        let deferred = Arc::new(Deferred::default());
        let installed = Installed(deferred.clone());
        let key = |name: &'static str| Key::from_parts(name, vec![metrics::Label::new("c", "x")]);
        // Handles made before, used before and after the recorder is built.
        let counter = installed.register_counter(&key("early_total"), &METADATA);
        let gauge = installed.register_gauge(&key("early_up"), &METADATA);
        counter.increment(3);
        gauge.set(1.0);
        gauge.set(0.0);
        gauge.increment(5.0);
        installed.describe_counter("early_total".into(), None, "counted early".into());
        installed
            .register_histogram(&key("early_seconds"), &METADATA)
            .record(0.25);
        assert!(deferred.handle().is_none(), "nothing renders before");
        deferred.take_over(PrometheusBuilder::new().build_recorder());
        counter.increment(4);
        gauge.decrement(1.0);
        installed
            .register_counter(&key("early_total"), &METADATA)
            .increment(10);
        let text = deferred.handle().expect("built").render();
        // Computed by hand from the operations above, in their order.
        assert_eq!(sample(&text, "early_total"), Some(17.0), "{text}");
        assert_eq!(sample(&text, "early_up"), Some(4.0), "{text}");
        assert_eq!(sample(&text, "early_seconds_count"), Some(1.0), "{text}");
        assert!(text.contains("# HELP early_total counted early"), "{text}");
    }

    #[test]
    fn operations_racing_the_take_over_are_all_counted_in_order() {
        let deferred = Arc::new(Deferred::default());
        let installed = Arc::new(Installed(deferred.clone()));
        // Built first, so that the threads are still recording when it takes over.
        let recorder = PrometheusBuilder::new().build_recorder();
        let start = Arc::new(std::sync::Barrier::new(5));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (installed, deferred, start) =
                    (installed.clone(), deferred.clone(), start.clone());
                std::thread::spawn(move || {
                    let counter = Key::from_name("raced_total");
                    // Each thread's own gauge, set to 1, 2, 3, … in turn.
                    let gauge = Key::from_name(format!("raced_{t}"));
                    let (mut counted, mut after) = (0u64, 0);
                    start.wait();
                    while after < 1000 {
                        if counted >= 5000 && deferred.handle().is_none() {
                            // Bounded before it takes over, well within what is kept.
                            std::thread::yield_now();
                            continue;
                        }
                        installed.register_counter(&counter, &METADATA).increment(1);
                        counted += 1;
                        installed
                            .register_gauge(&gauge, &METADATA)
                            .set(counted as f64);
                        if deferred.handle().is_some() {
                            after += 1;
                        }
                    }
                    counted
                })
            })
            .collect();
        start.wait();
        std::thread::sleep(std::time::Duration::from_millis(2));
        deferred.take_over(recorder);
        let counted: Vec<u64> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        let text = deferred.handle().expect("built").render();
        let total: u64 = counted.iter().sum();
        assert_eq!(sample(&text, "raced_total"), Some(total as f64));
        // A replayed set coming after a forwarded one would leave an older value.
        for (t, counted) in counted.iter().enumerate() {
            assert_eq!(
                sample(&text, &format!("raced_{t}")),
                Some(*counted as f64),
                "{text}"
            );
        }
    }

    #[test]
    fn beyond_what_it_keeps_operations_are_dropped_not_held() {
        let deferred = Deferred::default();
        let key = Key::from_name("many_total");
        for _ in 0..KEPT + 10 {
            deferred.record(&key, Op::CounterIncrement(1));
        }
        let waiting = deferred.waiting.lock().expect("lock");
        assert_eq!((waiting.kept.len(), waiting.dropped), (KEPT, 10));
    }
}
