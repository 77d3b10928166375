//! The allocator of Volley's long-running binaries, `volley` and
//! `volley-exporter`: jemalloc instead of glibc's malloc.
//!
//! A generator's heap rises and falls with the iterations in flight: in a
//! heap profile of 15 minutes at 44,000 requests/s (heaptrack) the live
//! memory allocated after warm-up moved between 10 and 15 MB with the load,
//! with no trend. glibc keeps what a busy moment freed in its arenas,
//! so a soak's RSS climbs in steps after each load peak and stays there,
//! which looks like a leak. jemalloc hands freed pages back on a timer: RSS
//! follows the load and comes back down, so growth that remains is growth of
//! the heap (BENCHMARKS.md, section 7, has both soaks).
//!
//! A `#[global_allocator]` belongs to a binary, so each `main.rs` says
//! [`crate::jemalloc!`]; the options live here, once.

#[doc(hidden)]
#[cfg(not(target_env = "msvc"))]
pub use tikv_jemallocator;

/// jemalloc's options: a background thread purges freed pages, instead of
/// whichever request thread allocates next, 30 s after they were freed, so
/// RSS follows the load of the last half minute rather than of every second.
/// `_RJEM_MALLOC_CONF` in the environment overrides them.
pub const MALLOC_CONF: &[u8; 44] = b"background_thread:true,dirty_decay_ms:30000\0";

/// Makes jemalloc, configured with [`MALLOC_CONF`], the allocator of the
/// binary whose root module invokes it. A no-op on MSVC targets, which
/// jemalloc does not build for.
#[macro_export]
macro_rules! jemalloc {
    () => {
        #[cfg(not(target_env = "msvc"))]
        #[global_allocator]
        static ALLOCATOR: $crate::allocator::tikv_jemallocator::Jemalloc =
            $crate::allocator::tikv_jemallocator::Jemalloc;

        /// Read by jemalloc at start-up (the symbol of its prefixed build).
        #[cfg(not(target_env = "msvc"))]
        #[allow(non_upper_case_globals)]
        #[export_name = "_rjem_malloc_conf"]
        pub static malloc_conf: &[u8; $crate::allocator::MALLOC_CONF.len()] = $crate::allocator::MALLOC_CONF;
    };
}
