//! [`System`] over a preopened `/proc`: what the command component knows
//! about processes when run by the stock `wasmtime run` (which cannot provide
//! the `process` import the library component uses).
//!
//! `/proc/PID` exists exactly while the process does (whoever owns it), so
//! there is no EPERM question, except under `hidepid`, where a missing
//! `/proc/PID` proves nothing and liveness is `unknown`. Without `--dir
//! /proc::/proc` nothing is known: every pid is `unknown`, so no lock is
//! judged stale. The same holds for a `/proc` that belongs to an ancestor PID
//! namespace (`unshare -p -f` without `--mount-proc`): its `/proc/PID` are
//! not the processes our pids name.

use std::cell::OnceCell;
use std::sync::OnceLock;

use lockfile_core::proc_view::{ProcView, View};
use lockfile_core::{Identity, Liveness, Machine, ProcessInfo, System, Timestamp};

/// Linux's USER_HZ: `/proc` reports times in these ticks on every mainstream
/// architecture, and WASI cannot ask `sysconf`.
const TICKS_PER_SECOND: u64 = 100;

/// Processes as seen through `/proc`.
#[derive(Debug)]
pub struct ProcSystem {
    acting: Identity,
    runner: Identity,
    machine: OnceCell<Machine>,
}

fn proc() -> &'static ProcView {
    static PROC: OnceLock<ProcView> = OnceLock::new();
    PROC.get_or_init(|| ProcView::new(TICKS_PER_SECOND))
}

/// Why the component cannot see processes, for messages; `None` when it can.
pub fn blind_because() -> Option<&'static str> {
    match proc().view() {
        View::Ours => None,
        View::Absent => {
            Some("add `--dir /proc::/proc` to `wasmtime run` so the component can see processes")
        }
        View::Ancestors => Some(
            "the preopened /proc belongs to an ancestor PID namespace (as after `unshare -p -f` \
             without `--mount-proc`), so its processes are not the ones our pids name; \
             mount a /proc for this namespace",
        ),
    }
}

/// The process running this component (the wasmtime process); pid 0 where
/// it cannot be told (no /proc: WASI has no getpid).
pub fn runner() -> Identity {
    proc().me().unwrap_or(Identity {
        pid: 0,
        start_ticks: None,
    })
}

/// Why a lock cannot be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The command line must say more (`--pid`).
    Usage(String),
    /// The process named is not running.
    Other(String),
}

impl ProcSystem {
    /// Acts for `pid`, or for the parent of the wasmtime process.
    ///
    /// # Errors
    /// When the process is unknown or not running.
    pub fn new(pid: Option<u32>) -> Result<Self, OpenError> {
        let pid = match (pid, proc().view()) {
            (Some(pid), _) => pid,
            (None, View::Ours) => proc().parent().ok_or_else(|| {
                OpenError::Usage(
                    "cannot read /proc/self/stat to find the parent; give --pid".into(),
                )
            })?,
            (None, _) => {
                return Err(OpenError::Usage(format!(
                    "cannot tell which process to lock for: {}; or give --pid",
                    blind_because().unwrap_or_default()
                )))
            }
        };
        let sys = ProcSystem::unchecked(pid);
        let info = sys.query(pid);
        if info.liveness == Liveness::Dead {
            return Err(OpenError::Other(format!(
                "process {pid} is not running, so no lock can be taken for it"
            )));
        }
        Ok(ProcSystem {
            acting: Identity {
                pid,
                start_ticks: info.start_ticks,
            },
            ..sys
        })
    }

    /// Acts for no process: for looking at a lock (`status`) where the
    /// caller cannot be known. Pid 0 is no process, so nothing is ever
    /// `owned-by-self`, and acquiring or releasing refuses.
    pub fn spectator() -> Self {
        ProcSystem::unchecked(0)
    }

    /// Looks from `pid`'s point of view, whether or not it runs: for
    /// reports (`status --pid`, `list --pid`), which act for no one.
    pub fn viewer(pid: u32) -> Self {
        let sys = ProcSystem::unchecked(pid);
        ProcSystem {
            acting: Identity {
                pid,
                start_ticks: sys.query(pid).start_ticks,
            },
            ..sys
        }
    }

    /// Acts for `pid` without checking it runs: for planting a record.
    pub fn unchecked(pid: u32) -> Self {
        ProcSystem {
            acting: Identity {
                pid,
                start_ticks: None,
            },
            runner: runner(),
            machine: OnceCell::new(),
        }
    }
}

impl System for ProcSystem {
    fn current(&self) -> Identity {
        self.acting
    }

    fn runner(&self) -> Identity {
        self.runner
    }

    fn machine(&self) -> Machine {
        self.machine.get_or_init(|| proc().machine()).clone()
    }

    fn query(&self, pid: u32) -> ProcessInfo {
        proc().info(pid, proc().probe(pid))
    }

    fn pid_namespace_alive(&self, inode: u64) -> Option<bool> {
        proc().pid_namespace_alive(inode, self.machine().pid_namespace)
    }

    fn now(&self) -> Timestamp {
        lockfile_cli::now()
    }

    fn random(&self) -> u64 {
        wasi::random::random::get_random_u64()
    }

    fn checkpoint(&self, name: &str) {
        lockfile_core::testing::pause_at(name, self.acting.pid);
    }
}
