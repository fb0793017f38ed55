//! Unix without `/proc`: `kill(pid, 0)` only, so no start times and no
//! recycled-pid detection.

use lockfile_core::{Liveness, Machine, ProcessInfo};
use rustix::io::Errno;
use rustix::process::{test_kill_process, Pid};

/// What is known about `pid`.
pub fn query(pid: u32) -> ProcessInfo {
    let liveness = match i32::try_from(pid).ok().and_then(Pid::from_raw) {
        None => Liveness::Dead,
        Some(raw) => match test_kill_process(raw) {
            Ok(()) | Err(Errno::PERM) => Liveness::Alive,
            Err(Errno::SRCH) => Liveness::Dead,
            Err(_) => Liveness::Unknown,
        },
    };
    ProcessInfo {
        liveness,
        start_ticks: None,
        start_time: None,
    }
}

/// The host name; boot id and namespace are not available here.
pub fn machine() -> Machine {
    Machine {
        hostname: super::unix_hostname(),
        ..Machine::default()
    }
}

/// Namespaces cannot be enumerated here.
pub fn pid_namespace_alive(_inode: u64) -> Option<bool> {
    None
}
