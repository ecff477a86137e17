//! The epoch ticker: advances the engine's epoch while guest code may run,
//! so that a running call's CPU time is checked against its deadline at
//! every tick; it rests when no guest has run for a while.
//!
//! A pipeline calls its plugins a few times a second at a trickle, and a
//! ticker that woke every tick regardless made 200 wake-ups a second for
//! nothing. Every entry into guest code holds a [`Running`] guard; once no
//! guard has been held for [`IDLE_TICKS`] ticks the ticker parks, and the
//! next guard taken wakes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, Thread};
use std::time::Duration;

use wasmtime::Engine;

/// How often the ticker advances the epoch: how often a running guest's
/// CPU time is checked against its deadline.
const TICK: Duration = Duration::from_millis(5);

/// Ticks with no guest running before the ticker parks.
const IDLE_TICKS: u32 = 20;

/// How long a parked ticker sleeps before it looks whether its engine is gone.
const PARKED_AT_MOST: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Shared {
    /// Guards held: entries into guest code under way.
    running: AtomicUsize,
    /// Set before the ticker parks, cleared when it wakes.
    parked: AtomicBool,
}

/// The ticker of one engine. Cheap to clone; its thread holds only a weak
/// handle to the engine, so it ends when the last clone of the engine is
/// dropped.
#[derive(Debug, Clone)]
pub(crate) struct Ticker {
    shared: Arc<Shared>,
    thread: Thread,
}

/// Held while guest code may run: the ticker ticks.
#[derive(Debug)]
pub(crate) struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticker {
    /// Starts the ticker thread of `engine`.
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let weak = engine.weak();
        let state = shared.clone();
        let handle = thread::Builder::new()
            .name("eddy-epoch".into())
            .spawn(move || {
                let mut idle = 0;
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    if state.running.load(Ordering::SeqCst) > 0 {
                        idle = 0;
                    } else {
                        idle += 1;
                    }
                    if idle < IDLE_TICKS {
                        thread::sleep(TICK);
                        continue;
                    }
                    // Say so, then look again: a guard taken meanwhile
                    // either sees `parked` and wakes this thread, or is seen here.
                    state.parked.store(true, Ordering::SeqCst);
                    if state.running.load(Ordering::SeqCst) == 0 {
                        thread::park_timeout(PARKED_AT_MOST);
                    }
                    state.parked.store(false, Ordering::SeqCst);
                    idle = 0;
                }
            })?;
        Ok(Ticker {
            shared,
            thread: handle.thread().clone(),
        })
    }

    /// A guard to hold while guest code may run; wakes the ticker if it rests.
    pub(crate) fn running(&self) -> Running {
        self.shared.running.fetch_add(1, Ordering::SeqCst);
        if self.shared.parked.load(Ordering::SeqCst) {
            self.thread.unpark();
        }
        Running(self.shared.clone())
    }

    /// Whether the ticker rests (for tests).
    #[cfg(test)]
    fn parked(&self) -> bool {
        self.shared.parked.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn wait_until(what: &str, f: impl Fn() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < Duration::from_secs(5), "{what}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_ticker_rests_when_no_guest_runs_and_wakes_for_one() {
        let engine = Engine::default();
        let ticker = Ticker::start(&engine).unwrap();
        wait_until("the ticker parks when idle", || ticker.parked());
        let running = ticker.running();
        wait_until("a guard wakes it", || !ticker.parked());
        drop(running);
        wait_until("it parks again once idle", || ticker.parked());
    }

    /// A guest that spins forever, started while the ticker rests, is
    /// still stopped at its deadline.
    #[cfg(feature = "compiler")]
    #[test]
    fn a_spinning_guest_started_while_the_ticker_rests_is_interrupted() {
        // (module (func (export "spin") (loop (br 0))))
        const SPIN: &[u8] = &[
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
            0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
            0x03, 0x02, 0x01, 0x00, // one function of that type
            0x07, 0x08, 0x01, 0x04, b's', b'p', b'i', b'n', 0x00, 0x00, // export "spin"
            0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b,
            0x0b, // loop br 0 end end
        ];
        let engine = crate::plugin::PluginEngine::new().unwrap();
        let ticker = engine.ticker().clone();
        wait_until("the ticker parks when idle", || ticker.parked());
        let wasm = engine.engine().clone();
        let (done, finished) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let module = wasmtime::Module::new(&wasm, SPIN).unwrap();
            let mut store = wasmtime::Store::new(&wasm, ());
            store.set_epoch_deadline(3);
            store.epoch_deadline_trap();
            let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
            let spin = instance
                .get_typed_func::<(), ()>(&mut store, "spin")
                .unwrap();
            let start = Instant::now();
            let _running = ticker.running();
            let interrupted = spin.call(&mut store, ()).is_err();
            let _ = done.send((interrupted, start.elapsed()));
        });
        let (interrupted, took) = finished.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(interrupted, "the spinning call was interrupted");
        // Three ticks of 5 ms; a ticker that was not woken would have
        // slept up to a second first.
        assert!(took < PARKED_AT_MOST / 2, "interrupted after {took:?}");
    }
}
