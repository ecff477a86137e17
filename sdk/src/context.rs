//! What an operator function is handed besides its input: params, outputs, state, timers.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::rc::Rc;

use eddy_abi::{LogLevel, Record};
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Result, State, Timers, host};

/// Emitted bytes are handed to the host once this many are buffered, and at
/// the end of every call, so a guest never holds much output in its memory.
const FLUSH_BYTES: usize = 64 * 1024;

/// Output buffers, flushed to the host in the order records were emitted.
#[derive(Default)]
struct Outputs {
    /// Runs of `(output name, cause, where its records start in bytes)`;
    /// `""` is the main output. A record for the same output and cause as
    /// the last run joins it; another starts a new run, so the host sees
    /// records across outputs in emit order, each with the input item it
    /// derives from.
    runs: Vec<(String, u32, usize)>,
    /// The encoded records of all runs, back to back.
    bytes: Vec<u8>,
}

thread_local! {
    static OUTPUTS: RefCell<Outputs> = RefCell::default();
    /// The index of the input item (record, window, timer) being handled.
    static CAUSE: Cell<u32> = const { Cell::new(0) };
}

/// Says which item of the call's input what is emitted next derives from.
pub(crate) fn set_cause(index: usize) {
    CAUSE.with(|c| c.set(index as u32));
}

/// The handle an operator function works through.
///
/// `P` is the author's params type, deserialized once from the pipeline's
/// `params` table when the plugin starts.
pub struct Context<P> {
    params: Rc<P>,
    watermark: i64,
    _not_send: PhantomData<*const ()>,
}

/// Params type for an operator that takes none; any key given is an error.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl<P> Context<P> {
    /// A context over these params at this watermark. The SDK builds one per
    /// batch; tests build their own.
    pub fn new(params: P, watermark: i64) -> Self {
        Self::shared(Rc::new(params), watermark)
    }

    pub(crate) fn shared(params: Rc<P>, watermark: i64) -> Self {
        Context {
            params,
            watermark,
            _not_send: PhantomData,
        }
    }

    /// The operator's params.
    pub fn params(&self) -> &P {
        &self.params
    }

    /// The operator's event-time watermark: no record with an earlier time is
    /// expected any more.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// The host's wall clock, ms since the Unix epoch.
    pub fn processing_time(&self) -> i64 {
        host::processing_time()
    }

    /// Emits a record to the main output.
    pub fn emit(&mut self, record: &Record) -> Result<()> {
        self.emit_to("", record)
    }

    /// Emits a record to the named side output, which the pipeline can route
    /// as `"operator.output"`.
    pub fn emit_to(&mut self, output: &str, record: &Record) -> Result<()> {
        let cause = CAUSE.with(Cell::get);
        let full = OUTPUTS.with(|o| {
            let mut o = o.borrow_mut();
            if o.runs
                .last()
                .is_none_or(|(name, c, _)| name != output || *c != cause)
            {
                let start = o.bytes.len();
                o.runs.push((output.to_owned(), cause, start));
            }
            eddy_abi::encode::record(record, &mut o.bytes);
            o.bytes.len() >= FLUSH_BYTES
        });
        if full {
            flush_outputs();
        }
        Ok(())
    }

    /// Hands every buffered record to the host. The SDK does this after each
    /// call; tests call it before looking at what was emitted.
    pub fn flush(&mut self) {
        flush_outputs();
    }

    /// Keyed state named `name`, holding values of type `T`.
    pub fn state<T: Serialize + DeserializeOwned>(&self, name: &'static str) -> State<T> {
        State::new(name)
    }

    /// Event-time and processing-time timers.
    pub fn timers(&mut self) -> Timers<'_> {
        Timers::new()
    }

    /// Logs a line under the plugin's name on the host.
    pub fn log(&self, level: LogLevel, message: &str) {
        host::log(level, message);
    }
}

/// Hands every buffered run to the host, in order.
pub(crate) fn flush_outputs() {
    // The host does not call back into the guest while it takes them.
    OUTPUTS.with(|o| {
        let mut o = o.borrow_mut();
        let Outputs { runs, bytes } = &mut *o;
        let mut sent = None;
        for (i, (name, cause, start)) in runs.iter().enumerate() {
            let end = runs.get(i + 1).map_or(bytes.len(), |next| next.2);
            if sent != Some(*cause) {
                host::cause(*cause);
                sent = Some(*cause);
            }
            host::emit(name, &bytes[*start..end]);
        }
        runs.clear();
        bytes.clear();
    });
}

/// Drops buffered output unsent: the call failed and the host discards its output anyway.
pub(crate) fn discard_outputs() {
    OUTPUTS.with(|o| {
        let mut o = o.borrow_mut();
        o.runs.clear();
        o.bytes.clear();
    });
}
