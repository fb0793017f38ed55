//! Linux: `kill(pid, 0)` for liveness, and `lockfile-core`'s `/proc` reader
//! ([`ProcView`]) for start times, threads, the machine and namespaces.

use std::sync::OnceLock;

use lockfile_core::proc_view::ProcView;
use lockfile_core::{Machine, ProcessInfo};

fn proc() -> &'static ProcView {
    static PROC: OnceLock<ProcView> = OnceLock::new();
    PROC.get_or_init(|| ProcView::new(rustix::param::clock_ticks_per_second()))
}

/// What is known about `pid`: `kill` says whether it runs, `/proc` the rest.
pub fn query(pid: u32) -> ProcessInfo {
    proc().info(pid, super::signal_probe(pid))
}

/// Whether any process on this machine is in the PID namespace `inode`
/// (`None` when that cannot be told; see [`ProcView::pid_namespace_alive`]).
pub fn pid_namespace_alive(inode: u64) -> Option<bool> {
    proc().pid_namespace_alive(inode, machine().pid_namespace)
}

/// Host name, boot id and PID namespace of this machine, read once.
pub fn machine() -> Machine {
    static MACHINE: OnceLock<Machine> = OnceLock::new();
    MACHINE
        .get_or_init(|| {
            let mut machine = proc().machine();
            if machine.hostname.is_none() {
                machine.hostname = super::unix_hostname();
            }
            machine
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockfile_core::Liveness;

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
