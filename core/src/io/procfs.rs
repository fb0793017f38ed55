//! Reading Linux `/proc` text: shared by the native host and by the WASI
//! command component, which sees `/proc` only when it is preopened.

/// Fields of `/proc/PID/stat` that matter for liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Field 1: the pid.
    pub pid: u32,
    /// Field 3: `R`, `S`, `Z`, ...
    pub state: char,
    /// Field 4: the parent's pid.
    pub ppid: u32,
    /// Field 22: start time in clock ticks since boot.
    pub start_ticks: u64,
}

impl Stat {
    /// Whether the process has exited and only awaits its parent's `wait`.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses `/proc/PID/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_whitespace().next()?.parse().ok()?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    // `rest` starts at field 3; after taking fields 3 and 4, field 22 is the 18th.
    let start_ticks = fields.nth(17)?.parse().ok()?;
    Some(Stat {
        pid,
        state,
        ppid,
        start_ticks,
    })
}

/// The boot time (`btime`, Unix seconds) from `/proc/stat`.
pub fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// A start time in ticks since boot as Unix time, given the boot time and
/// the clock tick rate (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn start_time(btime: u64, ticks_per_second: u64, ticks: u64) -> Option<crate::Timestamp> {
    if ticks_per_second == 0 {
        return None;
    }
    let nanos = (ticks % ticks_per_second) * 1_000_000_000 / ticks_per_second;
    Some(crate::Timestamp::new(
        btime.checked_add(ticks / ticks_per_second)?,
        u32::try_from(nanos).ok()?,
    ))
}

/// The inode of the initial PID namespace (the kernel's `PROC_PID_INIT_INO`):
/// a process in it, with its own `/proc`, sees every process of the machine.
pub const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// The `NSpid:` line of `/proc/PID/status`: the pid in each PID namespace
/// the process is in, from the namespace of the `/proc` mount inward.
pub fn parse_nspid(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().map(|p| p.parse().ok()).collect()
}

/// Whether `/proc` describes our own PID namespace, from `/proc/self/status`:
/// then `/proc/self` has one pid (ours). A `/proc` mounted in an ancestor
/// namespace (`unshare -p -f` without `--mount-proc`) lists our pid in each
/// namespace from its own inward, and its `/proc/PID` are other processes
/// than our `kill(PID, 0)` reaches. `None` on kernels without `NSpid`.
pub fn proc_is_ours(self_status: &str) -> Option<bool> {
    in_proc_namespace(self_status)
}

/// Whether the process whose `/proc/PID/status` this is lives in the PID
/// namespace of the `/proc` mount itself (not in a namespace nested in it).
pub fn in_proc_namespace(status: &str) -> Option<bool> {
    parse_nspid(status).map(|pids| pids.len() == 1)
}

/// Whether a process whose thread-group leader is a zombie still runs: a
/// leader that called `pthread_exit` shows `Z` while its other threads run
/// on. `task_states` are the states of the threads listed in
/// `/proc/PID/task` (the leader's included).
pub fn threads_run(task_states: impl IntoIterator<Item = char>) -> bool {
    task_states
        .into_iter()
        .any(|state| !matches!(state, 'Z' | 'X' | 'x'))
}

/// The inode in a namespace link's text, `pid:[4026531836]`.
pub fn parse_ns_link(text: &str) -> Option<u64> {
    text.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_hostile_command_name() {
        let line = "42 (a) b (c) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                pid: 42,
                state: 'S',
                ppid: 7,
                start_ticks: 98765
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn nspid_tells_whose_proc_it_is() {
        let ours = "Name:\tsh\nNSpid:\t1\nNSsid:\t1\n";
        let theirs = "Name:\tsh\nNSpid:\t18665\t1\n";
        assert_eq!(proc_is_ours(ours), Some(true));
        assert_eq!(proc_is_ours(theirs), Some(false));
        assert_eq!(parse_nspid(theirs), Some(vec![18665, 1]));
        assert_eq!(proc_is_ours("Name:\tsh\n"), None);
    }

    #[test]
    fn a_zombie_leader_with_live_threads_runs() {
        assert!(threads_run(['Z', 'S']));
        assert!(!threads_run(['Z']));
        assert!(!threads_run(['Z', 'X']));
    }

    #[test]
    fn btime_and_namespace() {
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_ns_link("pid:[4026531836]"), Some(4_026_531_836));
        assert_eq!(parse_ns_link("net:[1]"), None);
    }
}
