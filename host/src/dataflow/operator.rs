//! An operator: a plugin fed records, watermarks and timers.

use std::sync::Arc;

use eddy_abi::{LATE_OUTPUT, OperatorKind, Record, TimeDomain, Timer, TimerInput, Value, encode};

use super::element::Element;
use super::result_id::{Cause, IdAssigner, ResultId};
use super::watermark::InputWatermarks;
use super::window::{Accumulator, Added, FiredWindow, Windowing};
use crate::config::WindowTime;
use crate::internal_events::LateRecords;
use crate::plugin::{Entry, OperatorLogic, OutputRun, Outputs, PluginFault};
use crate::sinks::dead_letter::{DeadTimer, DeadWindow};
use crate::sinks::{DeadLetterEntry, DeadLetterInput};

/// Encoded window input is handed over in calls of about this many bytes.
///
/// The call buffer and the plugin's linear memory grow to hold a call's
/// input, and a linear memory never shrinks: when a thousand keys' windows
/// fire at once, larger calls would keep that much more memory resident
/// for what a call saves (a few microseconds).
const WINDOW_CALL_BYTES: usize = 256 << 10;

/// Due timers are handed to `on_timer` in calls of at most this many.
const TIMER_CALL_MAX: usize = 4096;

/// Rounds of timers that `on_timer` sets already due, fired after the
/// timers due before it; the bound stops a plugin that always sets one.
const TIMER_ROUNDS: usize = 64;

/// The most records held for a plugin that waits out a restart backoff;
/// input beyond goes to the dead-letter log, with the reason.
const HOLD_RECORDS: usize = 100_000;

/// Input that arrived while the plugin waited out a restart backoff, held
/// for the fresh instance.
enum Held {
    /// Records for a `process` call, with their input numbers.
    Records(Pending),
    /// Fired windows.
    Windows(Vec<FiredWindow>),
}

impl Held {
    fn records(&self) -> usize {
        match self {
            Held::Records(p) => p.records.len(),
            Held::Windows(w) => w.iter().map(|w| w.count as usize).sum(),
        }
    }

    fn dead_letter(self) -> DeadLetterInput {
        match self {
            Held::Records(p) => DeadLetterInput::Records(p.records),
            Held::Windows(w) => dead_windows(&w),
        }
    }
}

/// One operator node of a running pipeline.
pub(crate) struct OperatorNode {
    pub(crate) name: Arc<str>,
    pub(crate) logic: Box<dyn OperatorLogic>,
    key_by: Option<Arc<str>>,
    /// For window operators: how records are grouped.
    pub(crate) windowing: Option<Windowing>,
    pub(crate) watermarks: InputWatermarks,
    batch_size: usize,
    /// Batches of elements delivered since the last step, with their input index.
    pub(crate) inbox: Vec<(usize, Vec<Element>)>,
    /// Reused encoding buffer.
    buf: Vec<u8>,
    /// Records taken in so far; numbers each input record for result ids.
    pub(crate) records_in: u64,
    /// Plugin calls made so far.
    pub(crate) calls: u64,
    /// Timers fired so far.
    pub(crate) timers_fired: u64,
    /// The watermark at which expired keyed state is dropped next.
    next_expiry: i64,
    /// Input held while the plugin waits out a restart backoff, in order.
    held: std::collections::VecDeque<Held>,
    /// Records in `held`.
    held_records: usize,
    /// Event-time timers came due while the plugin could not take calls:
    /// they fire once it can.
    timers_waiting: bool,
}

/// What a step produced, in order: runs of records with their ids per output
/// name (`""` is the main output). Order is kept across outputs, so that a
/// sink taking several of them sees the same sequence whatever the batch sizes.
pub(crate) type Emitted = Vec<(String, Vec<(Record, ResultId)>)>;

/// What a step produced: records for each output, and dead letters (input
/// a call failed on, records without the field to key by). Writing the
/// dead letters is the I/O layer's business, not the operator's.
#[derive(Default)]
pub(crate) struct Output {
    pub(crate) runs: Emitted,
    pub(crate) dead: Vec<DeadLetterEntry>,
}

impl Output {
    fn dead_letter(&mut self, node: &Arc<str>, reason: String, input: DeadLetterInput) {
        self.dead.push(DeadLetterEntry {
            node: node.clone(),
            reason,
            input,
        });
    }
}

/// Appends records for `output`, joining the last run if it is the same output.
fn push_run(
    emitted: &mut Emitted,
    output: &str,
    elements: impl IntoIterator<Item = (Record, ResultId)>,
) {
    match emitted.last_mut() {
        Some((name, run)) if name == output => run.extend(elements),
        _ => emitted.push((output.to_owned(), elements.into_iter().collect())),
    }
}

impl OperatorNode {
    pub(crate) fn new(
        name: &str,
        logic: Box<dyn OperatorLogic>,
        inputs: usize,
        key_by: Option<&str>,
        windowing: Option<Windowing>,
        batch_size: usize,
    ) -> Self {
        OperatorNode {
            name: name.into(),
            logic,
            key_by: key_by.map(Into::into),
            windowing,
            watermarks: InputWatermarks::new(inputs),
            batch_size: batch_size.max(1),
            inbox: Vec::new(),
            buf: Vec::new(),
            records_in: 0,
            calls: 0,
            timers_fired: 0,
            next_expiry: i64::MIN,
            held: std::collections::VecDeque::new(),
            held_records: 0,
            timers_waiting: false,
        }
    }

    /// Whether it holds input for a plugin waiting out a restart backoff:
    /// its results for that input are still to come, so its watermark must
    /// not go on downstream, and no checkpoint can be taken.
    pub(crate) fn holding(&self) -> bool {
        !self.held.is_empty() || self.timers_waiting
    }

    /// Whether calls must wait: the plugin restarts after a failure, or
    /// earlier input waits for it.
    fn must_wait(&self) -> bool {
        !self.held.is_empty() || self.logic.restarting_until().is_some()
    }

    /// Holds input for the plugin until its restart; beyond the bound, the
    /// input goes to the dead-letter log.
    fn hold(&mut self, held: Held, out: &mut Output) {
        let records = held.records();
        if self.held_records + records > HOLD_RECORDS {
            let reason = format!(
                "plugin `{}` was restarting after a failure and {} records were held for it already",
                self.logic.name(),
                self.held_records
            );
            out.dead_letter(&self.name, reason, held.dead_letter());
            return;
        }
        self.held_records += records;
        self.held.push_back(held);
    }

    /// Hands held input to the plugin once it takes calls again, in order;
    /// stops if it fails again. Timers that came due meanwhile fire after.
    fn release(&mut self, out: &mut Output) {
        if !self.holding() {
            return;
        }
        while self.logic.restarting_until().is_none() {
            let Some(held) = self.held.pop_front() else {
                break;
            };
            self.held_records -= held.records();
            match held {
                Held::Records(mut pending) => self.call_process_now(&mut pending, out),
                Held::Windows(fired) => self.call_window_now(fired, out),
            }
        }
        if self.held.is_empty() && self.logic.restarting_until().is_none() {
            self.timers_waiting = false;
            let watermark = self.watermark();
            self.fire_timers(TimeDomain::EventTime, watermark, out);
        }
    }

    /// Sets the keyed-state clock to the watermark before a call, so that
    /// values written in it expire (with a TTL) at the same point on replay.
    fn sync_state_clock(&mut self) {
        let watermark = self.watermark();
        self.logic.state_mut().keyed.set_clock(watermark);
    }

    /// Drops expired keyed state every quarter of its TTL of event time.
    fn expire_state(&mut self) {
        let watermark = self.watermark();
        let keyed = &mut self.logic.state_mut().keyed;
        let Some(ttl) = keyed.ttl() else {
            return;
        };
        if watermark < self.next_expiry {
            return;
        }
        keyed.set_clock(watermark);
        keyed.expire();
        self.next_expiry = watermark.saturating_add((ttl / 4).max(1));
    }

    /// Numbers the next input record.
    fn next_record(&mut self) -> u64 {
        self.records_in += 1;
        self.records_in - 1
    }

    /// Numbers the next plugin call.
    fn next_call(&mut self) -> u64 {
        self.calls += 1;
        self.calls - 1
    }

    /// The operator's watermark.
    pub(crate) fn watermark(&self) -> i64 {
        self.watermarks.current()
    }

    /// Whether every input is idle, so this operator's outputs are idle too.
    pub(crate) fn idle(&self) -> bool {
        self.watermarks.idle()
    }

    /// The combined watermark after a watermark or idleness element, if it advanced.
    fn watermark_change(&mut self, input: usize, element: &Element) -> Option<i64> {
        match element {
            Element::Watermark(w) => self.watermarks.advance(input, *w),
            Element::Idle => self.watermarks.set_idle(input),
            Element::Record(_) => None,
        }
    }

    /// Takes in the inbox; adds what to send downstream, and the input of
    /// failed calls as dead letters, to `out`.
    pub(crate) fn step(&mut self, out: &mut Output) {
        self.release(out);
        let inbox = std::mem::take(&mut self.inbox);
        match self.logic.kind() {
            OperatorKind::Process => self.step_process(inbox, out),
            OperatorKind::Window | OperatorKind::Aggregate => self.step_window(inbox, out),
        }
        self.expire_state();
    }

    fn step_process(&mut self, inbox: Vec<(usize, Vec<Element>)>, out: &mut Output) {
        let mut pending = Pending::default();
        let elements = flatten(inbox);
        for (input, element) in elements {
            match element {
                Element::Record(record) => {
                    self.watermarks.activate(input);
                    let n = self.next_record();
                    if let Some(record) = self.rekey(record, out) {
                        pending.records.push(record);
                        pending.numbers.push(n);
                    }
                    if pending.records.len() >= self.batch_size {
                        self.call_process(&mut pending, out);
                    }
                }
                status => {
                    let Some(watermark) = self.watermark_change(input, &status) else {
                        continue;
                    };
                    if self.logic.state_mut().timers.event_time_due(watermark) {
                        self.call_process(&mut pending, out);
                        self.fire_timers(TimeDomain::EventTime, watermark, out);
                    }
                }
            }
        }
        self.call_process(&mut pending, out)
    }

    fn call_process(&mut self, pending: &mut Pending, out: &mut Output) {
        if pending.records.is_empty() {
            return;
        }
        if self.must_wait() {
            self.hold(Held::Records(std::mem::take(pending)), out);
            return;
        }
        self.call_process_now(pending, out);
    }

    fn call_process_now(&mut self, pending: &mut Pending, out: &mut Output) {
        self.sync_state_clock();
        if pending.records.is_empty() {
            return;
        }
        // The bytes of a `ProcessInput`: watermark, count, records.
        self.buf.clear();
        encode::i64(self.watermark(), &mut self.buf);
        encode::varint(pending.records.len() as u64, &mut self.buf);
        for record in &pending.records {
            encode::record(record, &mut self.buf);
        }
        let call = self.next_call();
        let result = self.logic.call(Entry::Process, &self.buf);
        let causes = |i: usize| {
            Some(Cause::Record {
                key: pending.records.get(i)?.key.clone(),
                n: pending.numbers[i],
            })
        };
        let failed = self.collect(result, &mut out.runs, IdAssigner::new(call, causes));
        if let Some(reason) = failed {
            let records = std::mem::take(&mut pending.records);
            out.dead_letter(&self.name, reason, DeadLetterInput::Records(records));
        }
        pending.records.clear();
        pending.numbers.clear();
    }

    /// Fires the timers of `domain` due at `now`, earliest first, in calls
    /// of at most [`TIMER_CALL_MAX`], and then any they set that are due too.
    /// If the plugin fails, the call's timers are dead-lettered and the rest
    /// wait in their set for the fresh instance.
    fn fire_timers(&mut self, domain: TimeDomain, now: i64, out: &mut Output) {
        if self.must_wait() {
            self.timers_waiting |= domain == TimeDomain::EventTime;
            return;
        }
        self.sync_state_clock();
        let mut budget = self
            .logic
            .state_mut()
            .timers
            .len()
            .saturating_add(TIMER_ROUNDS * TIMER_CALL_MAX);
        while budget > 0 {
            let due =
                self.logic
                    .state_mut()
                    .timers
                    .take_due(domain, now, TIMER_CALL_MAX.min(budget));
            if due.is_empty() {
                break;
            }
            budget -= due.len();
            self.call_on_timer(domain, &due, out);
            if self.must_wait() {
                self.timers_waiting |= domain == TimeDomain::EventTime;
                return;
            }
        }
        if budget == 0 {
            let timers = &self.logic.state_mut().timers;
            let left = match domain {
                TimeDomain::EventTime => timers.event_time_due(now),
                TimeDomain::ProcessingTime => false,
            };
            if left {
                tracing::warn!(
                    operator = &*self.name,
                    "plugin `{}` keeps setting timers that are already due; the rest fire when timers fire next",
                    self.logic.name()
                );
            }
        }
    }

    /// One `on_timer` call with `due`; dead-letters them if it fails.
    fn call_on_timer(&mut self, domain: TimeDomain, due: &[(i64, Arc<str>)], out: &mut Output) {
        let timers: Vec<Timer<&str>> = due
            .iter()
            .map(|(time, key)| Timer {
                key: &**key,
                time: *time,
                domain,
            })
            .collect();
        self.buf.clear();
        encode(
            &TimerInput {
                watermark: self.watermark(),
                timers: &timers[..],
            },
            &mut self.buf,
        );
        let call = self.next_call();
        let first = self.timers_fired;
        self.timers_fired += due.len() as u64;
        let result = self.logic.call(Entry::OnTimer, &self.buf);
        let causes = |i: usize| {
            let (time, key) = due.get(i)?;
            Some(Cause::Timer {
                key: key.clone(),
                domain,
                time: *time,
                n: first + i as u64,
            })
        };
        let failed = self.collect(result, &mut out.runs, IdAssigner::new(call, causes));
        if let Some(reason) = failed {
            let timers = due
                .iter()
                .map(|(time, key)| DeadTimer {
                    domain: match domain {
                        TimeDomain::EventTime => "EventTime",
                        TimeDomain::ProcessingTime => "ProcessingTime",
                    },
                    key: key.clone(),
                    time: *time,
                })
                .collect();
            out.dead_letter(&self.name, reason, DeadLetterInput::Timers(timers));
        }
    }

    fn step_window(&mut self, inbox: Vec<(usize, Vec<Element>)>, out: &mut Output) {
        let mut fired = Vec::new();
        let mut late_count = 0;
        for (input, element) in flatten(inbox) {
            match element {
                Element::Record(record) => {
                    self.watermarks.activate(input);
                    let n = self.next_record();
                    let Some(record) = self.rekey(record, out) else {
                        continue;
                    };
                    let watermark = self.watermarks.current();
                    let added = match &mut self.windowing {
                        Some(Windowing::Time {
                            buffer,
                            time: WindowTime::Event,
                        }) => buffer.add(&record, record.time, watermark, &mut fired),
                        Some(Windowing::Time {
                            buffer,
                            time: WindowTime::Processing,
                        }) => {
                            let now = wall_clock_ms();
                            buffer.add(&record, now, now, &mut fired)
                        }
                        Some(Windowing::Count(count)) => {
                            count.add(&record, &mut fired);
                            Added::Buffered
                        }
                        None => Added::Buffered,
                    };
                    if let Added::Outside(outside) = added {
                        out.dead_letter(
                            &self.name,
                            outside.to_string(),
                            DeadLetterInput::Records(vec![record]),
                        );
                        continue;
                    }
                    if added == Added::Late {
                        // Windows fired before this record come out before it.
                        self.call_window(std::mem::take(&mut fired), out);
                        late_count += 1;
                        let id = ResultId {
                            cause: Arc::new(Cause::Record {
                                key: record.key.clone(),
                                n,
                            }),
                            seq: 0,
                        };
                        push_run(&mut out.runs, LATE_OUTPUT, [(record, id)]);
                    }
                }
                status => {
                    let Some(watermark) = self.watermark_change(input, &status) else {
                        continue;
                    };
                    self.fold_due_panes(watermark, out);
                    match &mut self.windowing {
                        Some(Windowing::Time {
                            buffer,
                            time: WindowTime::Event,
                        }) => buffer.advance(watermark, &mut fired),
                        // End of input fires what processing-time windows hold.
                        Some(Windowing::Time { buffer, .. }) if watermark == i64::MAX => {
                            buffer.advance(i64::MAX, &mut fired)
                        }
                        _ => {}
                    }
                }
            }
        }
        self.call_window(fired, out);
        if self.logic.kind() == OperatorKind::Aggregate {
            self.compact(out);
        }
        if late_count > 0 {
            LateRecords {
                operator: &self.name,
                records: late_count,
            }
            .emit();
        }
    }

    /// Moves the wall clock: fires due processing-time windows and timers.
    pub(crate) fn on_processing_time(&mut self, now: i64, out: &mut Output) {
        if let Some(Windowing::Time {
            time: WindowTime::Processing,
            ..
        }) = &self.windowing
        {
            self.fold_due_panes(now, out);
        }
        if let Some(Windowing::Time {
            buffer,
            time: WindowTime::Processing,
        }) = &mut self.windowing
        {
            let mut fired = Vec::new();
            buffer.advance(now, &mut fired);
            self.call_window(fired, out);
        }
        self.fire_timers(TimeDomain::ProcessingTime, now, out)
    }

    /// Hands fired windows to the plugin: their records to a `window`
    /// plugin, their folded accumulators to an aggregate's `result`.
    fn call_window(&mut self, fired: Vec<FiredWindow>, out: &mut Output) {
        if fired.is_empty() {
            return;
        }
        if self.must_wait() {
            self.hold(Held::Windows(fired), out);
            return;
        }
        self.call_window_now(fired, out);
    }

    fn call_window_now(&mut self, fired: Vec<FiredWindow>, out: &mut Output) {
        if self.logic.kind() == OperatorKind::Aggregate {
            return self.call_result(fired, out);
        }
        self.call_full_window(fired, out)
    }

    /// Folds each window's pending records (and merged accumulators) into one
    /// accumulator with calls to `aggregate`; `None` for a chunk that failed,
    /// which is then dead-lettered.
    fn fold(&mut self, windows: &[FiredWindow], out: &mut Output) -> Vec<Option<Accumulator>> {
        let mut accs = Vec::with_capacity(windows.len());
        for (chunk, bytes) in chunks(windows, FiredWindow::group_len) {
            // The bytes of an `AggregateInput`: the groups.
            self.buf.clear();
            self.buf
                .reserve_exact(encode::varint_len(chunk.len() as u64) + bytes);
            encode::varint(chunk.len() as u64, &mut self.buf);
            for window in chunk {
                window.encode_group(&mut self.buf);
            }
            let folded = self.logic.call(Entry::Aggregate, &self.buf).and_then(|_| {
                let folded = self.logic.take_accumulators();
                if folded.len() == chunk.len() {
                    Ok(folded)
                } else {
                    Err(PluginFault::Malformed {
                        import: eddy_abi::names::ACCUMULATOR,
                        detail: format!("{} accumulators for {} groups", folded.len(), chunk.len()),
                    })
                }
            });
            match folded {
                Ok(folded) => accs.extend(folded.into_iter().map(Some)),
                Err(fault) => {
                    let reason = format!("plugin `{}` {fault}", self.logic.name());
                    out.dead_letter(&self.name, reason, dead_windows(chunk));
                    accs.extend(chunk.iter().map(|_| None));
                }
            }
        }
        accs
    }

    /// An aggregate's fired windows: folded and their results emitted in
    /// one `fold_result` call per chunk where the plugin has it, else (a
    /// plugin built with an older SDK) fold, then `result`.
    fn call_result(&mut self, mut fired: Vec<FiredWindow>, out: &mut Output) {
        self.sync_state_clock();
        if self.logic.folds_results() {
            let mut without = Vec::new();
            for (chunk, bytes) in chunks(&fired, FiredWindow::group_window_len) {
                if !self.logic.folds_results() || !self.call_fold_result(chunk, bytes, out) {
                    without.extend_from_slice(chunk);
                }
            }
            fired = without;
        }
        if fired.is_empty() {
            return;
        }
        let accs = self.fold(&fired, out);
        // The bytes of a `ResultInput`: watermark, count, windows.
        let done: Vec<(&FiredWindow, Accumulator)> = fired
            .iter()
            .zip(accs)
            .filter_map(|(w, acc)| acc.map(|acc| (w, acc)))
            .collect();
        if done.is_empty() {
            return;
        }
        self.buf.clear();
        encode::i64(self.watermark(), &mut self.buf);
        encode::varint(done.len() as u64, &mut self.buf);
        for (w, acc) in &done {
            w.encode_header(&mut self.buf);
            encode::bytes(acc, &mut self.buf);
        }
        let call = self.next_call();
        let result = self.logic.call(Entry::Result, &self.buf);
        let causes = |i: usize| done.get(i).map(|(w, _)| w.cause());
        let failed = self.collect(result, &mut out.runs, IdAssigner::new(call, causes));
        if let Some(reason) = failed {
            let windows: Vec<FiredWindow> = done.iter().map(|(w, _)| (*w).clone()).collect();
            out.dead_letter(&self.name, reason, dead_windows(&windows));
        }
    }

    /// One `fold_result` call with `chunk` (`bytes` of windows); dead-letters
    /// them if it fails. `false` if the plugin turned out not to have the
    /// entry point (a version rolled back to), and nothing was called.
    fn call_fold_result(&mut self, chunk: &[FiredWindow], bytes: usize, out: &mut Output) -> bool {
        // The bytes of a `FoldResultInput`.
        self.encode_windows(chunk, bytes, FiredWindow::encode_group_window);
        let result = self.logic.call(Entry::FoldResult, &self.buf);
        if let Err(PluginFault::NoEntry(_)) = result {
            return false;
        }
        let call = self.next_call();
        let causes = |i: usize| chunk.get(i).map(FiredWindow::cause);
        let failed = self.collect(result, &mut out.runs, IdAssigner::new(call, causes));
        if let Some(reason) = failed {
            out.dead_letter(&self.name, reason, dead_windows(chunk));
        }
        true
    }

    /// Folds the records of open windows that have gathered
    /// [`FOLD_RECORDS`](super::window::FOLD_RECORDS) since their last fold, so that an aggregate's window
    /// state stays one accumulator and a bounded number of records. (Windows
    /// are folded in any case when they fire.)
    fn compact(&mut self, out: &mut Output) {
        // Folding needs the plugin: while it restarts, windows wait unfolded.
        if self.must_wait() {
            return;
        }
        let Some(Windowing::Time { buffer, .. }) = &mut self.windowing else {
            return;
        };
        let pending = buffer.take_pending();
        self.fold_back(pending, out);
    }

    /// Sliding windows of an aggregate: folds the records of the panes that
    /// end by `now` before the windows holding them fire, so that each
    /// record is folded once, not once per window.
    fn fold_due_panes(&mut self, now: i64, out: &mut Output) {
        if self.must_wait() {
            return;
        }
        let Some(Windowing::Time { buffer, .. }) = &mut self.windowing else {
            return;
        };
        let due = buffer.take_due_panes(now);
        self.fold_back(due, out);
    }

    /// Folds windows' (or panes') pending records and puts the accumulators back.
    fn fold_back(&mut self, pending: Vec<FiredWindow>, out: &mut Output) {
        if pending.is_empty() {
            return;
        }
        let accs = self.fold(&pending, out);
        let Some(Windowing::Time { buffer, .. }) = &mut self.windowing else {
            return;
        };
        for (window, acc) in pending.into_iter().zip(accs) {
            // A failed fold dead-lettered the records; the window keeps what it had.
            let accs = acc.map_or(window.accs, |acc| vec![acc]);
            buffer.put_back(&window.key, window.start, accs);
        }
    }

    /// Writes the call buffer: the watermark, then a sequence of `windows`
    /// (`bytes` of them), each as `write` writes it.
    fn encode_windows(
        &mut self,
        windows: &[FiredWindow],
        bytes: usize,
        write: fn(&FiredWindow, &mut Vec<u8>),
    ) {
        let watermark = self.watermark();
        self.buf.clear();
        self.buf.reserve_exact(
            encode::i64_len(watermark) + encode::varint_len(windows.len() as u64) + bytes,
        );
        encode::i64(watermark, &mut self.buf);
        encode::varint(windows.len() as u64, &mut self.buf);
        for window in windows {
            write(window, &mut self.buf);
        }
    }

    /// Hands fired windows to a `window` plugin, in calls of about
    /// [`WINDOW_CALL_BYTES`] each, encoded straight into the call buffer.
    fn call_full_window(&mut self, fired: Vec<FiredWindow>, out: &mut Output) {
        self.sync_state_clock();
        for (chunk, bytes) in chunks(&fired, FiredWindow::encoded_len) {
            // The bytes of a `WindowInput`.
            self.encode_windows(chunk, bytes, FiredWindow::encode);
            let call = self.next_call();
            let result = self.logic.call(Entry::Window, &self.buf);
            let causes = |i: usize| chunk.get(i).map(FiredWindow::cause);
            let failed = self.collect(result, &mut out.runs, IdAssigner::new(call, causes));
            if let Some(reason) = failed {
                out.dead_letter(&self.name, reason, dead_windows(chunk));
            }
        }
    }

    /// Routes a call's outputs with their ids; for a failed call, returns
    /// the reason its input is dead-lettered with.
    fn collect<F: Fn(usize) -> Option<Cause>>(
        &self,
        result: Result<Outputs, PluginFault>,
        emitted: &mut Emitted,
        mut ids: IdAssigner<F>,
    ) -> Option<String> {
        match result {
            Ok(outputs) => {
                for OutputRun { output, records } in outputs {
                    let with_ids = records.into_iter().map(|(cause, r)| (r, ids.next(cause)));
                    push_run(emitted, &output, with_ids);
                }
                None
            }
            Err(fault) => Some(format!("plugin `{}` {fault}", self.logic.name())),
        }
    }

    /// Applies `key_by`: the record's key becomes that field's value. A record
    /// without the field is dead-lettered.
    fn rekey(&self, mut record: Record, out: &mut Output) -> Option<Record> {
        let Some(field) = &self.key_by else {
            return Some(record);
        };
        let key: Option<Arc<str>> = match record.get(field) {
            Some(Value::Str(s)) => Some(s.clone()),
            Some(Value::I64(i)) => Some(i.to_string().into()),
            Some(Value::Bool(b)) => Some(b.to_string().into()),
            _ => None,
        };
        match key {
            Some(key) => {
                record.key = key;
                Some(record)
            }
            None => {
                let reason = format!("no string, integer or boolean field `{field}` to key by");
                out.dead_letter(&self.name, reason, DeadLetterInput::Records(vec![record]));
                None
            }
        }
    }
}

/// Records waiting for a `process` call, with their input numbers.
#[derive(Default)]
struct Pending {
    records: Vec<Record>,
    numbers: Vec<u64>,
}

/// Fired windows in runs of about [`WINDOW_CALL_BYTES`], each with its
/// bytes as `len` counts a window's.
fn chunks(
    windows: &[FiredWindow],
    len: fn(&FiredWindow) -> usize,
) -> impl Iterator<Item = (&[FiredWindow], usize)> {
    let mut rest = windows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut n = 0;
        while n < rest.len() && (n == 0 || bytes < WINDOW_CALL_BYTES) {
            bytes += len(&rest[n]);
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some((chunk, bytes))
    })
}

/// Fired windows as the dead-letter log shows them.
fn dead_windows(windows: &[FiredWindow]) -> DeadLetterInput {
    DeadLetterInput::Windows(
        windows
            .iter()
            .map(|w| DeadWindow {
                key: w.key.clone(),
                start: w.start,
                end: w.end,
                count: w.count,
                records: w.records(),
            })
            .collect(),
    )
}

/// The host's wall clock, ms since the Unix epoch.
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The elements of an inbox, each with its input index, in delivery order.
fn flatten(inbox: Vec<(usize, Vec<Element>)>) -> impl Iterator<Item = (usize, Element)> {
    inbox
        .into_iter()
        .flat_map(|(input, batch)| batch.into_iter().map(move |e| (input, e)))
}

/// Encodes ABI input; encoding into a `Vec` cannot fail for these types.
fn encode<T: serde::Serialize>(value: &T, out: &mut Vec<u8>) {
    if let Err(e) = eddy_abi::encode_into(value, out) {
        tracing::error!("encoding plugin input failed: {e}");
    }
}
