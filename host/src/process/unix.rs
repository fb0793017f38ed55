//! Unix without `/proc`: `kill(pid, 0)` only, so no start times and no
//! recycled-pid detection.

use lockfile_core::{Machine, ProcessInfo};

/// What is known about `pid`.
pub fn query(pid: u32) -> ProcessInfo {
    ProcessInfo {
        liveness: super::signal_probe(pid),
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
