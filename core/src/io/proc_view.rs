//! The one `/proc` reader: process and machine facts for the native host and
//! for the WASI components, which read the same files through a preopened
//! `/proc` (`std::fs` works on both). Only the liveness probe differs, so the
//! caller supplies it: `kill(pid, 0)` natively, [`ProcView::probe`] under WASI.
//!
//! `/proc` is used only where it describes our own PID namespace: in a
//! namespace that shares an ancestor's `/proc` (`unshare -p -f` without
//! `--mount-proc`), `/proc/PID` is another process than the one our pid
//! names, so there it gives no facts at all.

use std::fs;
use std::sync::OnceLock;

use crate::decide::{Identity, Liveness, Machine, ProcessInfo};
use crate::io::procfs::{self, Stat};

/// What `/proc` is, as seen from this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Our PID namespace's: its pids are ours.
    Ours,
    /// An ancestor namespace's: its pids are not ours.
    Ancestors,
    /// Not there (not mounted, or not preopened).
    Absent,
}

/// `/proc`, read lazily; cheap to create.
#[derive(Debug)]
pub struct ProcView {
    view: View,
    ticks_per_second: u64,
    btime: OnceLock<Option<u64>>,
    /// Our PID namespace (its inode), read once: a process never changes it.
    pid_namespace: Option<u64>,
}

/// A `/proc` file whole. `/proc` files report size 0, so
/// `fs::read_to_string` asks the size (`statx`) and then reads in doubling
/// steps from 32 bytes: eight system calls for `/proc/self/status`. One
/// page-sized read gets any of the files read here in one, and the kernel
/// renders such a file on its first read anyway.
fn read_proc(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    let mut bytes = vec![0; 4096];
    let mut len = 0;
    loop {
        if len == bytes.len() {
            bytes.resize(len * 2, 0);
        }
        match file.read(&mut bytes[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // Lossy: a process may name itself with any bytes (`stat`'s second
    // field), and every field read from these files is ASCII.
    Ok(String::from_utf8_lossy(&bytes[..len]).into_owned())
}

/// Whether `/proc` is certainly ours, told cheaply: we are in the initial
/// PID namespace (as `/proc/self/ns/pid` says, which names the task's own
/// namespace through whichever `/proc` resolved `self`) and `/proc/self`
/// is our pid. The initial namespace has no ancestor whose `/proc` we could
/// be looking at, and a descendant's `/proc` has no `self` for us. Anywhere
/// else (a container, or WASI, which has no pid of its own to compare),
/// `false`: ask `NSpid`.
fn initial_namespace_and_ours(pid_namespace: Option<u64>) -> bool {
    #[cfg(target_os = "wasi")]
    return {
        let _ = pid_namespace;
        false
    };
    #[cfg(not(target_os = "wasi"))]
    {
        pid_namespace == Some(procfs::INITIAL_PID_NAMESPACE)
            && fs::read_link("/proc/self")
                .is_ok_and(|me| me.as_os_str() == std::process::id().to_string().as_str())
    }
}

/// Our PID namespace, from the task's own link (ours even where `/proc` is
/// an ancestor's).
fn own_pid_namespace() -> Option<u64> {
    fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|l| procfs::parse_ns_link(&l.to_string_lossy()))
}

fn stat(pid: &str) -> Option<Stat> {
    procfs::parse_stat(&read_proc(&format!("/proc/{pid}/stat")).ok()?)
}

fn word(path: &str) -> Option<String> {
    read_proc(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| crate::format::valid_word(s))
}

impl ProcView {
    /// Looks at `/proc` once. `ticks_per_second` is the unit of start times
    /// (`sysconf(_SC_CLK_TCK)`; Linux's USER_HZ, 100, where that cannot be asked).
    pub fn new(ticks_per_second: u64) -> Self {
        let pid_namespace = own_pid_namespace();
        let view = if initial_namespace_and_ours(pid_namespace) {
            View::Ours
        } else {
            Self::view_from_status()
        };
        ProcView {
            view,
            ticks_per_second,
            btime: OnceLock::new(),
            pid_namespace,
        }
    }

    /// Whose `/proc` it is, from `NSpid` in `/proc/self/status` (which the
    /// kernel renders whole, every memory and signal field of it).
    fn view_from_status() -> View {
        match read_proc("/proc/self/status") {
            Err(_) => View::Absent,
            // Without NSpid (kernels before 4.1) there is no telling: trust
            // it, as before namespaces existed.
            Ok(status) => match procfs::proc_is_ours(&status) {
                Some(false) => View::Ancestors,
                _ => View::Ours,
            },
        }
    }

    /// Takes the boot time (seconds since the epoch, as `btime` in
    /// `/proc/stat`) from the caller, who may know it more cheaply: the
    /// kernel builds all of `/proc/stat`, every CPU's and interrupt's
    /// counters, to answer that one line. `None` keeps reading it.
    #[must_use]
    pub fn with_boot_time(self, btime: Option<u64>) -> Self {
        match btime {
            Some(b) => ProcView {
                btime: OnceLock::from(Some(b)),
                ..self
            },
            None => self,
        }
    }

    /// What `/proc` is.
    pub fn view(&self) -> View {
        self.view
    }

    /// Whether `/proc` gives facts about our processes.
    pub fn usable(&self) -> bool {
        self.view == View::Ours
    }

    /// Whether every process is listed: false under `hidepid`, where other
    /// users' processes are hidden (pid 1, never gone, then is).
    pub fn all_visible(&self) -> bool {
        fs::metadata("/proc/1/stat").is_ok()
    }

    /// Liveness from `/proc` alone, for hosts that cannot signal (WASI):
    /// `/proc/PID` exists exactly while the process does, whoever owns it;
    /// where not every process is visible, absence proves nothing.
    pub fn probe(&self, pid: u32) -> Liveness {
        if !self.usable() {
            return Liveness::Unknown;
        }
        match fs::metadata(format!("/proc/{pid}")) {
            Ok(_) => Liveness::Alive,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.all_visible() => {
                Liveness::Dead
            }
            Err(_) => Liveness::Unknown,
        }
    }

    /// What is known about `pid`, given what the caller's probe said of it:
    /// its start time, and whether a zombie leader's threads still run.
    pub fn info(&self, pid: u32, liveness: Liveness) -> ProcessInfo {
        let bare = ProcessInfo {
            liveness,
            start_ticks: None,
            start_time: None,
        };
        if liveness != Liveness::Alive || !self.usable() {
            return bare;
        }
        let Some(stat) = stat(&pid.to_string()) else {
            return bare;
        };
        // A zombie leader has exited, but its other threads may run on (after
        // `pthread_exit` in main): the process is dead only when they are too.
        let liveness = if stat.is_zombie() && !threads_run(pid) {
            Liveness::Dead
        } else {
            Liveness::Alive
        };
        let btime = *self
            .btime
            .get_or_init(|| procfs::parse_btime(&read_proc("/proc/stat").ok()?));
        ProcessInfo {
            liveness,
            start_ticks: Some(stat.start_ticks),
            start_time: btime
                .and_then(|b| procfs::start_time(b, self.ticks_per_second, stat.start_ticks)),
        }
    }

    /// This process: its pid in our namespace and start time. Where `/proc`
    /// is an ancestor's, the pid is the innermost of `NSpid` and the start
    /// time is not given; `None` without `/proc`.
    pub fn me(&self) -> Option<Identity> {
        match self.view {
            View::Ours => stat("self").map(|s| Identity {
                pid: s.pid,
                start_ticks: Some(s.start_ticks),
            }),
            View::Ancestors => read_proc("/proc/self/status")
                .ok()
                .and_then(|s| procfs::parse_nspid(&s)?.last().copied())
                .map(|pid| Identity {
                    pid,
                    start_ticks: None,
                }),
            View::Absent => None,
        }
    }

    /// The parent of this process, where `/proc` is ours.
    pub fn parent(&self) -> Option<u32> {
        self.usable()
            .then(|| stat("self").map(|s| s.ppid))
            .flatten()
    }

    /// Host name, boot id and PID namespace. The namespace comes from the
    /// task's own link, which is ours even where `/proc` is an ancestor's.
    pub fn machine(&self) -> Machine {
        self.machine_named(None)
    }

    /// As [`ProcView::machine`], with the host name from the caller where
    /// it has one (`uname`: one system call where `/proc` takes four).
    pub fn machine_named(&self, hostname: Option<String>) -> Machine {
        Machine {
            hostname: hostname.or_else(|| word("/proc/sys/kernel/hostname")),
            boot_id: word("/proc/sys/kernel/random/boot_id"),
            pid_namespace: self.pid_namespace,
        }
    }

    /// Whether any process on this machine is in the PID namespace `inode`:
    /// `Some(false)` only from the initial namespace, with our own `/proc`,
    /// every process visible, and every process's namespace readable (or,
    /// where that is refused, its `NSpid` showing it in our namespace).
    pub fn pid_namespace_alive(&self, inode: u64, ours: Option<u64>) -> Option<bool> {
        if !self.usable() || !self.all_visible() || ours != Some(procfs::INITIAL_PID_NAMESPACE) {
            return None;
        }
        for entry in fs::read_dir("/proc").ok()? {
            let name = entry.ok()?.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
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
                    let status = read_proc(&format!("/proc/{pid}/status")).ok()?;
                    if procfs::in_proc_namespace(&status) != Some(true) {
                        return None;
                    }
                }
            }
        }
        Some(false)
    }
}

/// Whether any thread of the zombie leader `pid` runs. Unlistable threads
/// count as running (never stale by guess).
fn threads_run(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    procfs::threads_run(tasks.filter_map(|task| {
        let tid = task.ok()?.file_name().into_string().ok()?;
        stat(&format!("{pid}/task/{tid}")).map(|s| s.state)
    }))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_with_a_start_time_and_a_parent() {
        let proc = ProcView::new(100);
        assert_eq!(proc.view(), View::Ours);
        let me = proc.me().expect("me");
        assert_eq!(me.pid, std::process::id());
        let info = proc.info(me.pid, Liveness::Alive);
        assert_eq!(info.liveness, Liveness::Alive);
        assert_eq!(info.start_ticks, me.start_ticks);
        assert!(info.start_time.is_some());
        assert!(proc.parent().is_some());
        assert_eq!(proc.probe(me.pid), Liveness::Alive);
    }

    #[test]
    fn our_namespace_is_alive_and_an_unused_inode_is_not() {
        let proc = ProcView::new(100);
        let ours = proc.machine().pid_namespace;
        if ours == Some(procfs::INITIAL_PID_NAMESPACE) && proc.all_visible() {
            assert_eq!(
                proc.pid_namespace_alive(ours.unwrap_or(0), ours),
                Some(true)
            );
            assert_eq!(proc.pid_namespace_alive(1, ours), Some(false));
        } else {
            assert_eq!(proc.pid_namespace_alive(1, ours), None);
        }
    }
}
