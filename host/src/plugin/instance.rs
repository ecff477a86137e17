//! One live instance of a plugin: its `Store` and typed entry points.

use std::sync::Arc;
use std::time::Duration;

use eddy_abi::{Capabilities, STATUS_OK, names};
use wasmtime::{Memory, Store, StoreLimitsBuilder, TypedFunc, UpdateDeadline};

use super::caps::{Cap, PluginCaps};
use super::deadline::CallClock;
use super::imports::{Limits, StoreData};
use super::intern::Interner;
use super::ticker::{Running, Ticker};
use super::{Entry, Outputs, PluginEngine, PluginFault, PluginModule};
use crate::state::{OperatorState, Transaction};

/// The guest's `init` export.
type InitFunc = TypedFunc<(), i32>;

/// The guest's optional `snapshot` and `restore` exports.
type SnapshotFuncs = (TypedFunc<(), i32>, TypedFunc<(i32, i32), i32>);

/// What a fresh instance is given.
pub(crate) struct InstanceConfig {
    pub(crate) params: Arc<[u8]>,
    pub(crate) memory_cap: usize,
    pub(crate) caps: PluginCaps,
    pub(crate) deadline: Duration,
    pub(crate) operator: Arc<str>,
}

/// A plugin instance in its own `Store`, called through `TypedFunc`s only.
pub(crate) struct PluginInstance {
    store: Store<StoreData>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    dealloc: TypedFunc<(i32, i32), ()>,
    main: TypedFunc<(i32, i32), i32>,
    on_timer: Option<TypedFunc<(i32, i32), i32>>,
    /// An aggregate's `result`.
    result: Option<TypedFunc<(i32, i32), i32>>,
    /// An aggregate's `fold_result`, if it exports one.
    fold_result: Option<TypedFunc<(i32, i32), i32>>,
    /// The optional `snapshot` and `restore` exports.
    snapshot: Option<SnapshotFuncs>,
    /// Accumulators of the last successful `aggregate` call.
    accumulators: Vec<std::sync::Arc<[u8]>>,
    deadline: Duration,
    /// `init`, called again when the params change.
    init: InitFunc,
    /// Ticks while this instance's guest code runs.
    ticker: Ticker,
}

impl PluginInstance {
    /// Instantiates the plugin in a fresh store and runs its `init`. On failure
    /// the state comes back with the fault, so nothing is lost.
    pub(crate) fn start(
        engine: &PluginEngine,
        module: &PluginModule,
        config: &InstanceConfig,
        granted: &Arc<Capabilities>,
        state: OperatorState,
    ) -> Result<Self, (PluginFault, Box<OperatorState>)> {
        // What the module declares it starts with is refused by the caps
        // before anything is allocated, whichever allocator is in use.
        let initial = module.initial();
        if initial.memory_bytes > config.memory_cap as u64 {
            let fault = PluginFault::MemoryCap {
                cap: config.memory_cap,
                wanted: usize::try_from(initial.memory_bytes).unwrap_or(usize::MAX),
            };
            return Err((fault, Box::new(state)));
        }
        if initial.table_elements > config.caps.table_elements as u64 {
            let fault = PluginFault::Cap {
                cap: Cap::TableElements,
                limit: config.caps.table_elements,
            };
            return Err((fault, Box::new(state)));
        }
        let data = StoreData {
            limits: Limits {
                store: StoreLimitsBuilder::new()
                    .memory_size(config.memory_cap)
                    .table_elements(config.caps.table_elements)
                    .instances(1)
                    .memories(1)
                    .tables(4)
                    .build(),
                memory_cap: config.memory_cap,
                table_cap: config.caps.table_elements,
            },
            memory: None,
            params: config.params.clone(),
            granted: granted.clone(),
            state,
            transaction: Transaction::default(),
            outputs: Vec::new(),
            cause: None,
            snapshot: None,
            caps: config.caps,
            output_bytes: 0,
            emitted_records: 0,
            clock: CallClock::start(config.deadline),
            last_error: None,
            operator: config.operator.clone(),
            names: Interner::default(),
            accumulators: Vec::new(),
        };
        let mut store = Store::new(engine.engine(), data);
        store.limiter(|d| &mut d.limits);
        // At every tick the guest stops for a moment and its CPU time is
        // checked against its deadline (see `deadline`).
        store.epoch_deadline_callback(|store| {
            Ok(if store.data().clock.expired() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Continue(1)
            })
        });
        // Instantiation (a start function) runs on this clock too.
        let ticker = engine.ticker().clone();
        let _running = ticker.running();
        store.set_epoch_deadline(1);
        match Self::link(store, module, config.deadline, ticker.clone()) {
            Ok((mut instance, init)) => match instance.init(init) {
                Ok(()) => Ok(instance),
                Err(fault) => Err((fault, Box::new(instance.into_state()))),
            },
            Err((fault, store)) => Err((fault, Box::new(store.into_data().state))),
        }
    }

    fn link(
        mut store: Store<StoreData>,
        module: &PluginModule,
        deadline: Duration,
        ticker: Ticker,
    ) -> Result<(Self, InitFunc), (PluginFault, Store<StoreData>)> {
        let fault = |e: wasmtime::Error| PluginFault::Start(format!("{e:#}"));
        let instance = match module.pre().instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => return Err((PluginFault::from_wasmtime(e, deadline), store)),
        };
        let typed = (|| {
            let memory = instance
                .get_memory(&mut store, names::MEMORY)
                .ok_or_else(|| wasmtime::Error::msg("no memory export"))?;
            let alloc = instance.get_typed_func(&mut store, names::ALLOC)?;
            let dealloc = instance.get_typed_func(&mut store, names::DEALLOC)?;
            let init = instance.get_typed_func(&mut store, names::INIT)?;
            let main = instance.get_typed_func(&mut store, module.kind().entry_point())?;
            let on_timer = if module.has_on_timer() {
                Some(instance.get_typed_func(&mut store, names::ON_TIMER)?)
            } else {
                None
            };
            let result = if module.kind() == eddy_abi::OperatorKind::Aggregate {
                Some(instance.get_typed_func(&mut store, names::RESULT)?)
            } else {
                None
            };
            let fold_result = if module.has_fold_result() {
                Some(instance.get_typed_func(&mut store, names::FOLD_RESULT)?)
            } else {
                None
            };
            let snapshot = if module.has_snapshot() {
                Some((
                    instance.get_typed_func(&mut store, names::SNAPSHOT)?,
                    instance.get_typed_func(&mut store, names::RESTORE)?,
                ))
            } else {
                None
            };
            wasmtime::Result::Ok((
                memory,
                alloc,
                dealloc,
                init,
                main,
                on_timer,
                result,
                fold_result,
                snapshot,
            ))
        })();
        let (memory, alloc, dealloc, init, main, on_timer, result, fold_result, snapshot) =
            match typed {
                Ok(t) => t,
                Err(e) => return Err((fault(e), store)),
            };
        store.data_mut().memory = Some(memory);
        let instance = PluginInstance {
            store,
            memory,
            alloc,
            dealloc,
            main,
            on_timer,
            result,
            fold_result,
            snapshot,
            accumulators: Vec::new(),
            deadline,
            init: init.clone(),
            ticker,
        };
        Ok((instance, init))
    }

    /// Runs the guest's `init`, which reads and checks its params.
    fn init(&mut self, init: InitFunc) -> Result<(), PluginFault> {
        let _running = self.arm();
        let status = init
            .call(&mut self.store, ())
            .map_err(|e| PluginFault::from_wasmtime(e, self.deadline))?;
        let data = self.store.data_mut();
        data.outputs.clear();
        data.transaction.abort();
        if status != STATUS_OK {
            let reason = data
                .last_error
                .take()
                .unwrap_or_else(|| "no reason logged".into());
            return Err(PluginFault::Start(format!("init failed: {reason}")));
        }
        Ok(())
    }

    /// Gives the running instance other params: its `init` reads and
    /// checks them, between two calls. When `init` refuses them, the old
    /// params go back and `init` runs again with them. The error says why,
    /// and whether the instance can go on (its `init` took the old params
    /// back) or must be restarted.
    pub(crate) fn reinit(&mut self, params: Arc<[u8]>) -> Result<(), (PluginFault, bool)> {
        let old = std::mem::replace(&mut self.store.data_mut().params, params);
        let init = self.init.clone();
        match self.init(init.clone()) {
            Ok(()) => Ok(()),
            Err(fault) => {
                self.store.data_mut().params = old;
                match self.init(init) {
                    Ok(()) => Err((fault, true)),
                    Err(again) => Err((
                        PluginFault::Start(format!("{fault}; with the old params again: {again}")),
                        false,
                    )),
                }
            }
        }
    }

    /// Gives this call a fresh deadline and output budget; the epoch
    /// ticks while the guard it returns is held.
    fn arm(&mut self) -> Running {
        let running = self.ticker.running();
        self.store.set_epoch_deadline(1);
        let data = self.store.data_mut();
        data.clock = CallClock::start(self.deadline);
        data.output_bytes = 0;
        data.emitted_records = 0;
        data.last_error = None;
        data.cause = None;
        running
    }

    /// Calls an entry point with `input` and returns what it emitted. On
    /// success the call's state writes are committed; on failure they and its
    /// output are dropped.
    pub(crate) fn call(&mut self, entry: Entry, input: &[u8]) -> Result<Outputs, PluginFault> {
        let func = match entry {
            Entry::OnTimer => self.on_timer.clone().ok_or_else(|| {
                PluginFault::Start("the plugin set a timer but exports no `on_timer`".into())
            })?,
            Entry::Result => self
                .result
                .clone()
                .ok_or_else(|| PluginFault::Start("the plugin exports no `result`".into()))?,
            Entry::FoldResult => self
                .fold_result
                .clone()
                .ok_or(PluginFault::NoEntry(names::FOLD_RESULT))?,
            _ => self.main.clone(),
        };
        let _running = self.arm();
        let result = self.call_with_input(func, input);
        let data = self.store.data_mut();
        match result {
            Ok(()) => {
                data.transaction.commit(&mut data.state);
                self.accumulators = std::mem::take(&mut data.accumulators);
                Ok(std::mem::take(&mut data.outputs))
            }
            Err(fault) => {
                data.transaction.abort();
                data.outputs.clear();
                data.accumulators.clear();
                Err(fault)
            }
        }
    }

    fn call_with_input(
        &mut self,
        func: TypedFunc<(i32, i32), i32>,
        input: &[u8],
    ) -> Result<(), PluginFault> {
        let wasm = |e| PluginFault::from_wasmtime(e, self.deadline);
        let len =
            i32::try_from(input.len()).map_err(|_| PluginFault::Trap("input over 2 GiB".into()))?;
        let ptr = self.alloc.call(&mut self.store, len).map_err(wasm)?;
        self.memory
            .write(&mut self.store, ptr as u32 as usize, input)
            .map_err(|_| PluginFault::BadPointer {
                import: names::ALLOC,
                ptr: ptr as u32,
                len: len as u32,
            })?;
        let status = func.call(&mut self.store, (ptr, len)).map_err(wasm)?;
        self.dealloc
            .call(&mut self.store, (ptr, len))
            .map_err(wasm)?;
        if status != STATUS_OK {
            let data = self.store.data_mut();
            let reason = data
                .last_error
                .take()
                .unwrap_or_else(|| "no reason logged".into());
            return Err(PluginFault::Failed(reason));
        }
        Ok(())
    }

    /// Calls `snapshot`: the state the plugin keeps in its own memory.
    pub(crate) fn snapshot(&mut self) -> Result<Vec<u8>, PluginFault> {
        let Some((snapshot, _)) = self.snapshot.clone() else {
            return Err(PluginFault::Start(
                "the plugin exports no `snapshot`".into(),
            ));
        };
        let _running = self.arm();
        let status = snapshot
            .call(&mut self.store, ())
            .map_err(|e| PluginFault::from_wasmtime(e, self.deadline))?;
        let data = self.store.data_mut();
        data.outputs.clear();
        let saved = data.snapshot.take();
        if status != STATUS_OK {
            let reason = data
                .last_error
                .take()
                .unwrap_or_else(|| "no reason logged".into());
            return Err(PluginFault::Failed(format!("snapshot: {reason}")));
        }
        Ok(saved.unwrap_or_default())
    }

    /// Calls `restore` with what `snapshot` saved.
    pub(crate) fn restore(&mut self, bytes: &[u8]) -> Result<(), PluginFault> {
        let Some((_, restore)) = self.snapshot.clone() else {
            return Err(PluginFault::Start("the plugin exports no `restore`".into()));
        };
        let _running = self.arm();
        let result = self.call_with_input(restore, bytes);
        let data = self.store.data_mut();
        data.outputs.clear();
        data.transaction.abort();
        result
    }

    /// The size of its linear memory, in bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// The accumulators the last successful `aggregate` call handed over.
    pub(crate) fn take_accumulators(&mut self) -> Vec<std::sync::Arc<[u8]>> {
        std::mem::take(&mut self.accumulators)
    }

    /// The operator's state.
    pub(crate) fn state(&self) -> &OperatorState {
        &self.store.data().state
    }

    /// The operator's state, for the host's own use between calls.
    pub(crate) fn state_mut(&mut self) -> &mut OperatorState {
        &mut self.store.data_mut().state
    }

    /// Ends the instance, keeping its state.
    pub(crate) fn into_state(self) -> OperatorState {
        self.store.into_data().state
    }
}
