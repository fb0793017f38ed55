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
use std::fs;
use std::sync::OnceLock;

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

/// What the preopened `/proc` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// Our PID namespace's: its pids are ours.
    Ours,
    /// An ancestor namespace's: our pid there is not our pid.
    Ancestors,
    /// Not preopened.
    Absent,
}

fn view() -> View {
    static VIEW: OnceLock<View> = OnceLock::new();
    *VIEW.get_or_init(|| match fs::read_to_string("/proc/self/status") {
        Err(_) => View::Absent,
        // Without NSpid (kernels before 4.1) there is no telling: trust it,
        // as before namespaces existed.
        Ok(status) => match procfs::proc_is_ours(&status) {
            Some(false) => View::Ancestors,
            _ => View::Ours,
        },
    })
}

/// Whether `/proc` is preopened and describes our PID namespace.
pub fn available() -> bool {
    view() == View::Ours
}

/// Why the component cannot see processes, for messages; `None` when it can.
pub fn blind_because() -> Option<&'static str> {
    match view() {
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

/// Whether /proc shows every process: false under `hidepid=1/2`, where
/// another user's process looks exactly like a dead one.
fn all_visible() -> bool {
    fs::metadata("/proc/1/stat").is_ok()
}

fn stat(pid: &str) -> Option<procfs::Stat> {
    procfs::parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The process running this component (the wasmtime process).
fn runner() -> Identity {
    match view() {
        View::Ours => {
            let me = stat("self");
            Identity {
                pid: me.map_or(0, |s| s.pid),
                start_ticks: me.map(|s| s.start_ticks),
            }
        }
        // Our pid in our own namespace is the innermost of NSpid.
        View::Ancestors => Identity {
            pid: fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| procfs::parse_nspid(&s)?.last().copied())
                .unwrap_or(0),
            start_ticks: None,
        },
        View::Absent => Identity {
            pid: 0,
            start_ticks: None,
        },
    }
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
        let pid = match (pid, view()) {
            (Some(pid), _) => pid,
            (None, View::Ours) => stat("self").map(|s| s.ppid).ok_or_else(|| {
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

    /// Acts for `pid` without checking it runs: for planting a record.
    pub fn unchecked(pid: u32) -> Self {
        ProcSystem {
            acting: Identity {
                pid,
                start_ticks: None,
            },
            runner: runner(),
            machine: OnceCell::new(),
            btime: OnceCell::new(),
        }
    }
}

/// Whether any thread of the zombie leader `pid` runs (after `pthread_exit`
/// in main the others run on). Unlistable threads count as running.
fn threads_run(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    procfs::threads_run(tasks.filter_map(|task| {
        let tid = task.ok()?.file_name().into_string().ok()?;
        stat(&format!("{pid}/task/{tid}")).map(|s| s.state)
    }))
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
                    // A namespace link belongs to the task: ours even where
                    // /proc is an ancestor's.
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
                Some(s) if s.is_zombie() && !threads_run(pid) => ProcessInfo {
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

    fn pid_namespace_alive(&self, inode: u64) -> Option<bool> {
        // Only from the initial namespace, with its own /proc, is every
        // process of the machine listed.
        // Under `hidepid`, other users' processes are not listed at all:
        // only where pid 1 (never gone) is visible can the list be complete.
        if !available()
            || !all_visible()
            || self.machine().pid_namespace != Some(procfs::INITIAL_PID_NAMESPACE)
        {
            return None;
        }
        for entry in fs::read_dir("/proc").ok()? {
            let name = entry.ok()?.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            match fs::read_link(format!("/proc/{pid}/ns/pid")) {
                Ok(link) if procfs::parse_ns_link(&link.to_string_lossy()) == Some(inode) => {
                    return Some(true)
                }
                Ok(_) => {}
                // The process exited while we looked.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // A process we may not inspect (another user's, or one with
                // capabilities we lack, such as init): its status still says
                // whether it is in our namespace, which is not `inode`.
                Err(_) => {
                    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                    if procfs::in_proc_namespace(&status) != Some(true) {
                        return None;
                    }
                }
            }
        }
        Some(false)
    }

    fn now(&self) -> Timestamp {
        lockfile_cli::now()
    }

    fn random(&self) -> u64 {
        wasi::random::random::get_random_u64()
    }
}
