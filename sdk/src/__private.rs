//! What the attribute macros expand to. Not a public API: it changes with the macros.

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

use eddy_abi::decode::Reader;
use eddy_abi::{LogLevel, RecordRef, STATUS_ERROR, STATUS_OK, TimerInput, TimerRef, WindowRef};
use serde::de::DeserializeOwned;

use crate::context::{discard_outputs, flush_outputs, set_cause};
use crate::{Aggregate, Context, Error, Result, WindowInfo, host};

pub use eddy_abi::ABI_VERSION;

thread_local! {
    /// The params, deserialized by `init` into the author's type.
    static PARAMS: RefCell<Option<Rc<dyn Any>>> = const { RefCell::new(None) };
}

/// A plugin's own check of its params.
pub type Validate<P> = fn(&P) -> Result<()>;

/// Deserializes the params into `P`, has `validate` check them, and keeps
/// them for every later call; params that fail either are not kept (the
/// ones kept before stay).
fn init_params<P: DeserializeOwned + 'static>(validate: Option<Validate<P>>) -> i32 {
    status(|| {
        let params: P = serde_json::from_slice(&host::params())?;
        if let Some(validate) = validate {
            validate(&params)?;
        }
        PARAMS.with(|p| *p.borrow_mut() = Some(Rc::new(params)));
        Ok(())
    })
}

/// A context over the params `init` kept.
fn context<P: 'static>(watermark: i64) -> Result<Context<P>> {
    let params = PARAMS
        .with(|p| p.borrow().clone())
        .ok_or_else(|| Error::msg("called before init"))?;
    let params = params
        .downcast::<P>()
        .map_err(|_| Error::msg("params of another type than init deserialized"))?;
    Ok(Context::shared(params, watermark))
}

/// Runs a call's body, flushes or discards its output, logs its error.
fn status(body: impl FnOnce() -> Result<()>) -> i32 {
    match body() {
        Ok(()) => {
            flush_outputs();
            STATUS_OK
        }
        Err(e) => {
            discard_outputs();
            host::log(LogLevel::Error, &e.to_string());
            STATUS_ERROR
        }
    }
}

/// The input bytes the host wrote at `ptr`.
///
/// # Safety
///
/// `ptr..ptr + len` must be memory the host wrote and no one else uses during the call.
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// `init` for a `process` function.
pub fn init_process<P, F>(_: F, validate: Option<Validate<P>>) -> i32
where
    P: DeserializeOwned + 'static,
    F: Fn(&RecordRef<'_>, &mut Context<P>) -> Result<()>,
{
    init_params::<P>(validate)
}

/// `init` for a `window` function.
pub fn init_window<P, F>(_: F, validate: Option<Validate<P>>) -> i32
where
    P: DeserializeOwned + 'static,
    F: Fn(&WindowRef<'_>, &mut Context<P>) -> Result<()>,
{
    init_params::<P>(validate)
}

/// The `process` export.
///
/// # Safety
///
/// As for [`input`].
pub unsafe fn process<P, F>(ptr: *const u8, len: usize, f: F) -> i32
where
    P: 'static,
    F: Fn(&RecordRef<'_>, &mut Context<P>) -> Result<()>,
{
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { input(ptr, len) };
    status(|| {
        let batch = eddy_abi::decode::process_input(bytes)?;
        let mut ctx = context::<P>(batch.watermark)?;
        batch.records.iter().enumerate().try_for_each(|(i, r)| {
            set_cause(i);
            f(r, &mut ctx)
        })
    })
}

/// The `window` export.
///
/// # Safety
///
/// As for [`input`].
pub unsafe fn window<P, F>(ptr: *const u8, len: usize, f: F) -> i32
where
    P: 'static,
    F: Fn(&WindowRef<'_>, &mut Context<P>) -> Result<()>,
{
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { input(ptr, len) };
    status(|| {
        let batch = eddy_abi::decode::window_input(bytes)?;
        let mut ctx = context::<P>(batch.watermark)?;
        batch.windows.iter().enumerate().try_for_each(|(i, w)| {
            set_cause(i);
            f(w, &mut ctx)
        })
    })
}

/// The `on_timer` export.
///
/// # Safety
///
/// As for [`input`].
pub unsafe fn on_timer<P, F>(ptr: *const u8, len: usize, f: F) -> i32
where
    P: 'static,
    F: Fn(&TimerRef<'_>, &mut Context<P>) -> Result<()>,
{
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { input(ptr, len) };
    status(|| {
        let batch: TimerInput<Vec<TimerRef<'_>>> = postcard::from_bytes(bytes)?;
        let mut ctx = context::<P>(batch.watermark)?;
        batch.timers.iter().enumerate().try_for_each(|(i, t)| {
            set_cause(i);
            f(t, &mut ctx)
        })
    })
}

/// `init` for an aggregate.
pub fn init_aggregate<A: Aggregate>() -> i32 {
    init_params::<A::Params>(None)
}

/// The `aggregate` export: folds each group into one new accumulator.
///
/// The input is read as it is folded, group by group and record by record,
/// into nothing but the accumulator: no group or record list is built.
///
/// # Safety
///
/// As for [`input`].
pub unsafe fn aggregate<A: Aggregate>(ptr: *const u8, len: usize) -> i32 {
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { input(ptr, len) };
    status(|| {
        let ctx = context::<A::Params>(i64::MIN)?;
        let mut input = Reader::new(bytes);
        let mut out = Vec::new();
        let mut record = RecordRef::default();
        for _ in 0..input.count()? {
            let acc = fold_group::<A>(&mut input, &mut record, ctx.params())?;
            out.clear();
            eddy_abi::encode_into(&acc, &mut out)?;
            host::accumulator(&out);
        }
        input.end()?;
        Ok(())
    })
}

/// Reads a `Group` (`accs`, merged into the first or a new one, then
/// `records`) and folds it into one accumulator, reading each record into
/// `record`.
fn fold_group<'a, A: Aggregate>(
    input: &mut Reader<'a>,
    record: &mut RecordRef<'a>,
    params: &A::Params,
) -> Result<A::Acc> {
    let mut acc: Option<A::Acc> = None;
    for _ in 0..input.count()? {
        let other = postcard::from_bytes(input.bytes()?)?;
        match &mut acc {
            Some(acc) => A::merge(acc, other),
            None => acc = Some(other),
        }
    }
    let mut acc = acc.unwrap_or_default();
    for _ in 0..input.count()? {
        input.record_into(record)?;
        A::add(&mut acc, record, params);
    }
    Ok(acc)
}

/// The `fold_result` export: each fired window's group folded and its
/// result emitted, without handing the accumulator to the host.
///
/// # Safety
///
/// As for [`input`].
pub unsafe fn fold_result<A: Aggregate>(ptr: *const u8, len: usize) -> i32 {
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { input(ptr, len) };
    status(|| {
        let mut input = Reader::new(bytes);
        let mut ctx = context::<A::Params>(input.i64()?)?;
        let mut record = RecordRef::default();
        for i in 0..input.count()? {
            // A `GroupWindow`: the window, then the group.
            let info = window_info(&mut input)?;
            let acc = fold_group::<A>(&mut input, &mut record, ctx.params())?;
            set_cause(i);
            A::result(&acc, &info, &mut ctx)?;
        }
        input.end()?;
        Ok(())
    })
}

/// A fired window's key, start, end and firing, as inputs of aggregates begin one.
fn window_info<'a>(input: &mut Reader<'a>) -> Result<WindowInfo<'a>> {
    Ok(WindowInfo {
        key: input.str()?,
        start: input.i64()?,
        end: input.i64()?,
        firing: input.varint32()?,
    })
}

/// The `result` export: one result per fired window.
///
/// # Safety
///
/// As for [`input`].
pub unsafe fn result<A: Aggregate>(ptr: *const u8, len: usize) -> i32 {
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { input(ptr, len) };
    status(|| {
        let mut input = Reader::new(bytes);
        let mut ctx = context::<A::Params>(input.i64()?)?;
        for i in 0..input.count()? {
            set_cause(i);
            // An `AccWindow`: the window, then its accumulator.
            let info = window_info(&mut input)?;
            let acc: A::Acc = postcard::from_bytes(input.bytes()?)?;
            A::result(&acc, &info, &mut ctx)?;
        }
        input.end()?;
        Ok(())
    })
}

/// The `snapshot` export: saves what `save` returns through the host.
pub fn snapshot(save: fn() -> Result<Vec<u8>>) -> i32 {
    status(|| {
        host::save_snapshot(&save()?);
        Ok(())
    })
}

/// The `restore` export: hands a saved snapshot to `restore`.
///
/// # Safety
///
/// As for [`input`].
pub unsafe fn restore(ptr: *const u8, len: usize, restore: fn(&[u8]) -> Result<()>) -> i32 {
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { input(ptr, len) };
    status(|| restore(bytes))
}

/// Compile-time check that a `process` function has the right signature.
pub fn assert_process<P, F>(_: &F)
where
    F: Fn(&RecordRef<'_>, &mut Context<P>) -> Result<()>,
{
}

/// Compile-time check that a `window` function has the right signature.
pub fn assert_window<P, F>(_: &F)
where
    F: Fn(&WindowRef<'_>, &mut Context<P>) -> Result<()>,
{
}

/// Compile-time check that an `on_timer` function has the right signature.
pub fn assert_on_timer<P, F>(_: &F)
where
    F: Fn(&TimerRef<'_>, &mut Context<P>) -> Result<()>,
{
}

/// The `alloc` export: space for the host to write an input into.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub extern "C" fn alloc(size: usize) -> *mut u8 {
    let Ok(layout) = std::alloc::Layout::from_size_align(size.max(1), 8) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size.
    unsafe { std::alloc::alloc(layout) }
}

/// The `dealloc` export: frees what `alloc` returned.
///
/// # Safety
///
/// `ptr` and `size` must come from one earlier `alloc` call.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dealloc(ptr: *mut u8, size: usize) {
    if let Ok(layout) = std::alloc::Layout::from_size_align(size.max(1), 8) {
        // SAFETY: guaranteed by the caller.
        unsafe { std::alloc::dealloc(ptr, layout) }
    }
}
