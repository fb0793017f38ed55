//! Platforms where we cannot ask about processes: every pid is `unknown`,
//! so locks are never judged stale and `replace_stale` never fires.

use lockfile_core::{Machine, ProcessInfo};

/// Nothing is known.
pub fn query(_pid: u32) -> ProcessInfo {
    ProcessInfo::UNKNOWN
}

/// Nothing is known.
pub fn machine() -> Machine {
    Machine::default()
}

/// Nothing is known.
pub fn pid_namespace_alive(_inode: u64) -> Option<bool> {
    None
}
