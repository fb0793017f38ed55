//! The floor of a `lockfile` process (issue 14): loads the same precompiled
//! component the same way the `lockfile` binary does, opens a sandbox for
//! the lock at its argument, and exits without doing any lock work. What
//! it costs is the cost of being a wasmtime command at all; `bench/compare.sh`
//! sets the real binary beside it.

use std::process::ExitCode;

// Linked as the `lockfile` binary is.
mod linked;

fn main() -> ExitCode {
    linked::ALLOC.prefault(linked::alloc::PREFAULT);
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
