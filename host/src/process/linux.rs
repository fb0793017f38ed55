//! Linux: `kill(pid, 0)` for liveness, and `lockfile-core`'s `/proc` reader
//! ([`ProcView`]) for start times, threads, the machine and namespaces.

use std::sync::OnceLock;

use lockfile_core::proc_view::ProcView;
use lockfile_core::{Machine, ProcessInfo};

fn proc() -> &'static ProcView {
    static PROC: OnceLock<ProcView> = OnceLock::new();
    PROC.get_or_init(|| {
        ProcView::new(rustix::param::clock_ticks_per_second()).with_boot_time(boot_time())
    })
}

/// The boot time as `/proc/stat` gives it, from the clocks: the real-time
/// clock minus the time since boot is the kernel's own definition of `btime`
/// (`getboottime64`), read in two vDSO calls instead of a `/proc/stat` the
/// kernel writes out in full. The two reads are nanoseconds apart, which
/// can move the result by a second only when the boot time lies within
/// those nanoseconds of a whole second; start times are compared with a
/// slack of seconds anyway.
fn boot_time() -> Option<u64> {
    use rustix::time::{clock_gettime, ClockId};
    let since_boot = clock_gettime(ClockId::Boottime);
    let now = clock_gettime(ClockId::Realtime);
    let nanos =
        |t: rustix::time::Timespec| i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec);
    u64::try_from((nanos(now) - nanos(since_boot)).div_euclid(1_000_000_000)).ok()
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
        .get_or_init(|| proc().machine_named(super::unix_hostname()))
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
    fn boot_time_from_the_clocks_is_proc_stat_btime() {
        let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
        let btime = lockfile_core::procfs::parse_btime(&stat).expect("a btime line");
        let ours = boot_time().expect("a boot time");
        // Equal, but for the nanoseconds between the two clock reads (and
        // NTP slewing the real-time clock since /proc/stat was read).
        assert!(
            ours.abs_diff(btime) <= 1,
            "clocks {ours}, /proc/stat {btime}"
        );
    }

    #[test]
    fn pids_beyond_pid_t_are_dead() {
        assert_eq!(query(u32::MAX).liveness, Liveness::Dead);
    }
}
