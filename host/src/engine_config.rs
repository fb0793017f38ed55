//! The engine settings, shared by `build.rs` (which precompiles the
//! component) and the runtime (which loads it): a precompiled component only
//! loads into an engine configured the same way.

/// The wasmtime configuration for the lockfile component.
pub fn config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config
}
