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
//! Freed memory goes back to the system after mimalloc's 10 ms. With much
//! state and frequent checkpoints, what a checkpoint lets go of is faulted
//! in again on the pipeline thread as it copies the state after the next:
//! `MIMALLOC_PURGE_DELAY=10000` keeps it for reuse (with 1 M keys and
//! checkpoints every second, the longest batch after a checkpoint 5–11 ms
//! instead of 13–16) at the cost of resident memory (the device build of
//! the reference pipeline 32.7 MiB instead of 26.2).

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
