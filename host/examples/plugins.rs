//! An application that runs plugins and hands them the lock: each plugin
//! instance gets WASI and `labm8:lockfile/lockfile` in one `Linker`, may lock
//! only in the directory it is given, and holds its locks as itself (two
//! plugins of this process exclude each other). Here the plugin is the
//! example plugin (`examples/plugin`), run twice at once on one journal.
//!
//! ```text
//! cargo run -p lockfile-host --example plugins -- /tmp/plugin-data
//! ```

use std::path::{Path, PathBuf};

use lockfile_host::plugin::{self, PluginLocks};
use lockfile_host::Runtime;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// What one plugin instance's store holds: its WASI context and its locks.
struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    locks: PluginLocks,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Runs the plugin once with `args`, with `data` as its `/data`; returns
/// its exit status.
fn run_plugin(
    engine: &Engine,
    linker: &Linker<PluginState>,
    component: &Component,
    runtime: &Runtime,
    data: &Path,
    args: &[&str],
) -> Result<i32, Box<dyn std::error::Error>> {
    let mut wasi = WasiCtxBuilder::new();
    // File-system calls on this thread (about 20 us each cheaper than a
    // blocking pool); must precede the preopens, which capture it.
    wasi.allow_blocking_current_thread(true);
    wasi.inherit_stdout().inherit_stderr().args(args);
    wasi.preopened_dir(data, "/data", FsPerms::ReadWrite)?;
    // The plugin may lock in `/data` too, and nowhere else.
    let locks = PluginLocks::builder(runtime).dir(data, "/data").build()?;
    let state = PluginState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        locks,
    };
    let mut store = Store::new(engine, state);
    let command = Command::instantiate(&mut store, component, linker)?;
    let status = match command.wasi_cli_run().call_run(&mut store) {
        Ok(Ok(())) => 0,
        Ok(Err(())) => 1,
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => exit.0,
            // A trap: dropping the store releases the locks it held.
            None => return Err(e.into()),
        },
    };
    Ok(status)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "/tmp/plugin-data".into()),
    );
    std::fs::create_dir_all(&data)?;

    let engine = Engine::default();
    let mut linker = Linker::<PluginState>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    plugin::add_to_linker(&mut linker, |state| &mut state.locks)?;
    // An application compiles its plugins (`Component::from_file`, with
    // wasmtime's `cranelift` feature). This example loads the one
    // lockfile-host's build script precompiled, so that it builds without
    // a compiler.
    // SAFETY: the file was produced by `Engine::precompile_component` of the
    // same wasmtime, with default settings; wasmtime refuses a mismatch.
    let component =
        unsafe { Component::deserialize_file(&engine, lockfile_host::PRECOMPILED_PLUGIN_EXAMPLE)? };
    let runtime = Runtime::new()?; // the lock's own sandboxes, shared by all plugins

    // Two plugins at once: the first holds the lock a while, the second
    // waits for it (up to 5 s) and writes after it.
    let statuses = std::thread::scope(|scope| {
        let run = |args: &'static [&'static str]| {
            let (engine, linker, component, runtime, data) =
                (&engine, &linker, &component, &runtime, &data);
            scope.spawn(move || {
                run_plugin(engine, linker, component, runtime, data, args)
                    .map_err(|e| e.to_string())
            })
        };
        let first = run(&[
            "plugin",
            "--hold-ms",
            "500",
            "/data/journal.lock",
            "/data/journal",
            "first plugin",
        ]);
        std::thread::sleep(std::time::Duration::from_millis(100));
        let second = run(&[
            "plugin",
            "--wait-ms",
            "5000",
            "/data/journal.lock",
            "/data/journal",
            "second plugin",
        ]);
        [first.join(), second.join()]
    });
    for status in statuses {
        match status {
            Ok(Ok(0)) => {}
            Ok(Ok(code)) => return Err(format!("a plugin exited with {code}").into()),
            Ok(Err(e)) => return Err(format!("a plugin failed: {e}").into()),
            Err(_) => return Err("a plugin thread panicked".into()),
        }
    }
    print!("{}", std::fs::read_to_string(data.join("journal"))?);
    Ok(())
}
