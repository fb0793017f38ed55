//! The engine settings, shared by `build.rs` (which precompiles the
//! component) and the runtime (which loads it): a precompiled component only
//! loads into an engine configured the same way.

/// How many lock sandboxes may exist at once in one process (each open
/// `LockFile` is one). Instances come from a preallocated pool, which makes
/// opening a lock several times cheaper than mapping fresh memory each time.
pub const MAX_OPEN_LOCKS: u32 = 1000;

/// The wasmtime configuration for the lockfile component.
pub fn config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    // A component is a handful of core instances, memories and tables.
    pool.total_component_instances(MAX_OPEN_LOCKS)
        .total_core_instances(MAX_OPEN_LOCKS * 8)
        .total_memories(MAX_OPEN_LOCKS * 2)
        .total_tables(MAX_OPEN_LOCKS * 4)
        .max_memory_size(64 << 20)
        // Reset what a lock operation touches with memset instead of
        // madvise: no system call to free the slot and no page faults to
        // refill it on the next open.
        .linear_memory_keep_resident(256 << 10)
        .table_keep_resident(64 << 10);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    config
}
