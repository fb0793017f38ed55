//! Linux: `kill(pid, 0)` and `/proc`.

use std::fs;
use std::sync::OnceLock;

use lockfile_core::{procfs, Liveness, Machine, ProcessInfo, Timestamp};
use rustix::io::Errno;
use rustix::process::{test_kill_process, Pid};

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
    let stat = (liveness == Liveness::Alive)
        .then(|| fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .flatten();
    let Some(stat) = stat.as_deref().and_then(procfs::parse_stat) else {
        return ProcessInfo {
            liveness,
            start_ticks: None,
            start_time: None,
        };
    };
    // A zombie has exited; only its parent has not collected it yet.
    let liveness = if stat.is_zombie() {
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
}
