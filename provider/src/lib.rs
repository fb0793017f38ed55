//! `labm8:lockfile/process` from WASI alone: what processes are, read from a
//! preopened `/proc` with the same reader the command component uses
//! (`lockfile_core::proc_view`). Composed with the library component by
//! lockfile-host's build script, it makes `lockfile-wasi.wasm`, a lock that
//! any component runtime can run with nothing but WASI.
//!
//! Who the lock is for: the process running the runtime (`/proc/self`), so
//! that a service's lock lives exactly as long as the service; with
//! `LOCKFILE_PID=N` in the component's environment, process N instead.
//! Without `/proc` nothing is known: every pid's liveness is `unknown` (no
//! lock is ever judged stale) and the current process is pid 0, which the
//! library refuses to lock for.
//!
//! It exists only for `wasm32-wasip2`; on any other target it compiles to
//! nothing.
#![cfg(target_os = "wasi")]

mod bindings {
    wit_bindgen::generate!({
        world: "provider",
        path: "../wit",
        with: { "wasi:clocks/wall-clock@0.2.4": wasi::clocks::wall_clock },
    });

    use super::Provider;
    export!(Provider);
}

use std::sync::OnceLock;

use bindings::exports::labm8::lockfile::process::{
    Guest, Identity, Liveness, MachineFacts, ProcessInfo,
};
use lockfile_core::proc_view::ProcView;
use wasi::clocks::wall_clock::Datetime;

/// Linux's USER_HZ: `/proc` counts start times in these ticks on every
/// mainstream architecture, and WASI cannot ask `sysconf`.
const TICKS_PER_SECOND: u64 = 100;

/// The environment variable that names the process to lock for.
const PID_VAR: &str = "LOCKFILE_PID";

struct Provider;

fn proc() -> &'static ProcView {
    static PROC: OnceLock<ProcView> = OnceLock::new();
    PROC.get_or_init(|| ProcView::new(TICKS_PER_SECOND))
}

/// This machine, read once: it does not change while the component runs.
fn machine() -> &'static lockfile_core::Machine {
    static MACHINE: OnceLock<lockfile_core::Machine> = OnceLock::new();
    MACHINE.get_or_init(|| proc().machine())
}

fn identity(id: lockfile_core::Identity) -> Identity {
    Identity {
        pid: id.pid,
        start_ticks: id.start_ticks,
    }
}

/// The process running the runtime; pid 0 where `/proc` cannot tell (WASI
/// has no getpid), which the library refuses to lock for.
fn runner() -> Identity {
    proc().me().map_or(
        Identity {
            pid: 0,
            start_ticks: None,
        },
        identity,
    )
}

/// `LOCKFILE_PID` as given: `Some(Err(text))` when it is not a pid, which
/// makes the current process pid 0 (refused, nothing written) rather than
/// silently some other process.
fn pid_from_env() -> Option<Result<u32, String>> {
    let (_, value) = wasi::cli::environment::get_environment()
        .into_iter()
        .find(|(key, _)| key == PID_VAR)?;
    Some(value.trim().parse::<u32>().map_err(|_| value))
}

impl Guest for Provider {
    fn current() -> Identity {
        match pid_from_env() {
            None => runner(),
            Some(Ok(pid)) => Identity {
                pid,
                start_ticks: proc().info(pid, proc().probe(pid)).start_ticks,
            },
            Some(Err(_)) => Identity {
                pid: 0,
                start_ticks: None,
            },
        }
    }

    fn runner() -> Identity {
        runner()
    }

    fn companion() -> Option<Identity> {
        None
    }

    fn machine() -> MachineFacts {
        let m = machine();
        MachineFacts {
            hostname: m.hostname.clone(),
            boot_id: m.boot_id.clone(),
            pid_namespace: m.pid_namespace,
        }
    }

    fn holder() -> Option<u64> {
        None
    }

    fn pid_namespace_alive(inode: u64) -> Option<bool> {
        proc().pid_namespace_alive(inode, machine().pid_namespace)
    }

    fn query(pid: u32) -> ProcessInfo {
        let info = proc().info(pid, proc().probe(pid));
        ProcessInfo {
            liveness: match info.liveness {
                lockfile_core::Liveness::Alive => Liveness::Alive,
                lockfile_core::Liveness::Dead => Liveness::Dead,
                lockfile_core::Liveness::Unknown => Liveness::Unknown,
            },
            start_ticks: info.start_ticks,
            start_time: info.start_time.map(|t| Datetime {
                seconds: t.seconds,
                nanoseconds: t.nanos,
            }),
        }
    }
}
