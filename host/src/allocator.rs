//! The global allocator of every program built on this crate: mimalloc
//! (with the `mimalloc` feature; the C library's without it).
//!
//! The pipeline allocates and frees records, shard copies and plugin
//! buffers on one thread while others (sources, the checkpoint encoder)
//! free what it allocated. The C library's allocator serializes those on
//! its arena locks and spends much of a batch coalescing free chunks;
//! mimalloc keeps a heap per thread and takes frees from other threads
//! without a lock.
//!
//! Its arenas are committed as they are used, not when reserved: committed
//! up front, pages it has freed stay resident (about 60 MiB more for the
//! reference pipeline).
//!
//! Freed memory goes back to the system about a second after it was freed
//! (mimalloc 3's purge delay). mimalloc does that work, `madvise` over every
//! free range, on whichever thread allocates next once the delay is up: on
//! a busy pipeline, its own thread. With 1 M keys of state, that was a
//! 13–18 ms stall between two batches, once or twice a run (perf puts it in
//! `madvise`, zapping pages). [`purge_in_background`] gives memory back
//! from a thread of its own instead, as often as mimalloc would (`eddy run`
//! starts it), and leaves the allocating threads a delay they never reach.
//! With `MIMALLOC_PURGE_DELAY` set, mimalloc does as that says and no such
//! thread runs. Freed memory kept longer is reused without faulting it in
//! again (`MIMALLOC_PURGE_DELAY=10000`: the device build of the reference
//! pipeline 32.7 MiB instead of 26.2).

#[cfg(feature = "mimalloc")]
pub use with_mimalloc::purge_in_background;

/// Without mimalloc, the C library's allocator gives memory back as it frees
/// it: nothing runs in the background.
#[cfg(not(feature = "mimalloc"))]
pub fn purge_in_background() {}

// Children under an address-space limit: the plugin compiler's workers.
#[cfg(all(feature = "compiler", feature = "mimalloc"))]
pub(crate) use with_mimalloc::for_address_space_limit;
#[cfg(all(feature = "compiler", not(feature = "mimalloc")))]
pub(crate) use without_mimalloc::for_address_space_limit;

#[cfg(all(feature = "compiler", not(feature = "mimalloc")))]
mod without_mimalloc {
    /// The C library's allocator reserves nothing ahead of use: a child's
    /// address-space limit bounds what it uses as it is.
    pub(crate) fn for_address_space_limit(_: &mut std::process::Command) {}
}

#[cfg(feature = "mimalloc")]
mod with_mimalloc {
    #[global_allocator]
    static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

    /// `mi_option_arena_eager_commit` in mimalloc 3's `mimalloc.h` (the Rust
    /// bindings do not name it).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    /// `mi_option_purge_delay`, in ms (the bindings name mimalloc 2's enum).
    pub(super) const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

    /// How often the background thread gives freed memory back: mimalloc 3's
    /// own purge delay, so that as much memory stays resident as without it.
    const PURGE_EVERY: std::time::Duration = std::time::Duration::from_millis(1000);
    /// The purge delay left to the allocating threads while the background
    /// thread runs: ten of its periods, so that it always comes first.
    const PURGE_DELAY_OF_ALLOCATING_THREADS_MS: std::ffi::c_long = 10_000;

    /// Gives the memory freed since last time back to the system every
    /// [`PURGE_EVERY`], from a thread of its own (`eddy-purge`), instead of
    /// on the thread that happens to allocate once the delay is up (see the
    /// module's documentation). Started once per process; does nothing when
    /// `MIMALLOC_PURGE_DELAY` is set, which then governs.
    pub fn purge_in_background() {
        static STARTED: std::sync::Once = std::sync::Once::new();
        STARTED.call_once(|| {
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
                return;
            }
            let purger = std::thread::Builder::new()
                .name("eddy-purge".into())
                .spawn(|| {
                    loop {
                        std::thread::sleep(PURGE_EVERY);
                        // SAFETY: a plain call into the allocator; a forced
                        // collection purges every free range now (mimalloc
                        // claims each range before purging it, so threads
                        // allocating meanwhile are safe).
                        unsafe { libmimalloc_sys::mi_collect(true) };
                    }
                });
            match purger {
                // SAFETY: setting an option mimalloc reads each time it schedules a purge.
                Ok(_) => unsafe {
                    libmimalloc_sys::mi_option_set(
                        PURGE_DELAY,
                        PURGE_DELAY_OF_ALLOCATING_THREADS_MS,
                    )
                },
                Err(e) => tracing::warn!(
                    "no background purge thread ({e}): mimalloc purges as it allocates"
                ),
            }
        });
    }

    /// Sets mimalloc's options before anything is allocated (it reserves its
    /// first arena at the first allocation), unless the environment sets them
    /// (mimalloc reads `MIMALLOC_*` variables).
    extern "C" fn configure() {
        // SAFETY: `getenv` with a NUL-terminated name, and mimalloc's option set
        // to a value it accepts; called once, before `main`, on the only thread
        // (nothing changes the environment meanwhile).
        unsafe {
            if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
                libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
            }
        }
    }

    /// Runs [`configure`] as the program starts, before `main` and before
    /// anything in Rust allocates (an ELF initializer).
    #[used]
    #[unsafe(link_section = ".init_array")]
    static CONFIGURE: extern "C" fn() = configure;

    /// The address space a child's allocator reserves at a time (its
    /// smallest arena).
    #[cfg(feature = "compiler")]
    const CHILD_ARENA_RESERVE: &str = "32MiB";

    /// Prepares `child` to run under an address-space limit: mimalloc
    /// reserves address space in arenas ahead of use (1 GiB by default),
    /// which the limit would count as used; small arenas keep the limit a
    /// bound on what the child uses.
    #[cfg(feature = "compiler")]
    pub(crate) fn for_address_space_limit(child: &mut std::process::Command) {
        child.env("MIMALLOC_ARENA_RESERVE", CHILD_ARENA_RESERVE);
    }
}

#[cfg(all(test, feature = "mimalloc"))]
mod tests {
    use super::*;

    /// The names of this process's threads.
    fn threads() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_owned())
            .collect()
    }

    #[test]
    fn one_thread_purges_and_the_allocating_threads_are_left_a_longer_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the operator's setting governs, and no thread starts
        }
        purge_in_background();
        purge_in_background();
        // A thread names itself as it starts: give it a moment.
        let purgers = || threads().iter().filter(|t| *t == "eddy-purge").count();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while purgers() == 0 && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(purgers(), 1, "threads: {:?}", threads());
        // SAFETY: reading an option.
        let delay = unsafe { libmimalloc_sys::mi_option_get(with_mimalloc::PURGE_DELAY) };
        assert_eq!(delay, 10_000, "mimalloc 3's purge delay, in ms");
    }
}
