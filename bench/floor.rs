//! The floor of a `lockfile` process (issue 14): loads the same precompiled
//! component the same way the `lockfile` binary does, opens a sandbox for
//! the lock at its argument, and exits without doing any lock work. What
//! it costs is the cost of being a wasmtime command at all; `bench/compare.sh`
//! sets the real binary beside it.

use std::process::ExitCode;

// Linked as the `lockfile` binary is: its allocator and, on musl, its
// string functions (src/main.rs), so that the comparison measures what it
// claims to.
#[allow(dead_code)]
#[path = "../src/alloc.rs"]
mod alloc;
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
#[allow(dead_code)]
#[path = "../src/memfns.rs"]
mod memfns;

#[global_allocator]
static ALLOC: alloc::Arena = alloc::Arena::new();

fn main() -> ExitCode {
    ALLOC.prefault(alloc::PREFAULT);
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: floor LOCK");
        return ExitCode::from(2);
    };
    match lockfile_host::Runtime::for_command().and_then(|r| {
        let lock = r.open(&path)?;
        // As the binary does: the process exit frees it all.
        std::mem::forget(lock);
        std::mem::forget(r);
        Ok(())
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor: {e}");
            ExitCode::from(3)
        }
    }
}
