//! [`System`] over a preopened `/proc`: what the command component knows
//! about processes when run by the stock `wasmtime run` (which cannot provide
//! the `process` import the library component uses).
//!
//! `/proc/PID` exists exactly while the process does (whoever owns it), so
//! there is no EPERM question, except under `hidepid`, where a missing
//! `/proc/PID` proves nothing and liveness is `unknown`. Without `--dir /proc::/proc` nothing is known:
//! every pid is `unknown`, so no lock is judged stale.

use std::cell::OnceCell;
use std::fs;

use lockfile_core::{procfs, Identity, Liveness, Machine, ProcessInfo, System, Timestamp};

/// Linux's USER_HZ: `/proc` reports times in these ticks on every mainstream
/// architecture, and WASI cannot ask `sysconf`.
const TICKS_PER_SECOND: u64 = 100;

/// Processes as seen through `/proc`.
#[derive(Debug)]
pub struct ProcSystem {
    acting: Identity,
    runner: Identity,
    machine: OnceCell<Machine>,
    btime: OnceCell<Option<u64>>,
}

/// Whether `/proc` is preopened.
pub fn available() -> bool {
    fs::metadata("/proc/self/stat").is_ok()
}

/// Whether /proc shows every process: false under `hidepid=1/2`, where
/// another user's process looks exactly like a dead one.
fn all_visible() -> bool {
    fs::metadata("/proc/1/stat").is_ok()
}

fn stat(pid: &str) -> Option<procfs::Stat> {
    procfs::parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

impl ProcSystem {
    /// Acts for `pid`, or for the parent of the wasmtime process.
    ///
    /// # Errors
    /// A sentence when the process is unknown or not running.
    pub fn new(pid: Option<u32>) -> Result<Self, String> {
        let me = stat("self");
        let runner = Identity {
            pid: me.map_or(0, |s| s.pid),
            start_ticks: me.map(|s| s.start_ticks),
        };
        let pid = match (pid, me) {
            (Some(pid), _) => pid,
            (None, Some(me)) => me.ppid,
            (None, None) => {
                return Err("cannot tell which process to lock for without /proc: \
                            add `--dir /proc::/proc` to `wasmtime run`, or give --pid"
                    .into())
            }
        };
        let sys = ProcSystem {
            acting: Identity {
                pid,
                start_ticks: None,
            },
            runner,
            machine: OnceCell::new(),
            btime: OnceCell::new(),
        };
        sys.checked()
    }

    /// Acts for `pid` without checking it runs: for planting a record.
    pub fn unchecked(pid: u32) -> Self {
        let me = stat("self");
        ProcSystem {
            acting: Identity {
                pid,
                start_ticks: None,
            },
            runner: Identity {
                pid: me.map_or(0, |s| s.pid),
                start_ticks: me.map(|s| s.start_ticks),
            },
            machine: OnceCell::new(),
            btime: OnceCell::new(),
        }
    }

    fn checked(self) -> Result<Self, String> {
        let sys = self;
        let pid = sys.acting.pid;
        let info = sys.query(pid);
        if info.liveness == Liveness::Dead {
            return Err(format!(
                "process {pid} is not running, so no lock can be taken for it"
            ));
        }
        Ok(ProcSystem {
            acting: Identity {
                pid,
                start_ticks: info.start_ticks,
            },
            ..sys
        })
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
        self.machine
            .get_or_init(|| {
                let read = |p: &str| {
                    fs::read_to_string(p)
                        .ok()
                        .map(|s| s.trim().to_owned())
                        .filter(|s| lockfile_core::format::valid_word(s))
                };
                Machine {
                    hostname: read("/proc/sys/kernel/hostname"),
                    boot_id: read("/proc/sys/kernel/random/boot_id"),
                    pid_namespace: fs::read_link("/proc/self/ns/pid")
                        .ok()
                        .and_then(|l| procfs::parse_ns_link(&l.to_string_lossy())),
                }
            })
            .clone()
    }

    fn query(&self, pid: u32) -> ProcessInfo {
        if !available() {
            return ProcessInfo::UNKNOWN;
        }
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(text) => match procfs::parse_stat(&text) {
                Some(s) if s.is_zombie() => ProcessInfo {
                    liveness: Liveness::Dead,
                    ..ProcessInfo::UNKNOWN
                },
                Some(s) => {
                    let btime = *self.btime.get_or_init(|| {
                        procfs::parse_btime(&fs::read_to_string("/proc/stat").ok()?)
                    });
                    ProcessInfo {
                        liveness: Liveness::Alive,
                        start_ticks: Some(s.start_ticks),
                        start_time: btime
                            .and_then(|b| procfs::start_time(b, TICKS_PER_SECOND, s.start_ticks)),
                    }
                }
                None => ProcessInfo {
                    liveness: Liveness::Alive,
                    ..ProcessInfo::UNKNOWN
                },
            },
            // Under `hidepid`, other users' processes are missing from /proc:
            // absence means death only where pid 1 (never dead) is visible.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && all_visible() => ProcessInfo {
                liveness: Liveness::Dead,
                ..ProcessInfo::UNKNOWN
            },
            Err(_) => ProcessInfo::UNKNOWN,
        }
    }

    fn now(&self) -> Timestamp {
        lockfile_cli::now()
    }

    fn random(&self) -> u64 {
        wasi::random::random::get_random_u64()
    }
}
