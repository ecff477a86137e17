//! What an operator function is handed besides its input: params, outputs, state, timers.

use std::cell::RefCell;
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

/// Output buffers: encoded records per output, flushed to the host.
#[derive(Default)]
struct Outputs {
    /// `(output name, encoded records)`; `""` is the main output.
    buffers: Vec<(String, Vec<u8>)>,
}

thread_local! {
    static OUTPUTS: RefCell<Outputs> = RefCell::default();
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
        OUTPUTS.with(|o| {
            let mut o = o.borrow_mut();
            let index = match o.buffers.iter().position(|(name, _)| name == output) {
                Some(i) => i,
                None => {
                    o.buffers.push((output.to_owned(), Vec::new()));
                    o.buffers.len() - 1
                }
            };
            let buffer = &mut o.buffers[index].1;
            eddy_abi::encode_into(record, buffer)?;
            if buffer.len() >= FLUSH_BYTES {
                host::emit(output, buffer);
                buffer.clear();
            }
            Ok(())
        })
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

/// Flushes every output buffer to the host.
pub(crate) fn flush_outputs() {
    OUTPUTS.with(|o| {
        for (name, buffer) in o.borrow_mut().buffers.iter_mut() {
            if !buffer.is_empty() {
                host::emit(name, buffer);
                buffer.clear();
            }
        }
    });
}

/// Drops buffered output unsent: the call failed and the host discards its output anyway.
pub(crate) fn discard_outputs() {
    OUTPUTS.with(|o| {
        o.borrow_mut()
            .buffers
            .iter_mut()
            .for_each(|(_, b)| b.clear())
    });
}
