//! `lockfile-command.wasm`: the `lockfile` command line as a WASI command
//! component, for the stock `wasmtime run`:
//!
//! ```text
//! wasmtime run --dir /var/lock::/var/lock --dir /proc::/proc \
//!     lockfile-command.wasm acquire /var/lock/job.lock
//! ```
//!
//! The same core protocol as the library component, built into this command
//! with a `/proc` reader for process knowledge (`proc.rs`), because stock
//! `wasmtime run` can only satisfy WASI imports.
//!
//! It exists only for `wasm32-wasip2` (lockfile-host's build script builds
//! it); built for any other target it only says so.

#[cfg(target_os = "wasi")]
mod app;
#[cfg(target_os = "wasi")]
mod proc;

#[cfg(target_os = "wasi")]
fn main() {
    app::main()
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!(
        "lockfile-command is a WASI command component: build it with \
         `--target wasm32-wasip2` (`cargo build` does, through lockfile-host's build script), \
         and run it with `wasmtime run`"
    );
    std::process::exit(2);
}
