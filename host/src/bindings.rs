//! The host side of the `library` world, generated from `wit/`: what the
//! runtime calls (the `lockfile` export) and what it provides (`process`,
//! `files`); of the `coordinated-library` world (`coordinated`), which adds
//! locks in a key-value store (the `kv` import, the `kv-lockfile` export);
//! and of the `plugin` world, what a plugin imports (the
//! `lockfile` interface, which `plugin.rs` answers). In a module of their
//! own so that every file that needs the generated types imports them from
//! here, not from the runtime or the plugin support.

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

/// The `coordinated-library` world: the library and locks kept in a
/// key-value store. Its `process` and `files` imports are the library's
/// (one implementation links both); its exports' types are generated again.
pub(crate) mod coordinated {
    wasmtime::component::bindgen!({
        world: "coordinated-library",
        path: "../wit",
        with: {
            "wasi:clocks/wall-clock": wasmtime_wasi::p2::bindings::clocks::wall_clock,
            "wasi:filesystem/types": wasmtime_wasi::p2::bindings::sync::filesystem::types,
            "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
            "labm8:lockfile/process": super::labm8::lockfile::process,
            "labm8:lockfile/files": super::labm8::lockfile::files,
        },
    });
}

/// A plugin's `lock-file` handle, as the application's store sees it: an
/// index into its [`crate::plugin::PluginLocks`].
#[derive(Debug)]
pub struct PluginLock {
    _private: (),
}

/// The `plugin` world: what a plugin imports.
pub(crate) mod plugin_world {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit",
        with: {
            "wasi:clocks/wall-clock": wasmtime_wasi::p2::bindings::clocks::wall_clock,
            "labm8:lockfile/lockfile.lock-file": super::PluginLock,
        },
    });
}
