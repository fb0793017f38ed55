//! The host side of the `library` world, generated from `wit/`: what the
//! runtime calls (the `lockfile` export) and what it provides (`process`,
//! `files`). In a module of its own so that every file that needs the
//! generated types imports them from here, not from the runtime.

wasmtime::component::bindgen!({
    world: "library",
    path: "../wit",
    // WASI's own types, as wasmtime-wasi defines them: the descriptors
    // `files` takes are the ones in the store's resource table.
    with: {
        "wasi:clocks/wall-clock": wasmtime_wasi::p2::bindings::clocks::wall_clock,
        "wasi:filesystem/types": wasmtime_wasi::p2::bindings::sync::filesystem::types,
        "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
    },
});
