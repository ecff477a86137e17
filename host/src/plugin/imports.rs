//! The host functions a plugin imports (module `eddy`), and the store data they work on.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use eddy_abi::decode::Reader;
use eddy_abi::{
    Capabilities, IMPORT_MODULE, LATE_OUTPUT, LogLevel, RecordRef, STATUS_OK, TimeDomain, names,
};
use wasmtime::{Caller, Linker, Memory, ResourceLimiter, StoreLimits};

use super::caps::{Cap, PluginCaps, held_bytes};
use super::deadline::CallClock;
use super::intern::Interner;
use super::{OutputRun, Outputs, PluginFault};
use crate::state::{OperatorState, TimerOp, Transaction};

/// Everything a plugin instance's `Store` holds.
pub(crate) struct StoreData {
    pub(crate) limits: Limits,
    /// The guest's memory, set right after instantiation.
    pub(crate) memory: Option<Memory>,
    /// The operator's params as JSON.
    pub(crate) params: Arc<[u8]>,
    /// The state and side outputs it may use.
    pub(crate) granted: Arc<Capabilities>,
    /// State and timers, kept by the host across instances.
    pub(crate) state: OperatorState,
    /// This call's state writes, applied if it succeeds.
    pub(crate) transaction: Transaction,
    /// This call's output as runs in emit order.
    pub(crate) outputs: Outputs,
    /// The input item the guest said its emits derive from (import `cause`).
    pub(crate) cause: Option<u32>,
    /// What the guest handed to `save_snapshot` during `snapshot`.
    pub(crate) snapshot: Option<Vec<u8>>,
    /// What the host may hold on the plugin's behalf.
    pub(crate) caps: PluginCaps,
    /// Bytes the host holds for what this call emitted, against `caps.output_bytes`.
    pub(crate) output_bytes: usize,
    /// Records this call emitted, against `caps.emit_records`.
    pub(crate) emitted_records: usize,
    /// The running call's deadline, in CPU time of its thread.
    pub(crate) clock: CallClock,
    /// The last error the guest logged: the reason for an error status.
    pub(crate) last_error: Option<String>,
    /// The operator's name, for logs.
    pub(crate) operator: Arc<str>,
    /// Shared keys and field names of emitted records.
    pub(crate) names: Interner,
    /// Accumulators handed over during an `aggregate` call, in group order.
    pub(crate) accumulators: Vec<std::sync::Arc<[u8]>>,
}

/// The memory and table caps: wasmtime's `StoreLimits`, with a denied
/// growth turned into a fault naming the cap.
pub(crate) struct Limits {
    pub(crate) store: StoreLimits,
    pub(crate) memory_cap: usize,
    pub(crate) table_cap: usize,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if self.store.memory_growing(current, desired, maximum)? {
            return Ok(true);
        }
        Err(PluginFault::MemoryCap {
            cap: self.memory_cap,
            wanted: desired,
        }
        .into())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if self.store.table_growing(current, desired, maximum)? {
            return Ok(true);
        }
        Err(cap(Cap::TableElements, self.table_cap))
    }

    fn instances(&self) -> usize {
        self.store.instances()
    }

    fn tables(&self) -> usize {
        self.store.tables()
    }

    fn memories(&self) -> usize {
        self.store.memories()
    }
}

/// The guest's bytes at `ptr..ptr + len`, or a fault naming the import.
fn range(
    memory: &[u8],
    import: &'static str,
    ptr: i32,
    len: i32,
) -> Result<std::ops::Range<usize>, PluginFault> {
    let bad = PluginFault::BadPointer {
        import,
        ptr: ptr as u32,
        len: len as u32,
    };
    let start = ptr as u32 as usize;
    let end = start.checked_add(len as u32 as usize).ok_or(bad.clone())?;
    if end > memory.len() {
        return Err(bad);
    }
    Ok(start..end)
}

/// The guest's string at `ptr..ptr + len`.
fn string<'a>(
    memory: &'a [u8],
    import: &'static str,
    ptr: i32,
    len: i32,
) -> Result<&'a str, PluginFault> {
    std::str::from_utf8(&memory[range(memory, import, ptr, len)?]).map_err(|e| {
        PluginFault::Malformed {
            import,
            detail: e.to_string(),
        }
    })
}

/// The guest's memory and the store data, both borrowed.
fn split<'a>(
    caller: &'a mut Caller<'_, StoreData>,
) -> wasmtime::Result<(&'a mut [u8], &'a mut StoreData)> {
    let memory = caller
        .data()
        .memory
        .ok_or_else(|| wasmtime::Error::msg("host call before the guest memory was known"))?;
    Ok(memory.data_and_store_mut(caller))
}

/// The longest log message a plugin can hand the host; the rest is cut off.
const LOG_MESSAGE_BYTES: usize = 4096;

/// The fault of a call that goes over one of its caps.
fn cap(cap: Cap, limit: usize) -> wasmtime::Error {
    PluginFault::Cap { cap, limit }.into()
}

/// Charges `bytes` held by the host to this call's output.
fn charge_output(data: &mut StoreData, bytes: usize) -> wasmtime::Result<()> {
    data.output_bytes = data.output_bytes.saturating_add(bytes);
    if data.output_bytes > data.caps.output_bytes {
        return Err(cap(Cap::OutputBytes, data.caps.output_bytes));
    }
    Ok(())
}

/// A host call that did a lot of work stops the call at once when that
/// work used up its deadline, instead of at the guest's next epoch check.
const CHECK_DEADLINE_AFTER_BYTES: usize = 64 << 10;

fn check_deadline(data: &StoreData, bytes: usize) -> wasmtime::Result<()> {
    if bytes >= CHECK_DEADLINE_AFTER_BYTES && data.clock.expired() {
        return Err(PluginFault::Deadline(data.clock.budget).into());
    }
    Ok(())
}

/// The fault of a call that uses what the plugin was not granted.
fn ungranted(import: &'static str, what: String) -> wasmtime::Error {
    PluginFault::Ungranted { import, what }.into()
}

/// Refuses keyed state under a name the plugin was not granted.
fn check_state(data: &StoreData, import: &'static str, namespace: &str) -> wasmtime::Result<()> {
    if data.granted.state.iter().any(|s| s == namespace) {
        return Ok(());
    }
    Err(ungranted(import, format!("state `{namespace}`")))
}

pub(crate) fn define(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        names::EMIT,
        |mut caller: Caller<'_, StoreData>,
         out_ptr: i32,
         out_len: i32,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<i32> {
            let (memory, data) = split(&mut caller)?;
            let output = string(memory, names::EMIT, out_ptr, out_len)?;
            if !output.is_empty() && !data.granted.side_outputs.iter().any(|o| o == output) {
                return Err(ungranted(names::EMIT, format!("side output `{output}`")));
            }
            if output == LATE_OUTPUT {
                return Err(PluginFault::Malformed {
                    import: names::EMIT,
                    detail: format!("the side output `{LATE_OUTPUT}` is reserved for late records"),
                }
                .into());
            }
            let bytes = &memory[range(memory, names::EMIT, ptr, len)?];
            // Runs in emit order: a new output name starts a new run.
            let cause = data.cause;
            if data
                .outputs
                .last()
                .is_none_or(|run| !eddy_abi::same_text(&run.output, output))
            {
                data.outputs.push(OutputRun {
                    output: output.to_owned(),
                    records: Vec::new(),
                });
            }
            let index = data.outputs.len() - 1;
            let mut reader = Reader::new(bytes);
            // One record's room for the fields of all (an emit holds many).
            let mut record = RecordRef::default();
            while !reader.is_empty() {
                reader
                    .record_into(&mut record)
                    .map_err(|e| PluginFault::Malformed {
                        import: names::EMIT,
                        detail: format!("not a record: {e}"),
                    })?;
                data.emitted_records += 1;
                if data.emitted_records > data.caps.emit_records {
                    return Err(cap(Cap::EmitRecords, data.caps.emit_records));
                }
                charge_output(data, held_bytes(&record))?;
                let record = data.names.record(&record);
                data.outputs[index].records.push((cause, record));
            }
            check_deadline(data, bytes.len())?;
            Ok(STATUS_OK)
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        names::STATE_GET,
        |mut caller: Caller<'_, StoreData>,
         ns_ptr: i32,
         ns_len: i32,
         key_ptr: i32,
         key_len: i32,
         buf_ptr: i32,
         buf_cap: i32|
         -> wasmtime::Result<i32> {
            let (memory, data) = split(&mut caller)?;
            let ns = string(memory, names::STATE_GET, ns_ptr, ns_len)?;
            check_state(data, names::STATE_GET, ns)?;
            let key = string(memory, names::STATE_GET, key_ptr, key_len)?;
            let buf = range(memory, names::STATE_GET, buf_ptr, buf_cap)?;
            let Some(value) = data.transaction.get(&data.state, ns, key) else {
                return Ok(-1);
            };
            let len = value.len();
            if len <= buf.len() {
                memory[buf.start..buf.start + len].copy_from_slice(value);
            }
            Ok(i32::try_from(len).unwrap_or(i32::MAX))
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        names::STATE_PUT,
        |mut caller: Caller<'_, StoreData>,
         ns_ptr: i32,
         ns_len: i32,
         key_ptr: i32,
         key_len: i32,
         val_ptr: i32,
         val_len: i32|
         -> wasmtime::Result<()> {
            let (memory, data) = split(&mut caller)?;
            let ns = string(memory, names::STATE_PUT, ns_ptr, ns_len)?;
            check_state(data, names::STATE_PUT, ns)?;
            let key = string(memory, names::STATE_PUT, key_ptr, key_len)?;
            let value = &memory[range(memory, names::STATE_PUT, val_ptr, val_len)?];
            let (keys, bytes) = (
                data.transaction.keys_after(&data.state),
                data.transaction.bytes_after(&data.state),
            );
            data.transaction.put(&data.state, ns, key, value);
            let caps = &data.caps;
            let keys_after = data.transaction.keys_after(&data.state);
            if keys_after > keys && keys_after > caps.state_keys {
                return Err(cap(Cap::StateKeys, caps.state_keys));
            }
            let bytes_after = data.transaction.bytes_after(&data.state);
            if bytes_after > bytes && bytes_after > caps.state_bytes {
                return Err(cap(Cap::StateBytes, caps.state_bytes));
            }
            check_deadline(data, value.len())?;
            Ok(())
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        names::STATE_DELETE,
        |mut caller: Caller<'_, StoreData>,
         ns_ptr: i32,
         ns_len: i32,
         key_ptr: i32,
         key_len: i32|
         -> wasmtime::Result<()> {
            let (memory, data) = split(&mut caller)?;
            let ns = string(memory, names::STATE_DELETE, ns_ptr, ns_len)?;
            check_state(data, names::STATE_DELETE, ns)?;
            let key = string(memory, names::STATE_DELETE, key_ptr, key_len)?;
            data.transaction.delete(&data.state, ns, key);
            Ok(())
        },
    )?;
    for (import, op) in [
        (names::TIMER_SET, TimerOp::Set),
        (names::TIMER_DELETE, TimerOp::Delete),
    ] {
        linker.func_wrap(
            IMPORT_MODULE,
            import,
            move |mut caller: Caller<'_, StoreData>,
                  domain: i32,
                  key_ptr: i32,
                  key_len: i32,
                  time: i64|
                  -> wasmtime::Result<()> {
                let (memory, data) = split(&mut caller)?;
                let domain = timer_domain(import, domain)?;
                let key = string(memory, import, key_ptr, key_len)?;
                let before = data.transaction.timers_after(&data.state);
                data.transaction
                    .timer(&data.state, op, domain, key.into(), time);
                let after = data.transaction.timers_after(&data.state);
                if after > before && after > data.caps.timers {
                    return Err(cap(Cap::Timers, data.caps.timers));
                }
                Ok(())
            },
        )?;
    }
    linker.func_wrap(
        IMPORT_MODULE,
        names::PARAMS,
        |mut caller: Caller<'_, StoreData>, buf_ptr: i32, buf_cap: i32| -> wasmtime::Result<i32> {
            let (memory, data) = split(&mut caller)?;
            let buf = range(memory, names::PARAMS, buf_ptr, buf_cap)?;
            let params = &data.params;
            if params.len() <= buf.len() {
                memory[buf.start..buf.start + params.len()].copy_from_slice(params);
            }
            Ok(i32::try_from(params.len()).unwrap_or(i32::MAX))
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        names::LOG,
        |mut caller: Caller<'_, StoreData>,
         level: i32,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<()> {
            let (memory, data) = split(&mut caller)?;
            let bytes = &memory[range(memory, names::LOG, ptr, len)?];
            let message = String::from_utf8_lossy(&bytes[..bytes.len().min(LOG_MESSAGE_BYTES)]);
            let operator = &*data.operator;
            match LogLevel::from_raw(level) {
                LogLevel::Debug => tracing::debug!(operator, "{message}"),
                LogLevel::Info => tracing::info!(operator, "{message}"),
                LogLevel::Warn => tracing::warn!(operator, "{message}"),
                LogLevel::Error => {
                    tracing::debug!(operator, "{message}");
                    data.last_error = Some(message.into_owned());
                }
            }
            Ok(())
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        names::ACCUMULATOR,
        |mut caller: Caller<'_, StoreData>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            let (memory, data) = split(&mut caller)?;
            let bytes = &memory[range(memory, names::ACCUMULATOR, ptr, len)?];
            /// A `Vec` and its allocation header.
            const VEC: usize = 40;
            charge_output(data, VEC + bytes.len())?;
            data.accumulators.push(std::sync::Arc::from(bytes));
            check_deadline(data, bytes.len())?;
            Ok(())
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        names::CAUSE,
        |mut caller: Caller<'_, StoreData>, index: i32| {
            caller.data_mut().cause = Some(index as u32);
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        names::SAVE_SNAPSHOT,
        |mut caller: Caller<'_, StoreData>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            let (memory, data) = split(&mut caller)?;
            let bytes = &memory[range(memory, names::SAVE_SNAPSHOT, ptr, len)?];
            data.snapshot = Some(bytes.to_vec());
            Ok(())
        },
    )?;
    linker.func_wrap(IMPORT_MODULE, names::PROCESSING_TIME, || -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })?;
    Ok(())
}

fn timer_domain(import: &'static str, raw: i32) -> Result<TimeDomain, PluginFault> {
    TimeDomain::from_raw(raw).ok_or_else(|| PluginFault::Malformed {
        import,
        detail: format!("unknown time domain {raw}"),
    })
}
