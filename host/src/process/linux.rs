//! Linux: `kill(pid, 0)` and `/proc`.

use std::fs;
use std::sync::OnceLock;

use lockfile_core::{Liveness, Machine, ProcessInfo, Timestamp};
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
    let Some(stat) = stat.as_deref().and_then(parse_stat) else {
        return ProcessInfo {
            liveness,
            start_ticks: None,
            start_time: None,
        };
    };
    // A zombie has exited; only its parent has not collected it yet.
    let liveness = if matches!(stat.state, 'Z' | 'X' | 'x') {
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

struct Stat {
    state: char,
    start_ticks: u64,
}

/// Fields of `/proc/PID/stat`. The command name (field 2) may hold spaces
/// and parentheses, so the fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); start time is field 22.
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_ticks })
}

/// Boot time and clock ticks per second, read once.
fn clock() -> Option<(u64, u64)> {
    static CLOCK: OnceLock<Option<(u64, u64)>> = OnceLock::new();
    *CLOCK.get_or_init(|| {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let btime = stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some((btime, rustix::param::clock_ticks_per_second()))
    })
}

fn start_time(ticks: u64) -> Option<Timestamp> {
    let (btime, hz) = clock()?;
    if hz == 0 {
        return None;
    }
    let nanos = (ticks % hz) * 1_000_000_000 / hz;
    Some(Timestamp::new(btime + ticks / hz, nanos as u32))
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
    fn stat_with_hostile_command_name() {
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        let stat = parse_stat(line).expect("parses");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_ticks, 98765);
    }

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
