//! The engine settings, shared by `build.rs` (which precompiles the
//! components) and the runtime (which loads them): a precompiled component
//! only loads into an engine whose code-generation settings match. How
//! instances are allocated is not one of them, so each
//! [`Runtime`](crate::Runtime) picks its own [`Allocation`]. The components
//! precompiled for embedders' own engines (`PRECOMPILED_LIBRARY` and the
//! others) are made with [`embedders_config`] instead.

/// How a runtime allocates lock sandboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// From a preallocated pool of at most this many sandboxes at once: opening
    /// a lock costs about a third of a fresh allocation, but creating the
    /// runtime reserves the pool (about half a millisecond). For long-lived
    /// embedders that open many locks.
    Pooled(u32),
    /// Fresh memory per sandbox: the cheapest start, for one-shot processes
    /// like the `lockfile` command.
    #[default]
    OnDemand,
}

/// The default pool size of [`Allocation::Pooled`].
pub const DEFAULT_POOL: u32 = 1000;

/// The settings of the components precompiled for embedders' own engines:
/// wasmtime's defaults, but for native unwind tables, which any engine
/// accepts without them.
pub fn embedders_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    // Unwind tables are for native unwinders walking through wasm frames
    // (wasmtime's own backtraces do not use them), which nothing here does:
    // host functions' panics are caught before they reach wasm. Registering
    // them cost a `lockfile` process 3% of its start-up on musl, whose
    // unwinder indexes every function at once. Windows' ABI requires them.
    config.native_unwind_info(cfg!(windows));
    config
}

/// The wasmtime configuration of a [`Runtime`](crate::Runtime), for the
/// components it embeds.
pub fn config(allocation: Allocation) -> wasmtime::Config {
    let mut config = embedders_config();
    // The component's memory starts as its data segments copied in (56 KiB
    // of pages), not as a copy-on-write mapping of an image: the image of a
    // component embedded in the binary lives in a memfd that every process
    // creates and fills at load, which cost a `lockfile` process 2-3% of
    // its run. The copy costs an open from a warm pool 1.4 µs more (19.4
    // against 18.0 µs; acquire, release and status are unchanged). The
    // setting is part of a precompiled component's compatibility, so it
    // holds for every runtime, and the components embedders load into
    // engines of their own are precompiled apart, with the default
    // (bench/README.md).
    config.memory_init_cow(false);
    if let Allocation::Pooled(max) = allocation {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        // A component is a handful of core instances, memories and tables.
        pool.total_component_instances(max)
            .total_core_instances(max.saturating_mul(8))
            .total_memories(max.saturating_mul(2))
            .total_tables(max.saturating_mul(4))
            .max_memory_size(64 << 20)
            // Fiber stacks are for async calls, which the host never makes;
            // the default pool of 1000 costs 1000 `mprotect`s at start.
            .total_stacks(1)
            // Reset what a lock operation touches with memset instead of
            // madvise: no system call to free the slot and no page faults to
            // refill it on the next open.
            .linear_memory_keep_resident(256 << 10)
            .table_keep_resident(64 << 10);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    config
}
