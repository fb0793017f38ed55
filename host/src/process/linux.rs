//! Linux: `kill(pid, 0)` and `/proc`.
//!
//! `/proc` is used only where it describes our own PID namespace: a process
//! in a namespace that shares its parent's `/proc` (`unshare -p -f` without
//! `--mount-proc`) reaches pids with `kill` that `/proc` shows as other
//! processes, so there it judges by `kill` alone.

use std::fs;
use std::sync::OnceLock;

use lockfile_core::{procfs, Liveness, Machine, ProcessInfo, Timestamp};
use rustix::io::Errno;
use rustix::process::{test_kill_process, Pid};

/// Whether `/proc` describes our PID namespace (read once).
fn proc_is_ours() -> bool {
    static OURS: OnceLock<bool> = OnceLock::new();
    *OURS.get_or_init(|| {
        let Ok(status) = fs::read_to_string("/proc/self/status") else {
            return false;
        };
        procfs::proc_is_ours(&status).unwrap_or_else(|| {
            // No NSpid (a kernel before 4.1): compare `/proc/self` with getpid.
            fs::read_link("/proc/self")
                .ok()
                .and_then(|l| l.to_str()?.parse::<u32>().ok())
                == Some(std::process::id())
        })
    })
}

/// What is known about `pid`.
pub fn query(pid: u32) -> ProcessInfo {
    let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return ProcessInfo {
            liveness: Liveness::Dead,
            start_ticks: None,
            start_time: None,
        };
    };
    let liveness = match test_kill_process(raw) {
        // EPERM: the process exists but belongs to someone we may not signal.
        Ok(()) | Err(Errno::PERM) => Liveness::Alive,
        Err(Errno::SRCH) => Liveness::Dead,
        Err(_) => Liveness::Unknown,
    };
    let stat = (liveness == Liveness::Alive && proc_is_ours())
        .then(|| fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .flatten();
    let Some(stat) = stat.as_deref().and_then(procfs::parse_stat) else {
        return ProcessInfo {
            liveness,
            start_ticks: None,
            start_time: None,
        };
    };
    // A zombie leader has exited, but its other threads may run on (after
    // `pthread_exit` in main): the process is dead only when they are too.
    let liveness = if stat.is_zombie() && !threads_run(pid) {
        Liveness::Dead
    } else {
        liveness
    };
    ProcessInfo {
        liveness,
        start_ticks: Some(stat.start_ticks),
        start_time: start_time(stat.start_ticks),
    }
}

/// Whether any thread of `pid` runs, from `/proc/PID/task`. If the threads
/// cannot be listed, the process counts as running (never stale by guess).
fn threads_run(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    procfs::threads_run(tasks.filter_map(|task| {
        let task = task.ok()?;
        let stat = fs::read_to_string(task.path().join("stat")).ok()?;
        procfs::parse_stat(&stat).map(|s| s.state)
    }))
}

/// Whether any process on this machine is in the PID namespace `inode`:
/// `Some(false)` only when we are in the initial namespace with its own
/// `/proc` (so every process is listed) and could read every process's
/// namespace; `None` otherwise.
pub fn pid_namespace_alive(inode: u64) -> Option<bool> {
    // Under `hidepid`, other users' processes are not listed at all: only
    // where pid 1 (never gone) is visible can the list be complete.
    if machine().pid_namespace != Some(procfs::INITIAL_PID_NAMESPACE)
        || !proc_is_ours()
        || fs::metadata("/proc/1/stat").is_err()
    {
        return None;
    }
    for entry in fs::read_dir("/proc").ok()? {
        let entry = entry.ok()?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        match rustix::fs::stat(format!("/proc/{pid}/ns/pid")) {
            Ok(st) if st.st_ino == inode => return Some(true),
            Ok(_) => {}
            // The process exited while we looked: it is in no namespace now.
            Err(Errno::NOENT | Errno::SRCH) => {}
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

/// Boot time and clock ticks per second, read once.
fn clock() -> Option<(u64, u64)> {
    static CLOCK: OnceLock<Option<(u64, u64)>> = OnceLock::new();
    *CLOCK.get_or_init(|| {
        let btime = procfs::parse_btime(&fs::read_to_string("/proc/stat").ok()?)?;
        Some((btime, rustix::param::clock_ticks_per_second()))
    })
}

fn start_time(ticks: u64) -> Option<Timestamp> {
    let (btime, hz) = clock()?;
    procfs::start_time(btime, hz, ticks)
}

/// Host name, boot id and PID namespace of this machine, read once.
pub fn machine() -> Machine {
    static MACHINE: OnceLock<Machine> = OnceLock::new();
    MACHINE
        .get_or_init(|| Machine {
            hostname: super::unix_hostname(),
            boot_id: fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            // `/proc/self/ns/pid` is our own namespace even where `/proc` is
            // an ancestor's: namespace links belong to the task.
            pid_namespace: rustix::fs::stat("/proc/self/ns/pid").ok().map(|s| s.st_ino),
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_with_a_start_time() {
        let me = query(std::process::id());
        assert_eq!(me.liveness, Liveness::Alive);
        assert!(me.start_ticks.is_some());
        assert!(me.start_time.is_some());
    }

    #[test]
    fn pids_beyond_pid_t_are_dead() {
        assert_eq!(query(u32::MAX).liveness, Liveness::Dead);
    }

    #[test]
    fn our_namespace_is_alive_and_an_unused_inode_is_not() {
        let ours = machine().pid_namespace.expect("a PID namespace");
        if ours == procfs::INITIAL_PID_NAMESPACE {
            assert_eq!(pid_namespace_alive(ours), Some(true));
            assert_eq!(pid_namespace_alive(1), Some(false));
        } else {
            assert_eq!(pid_namespace_alive(1), None);
        }
    }
}
