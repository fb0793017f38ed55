//! Who holds a lock: the verdict on a recorded owner, as pure functions.
//!
//! The order of the checks matters. A record from another host or PID
//! namespace names a pid we cannot see, so it is `foreign` before anything
//! else; a record from a previous boot is `stale` whatever its pid now is.
//! Only then is the pid looked up, and an `unknown` answer is never `stale`.

mod cause;

pub use cause::{owner_state, Cause};

use crate::format::{Record, Timestamp};

/// Whether a process is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It runs (EPERM from `kill(pid, 0)` counts: the process exists).
    Alive,
    /// No such process.
    Dead,
    /// The host cannot tell.
    Unknown,
}

/// What the host knows about a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Whether it runs.
    pub liveness: Liveness,
    /// Start time in clock ticks since boot (exact).
    pub start_ticks: Option<u64>,
    /// Start time as Unix time (to about a second).
    pub start_time: Option<Timestamp>,
}

impl ProcessInfo {
    /// Nothing known.
    pub const UNKNOWN: Self = Self {
        liveness: Liveness::Unknown,
        start_ticks: None,
        start_time: None,
    };
}

/// The process a lock is taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Its pid.
    pub pid: u32,
    /// Its start time in clock ticks since boot.
    pub start_ticks: Option<u64>,
}

/// Facts about this machine, each optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Machine {
    /// Host name.
    pub hostname: Option<String>,
    /// Boot id.
    pub boot_id: Option<String>,
    /// PID namespace inode.
    pub pid_namespace: Option<u64>,
}

/// How a lock stands for the current process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No lock file.
    Unlocked,
    /// Held by the current process.
    OwnedBySelf,
    /// Held by another process that runs, or may run.
    Held,
    /// The owner is gone.
    Stale,
    /// Written on another host or PID namespace: never stale.
    Foreign,
    /// The file cannot be parsed.
    Malformed,
}

impl Verdict {
    /// The name used by the CLI and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Unlocked => "unlocked",
            Verdict::OwnedBySelf => "owned-by-self",
            Verdict::Held => "held",
            Verdict::Stale => "stale",
            Verdict::Foreign => "foreign",
            Verdict::Malformed => "malformed",
        }
    }
}

/// A verdict, its cause, and the sentence that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// Why, as data.
    pub cause: Cause,
    /// Why, as a sentence.
    pub reason: String,
}

/// How far a process's start time may lie after the lock's timestamp before
/// we conclude it cannot be the owner: start times from `/proc` are only
/// accurate to about a second, and clocks step.
pub const CLOCK_SLACK_SECONDS: i128 = 2;

fn judgement(cause: Cause, verdict: Verdict, reason: String) -> Judgement {
    Judgement {
        verdict,
        cause,
        reason,
    }
}

/// Refines a judgement of `owned-by-self` by holder: within one process,
/// a host may tell holders apart (an application gives each plugin its own
/// tag). A lock is ours only if its holder tag is ours too; a lock of our
/// process for another holder (or for the process as a whole, where we are
/// a tagged holder, and the reverse) is `held`: our process runs, so it is
/// never stale.
pub fn with_holder(record: &Record, holder: Option<u64>, judged: Judgement) -> Judgement {
    if judged.verdict != Verdict::OwnedBySelf || record.holder == holder {
        return judged;
    }
    let whom = match record.holder {
        Some(tag) => format!("holder {tag:016x}"),
        None => "the process as a whole".into(),
    };
    judgement(
        Cause::OtherHolder,
        Verdict::Held,
        format!(
            "the lock is held by pid {}, this process, but for {whom}, not for this holder \
             (another plugin or handle of this process)",
            record.pid
        ),
    )
}

/// How much the clocks of the hosts sharing a lock (and of the file server,
/// which stamps the lock file) may disagree: a lease counts as expired only
/// this long after it ran out by the reader's clock.
pub const LEASE_SKEW_MS: u64 = 2_000;

/// How much older than the renewal itself a file's modification time may
/// read: NFS clients and servers with whole-second timestamps (fuse-nfs
/// sets them so) truncate it by up to a second.
pub const MTIME_GRANULARITY_MS: u64 = 1_000;

/// Refines a `foreign` judgement by the lock's lease: a lock from another
/// host or namespace whose file has not been modified (acquired or
/// refreshed) for longer than its lease plus [`LEASE_SKEW_MS`] and
/// [`MTIME_GRANULARITY_MS`], by `now`, is `stale`. Without a lease, or without the file's modification time,
/// it stays foreign.
pub fn with_lease(record: &Record, now: Timestamp, judged: Judgement) -> Judgement {
    let (Some(lease), Some(modified)) = (record.lease_ms, record.modified) else {
        return judged;
    };
    let age_ms = millis_since(now, modified);
    if judged.verdict == Verdict::OwnedBySelf {
        // The same test as `refresh`'s, so that `status` and `refresh` agree
        // on when our own lease is gone: past it, another host may take the
        // lock over, and whatever we do we do without it.
        let over = age_ms - i128::from(MTIME_GRANULARITY_MS) - i128::from(lease);
        if over <= 0 {
            return judged;
        }
        return judgement(
            Cause::LeaseExpired,
            Verdict::OwnedBySelf,
            format!(
                "ours, but its lease of {} ran out {} ago: another host may take it over \
                 (`refresh` fails; acquire it again to hold it)",
                human_ms(i128::from(lease)),
                human_ms(over)
            ),
        );
    }
    if judged.verdict != Verdict::Foreign {
        return judged;
    }
    let limit = i128::from(lease) + i128::from(LEASE_SKEW_MS) + i128::from(MTIME_GRANULARITY_MS);
    // "taken on host X, not on this host Y": what "never judged stale"
    // said about it no longer holds with a lease.
    let place = judged.reason.split("; ").next().unwrap_or_default();
    if age_ms > limit {
        judgement(
            Cause::LeaseExpired,
            Verdict::Stale,
            format!(
                "{place}, with a lease of {} that ran out: the lock was last renewed {} ago",
                human_ms(i128::from(lease)),
                human_ms(age_ms)
            ),
        )
    } else {
        Judgement {
            reason: format!(
                "{place}, with a lease of {} that runs out in {} unless renewed",
                human_ms(i128::from(lease)),
                human_ms((i128::from(lease) - age_ms).max(0))
            ),
            ..judged
        }
    }
}

/// Milliseconds from `earlier` to `later`, negative when `later` is earlier.
pub fn millis_since(later: Timestamp, earlier: Timestamp) -> i128 {
    let a = i128::from(later.seconds) * 1000 + i128::from(later.nanos / 1_000_000);
    let b = i128::from(earlier.seconds) * 1000 + i128::from(earlier.nanos / 1_000_000);
    a - b
}

fn human_ms(ms: i128) -> String {
    if ms < 10_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        human_duration(ms / 1000)
    }
}

/// Judges a recorded owner from the point of view of `me` on `machine`.
/// `query` is asked about the recorded pids only when the record is ours to
/// judge. A record from another PID namespace is never judged stale; see
/// [`judge_with`] for the host that can tell whether a namespace has ended.
pub fn judge(
    record: &Record,
    me: &Identity,
    machine: &Machine,
    query: impl FnMut(u32) -> ProcessInfo,
) -> Judgement {
    judge_with(record, me, machine, query, |_| None)
}

/// [`judge`], where `namespace_alive(inode)` says whether any process on
/// this machine is in that PID namespace: `Some(false)` only when every
/// process was seen and none is (the namespace has ended and can never hold
/// a process again), `None` when that cannot be told.
pub fn judge_with(
    record: &Record,
    me: &Identity,
    machine: &Machine,
    mut query: impl FnMut(u32) -> ProcessInfo,
    namespace_alive: impl FnOnce(u64) -> Option<bool>,
) -> Judgement {
    let pid = record.pid;
    if pid == 0 {
        // labm8's `write` plants pid 0 (its own test of `force` does), and
        // labm8 reads it as alive (`kill(0, 0)` signals the caller's process
        // group). No process has pid 0, so no fact about one can tell whether
        // its owner runs: held until forced, and never taken as stale.
        return judgement(
            Cause::UnknownLiveness,
            Verdict::Held,
            "the lock names pid 0, which is no process (labm8's `write` allows it), so whether \
             its owner runs cannot be told; a lock whose owner is unknown is never judged stale"
                .into(),
        );
    }
    let same_host = match (&record.hostname, &machine.hostname) {
        (Some(theirs), Some(ours)) if theirs != ours => {
            return judgement(
                Cause::OtherHost,
                Verdict::Foreign,
                format!(
                    "the lock was taken on host `{theirs}`, not on this host `{ours}`; \
                     a lock from another host is never judged stale"
                ),
            );
        }
        (Some(_), Some(_)) => true,
        _ => false,
    };
    let boot = match (&record.boot_id, &machine.boot_id) {
        (Some(theirs), Some(ours)) => Some((theirs, theirs == ours)),
        _ => None,
    };
    let previous_boot = |theirs: &str| {
        judgement(
            Cause::PreviousBoot,
            Verdict::Stale,
            format!("the lock was taken before the machine last booted (boot {theirs})"),
        )
    };
    // Our host and another boot: every process of that boot is gone,
    // whatever namespace it ran in.
    if let (true, Some((theirs, false))) = (same_host, boot) {
        return previous_boot(theirs);
    }
    if let (Some(theirs), Some(ours)) = (record.pid_namespace, machine.pid_namespace) {
        if theirs != ours {
            // Same host and boot: the namespace is on this machine, and once
            // no process is in it, none ever will be.
            if same_host
                && matches!(boot, Some((_, true)))
                && namespace_alive(theirs) == Some(false)
            {
                return judgement(
                    Cause::NamespaceEnded,
                    Verdict::Stale,
                    format!(
                        "the lock was taken in PID namespace {theirs}, which no longer exists \
                         on this machine (no process is in it)"
                    ),
                );
            }
            return judgement(
                Cause::OtherNamespace,
                Verdict::Foreign,
                format!(
                    "the lock was taken in PID namespace {theirs}, not in ours ({ours}); \
                     its pid {pid} may name another process here, so it is never judged stale"
                ),
            );
        }
    }
    if let Some((theirs, false)) = boot {
        return previous_boot(theirs);
    }
    if pid == me.pid {
        if let (Some(theirs), Some(ours)) = (record.start_ticks, me.start_ticks) {
            if theirs != ours {
                return with_companion(
                    record,
                    judgement(Cause::OurPidReused,
                        Verdict::Stale,
                        format!(
                            "pid {pid} is this process's pid, but the lock was taken by an \
                             earlier process with the same pid (start time {theirs} ticks, ours {ours})"
                        ),
                    ),
                    query,
                );
            }
        } else if let Some(started) = query(pid).start_time {
            // No start time recorded (a labm8 file): we cannot be the owner if
            // we started after the lock was taken, exactly as for another pid.
            let after = started.seconds_since(record.timestamp);
            if after > CLOCK_SLACK_SECONDS {
                return with_companion(
                    record,
                    judgement(
                        Cause::OurPidReused,
                        Verdict::Stale,
                        format!(
                            "pid {pid} is this process's pid, but this process started {} after \
                             the lock was taken, so an earlier process with the same pid took it",
                            human_duration(after)
                        ),
                    ),
                    query,
                );
            }
        }
        return judgement(
            Cause::Ours,
            Verdict::OwnedBySelf,
            format!("the lock is held by pid {pid}, the current process"),
        );
    }
    let info = query(pid);
    let owner = match info.liveness {
        Liveness::Dead => judgement(
            Cause::Dead,
            Verdict::Stale,
            format!("pid {pid} is not running"),
        ),
        Liveness::Unknown => judgement(
            Cause::UnknownLiveness,
            Verdict::Held,
            format!(
                "cannot tell whether pid {pid} is running, and a lock whose owner is unknown \
                 is never judged stale"
            ),
        ),
        Liveness::Alive => judge_live(record, info),
    };
    with_companion(record, owner, query)
}

/// A lock whose owner is gone is still held while its companion (the
/// command `lockfile run` started) runs.
fn with_companion(
    record: &Record,
    owner: Judgement,
    mut query: impl FnMut(u32) -> ProcessInfo,
) -> Judgement {
    let Some(companion) = record.companion.filter(|_| owner.verdict == Verdict::Stale) else {
        return owner;
    };
    let info = query(companion);
    let recycled = matches!((record.companion_start_ticks, info.start_ticks),
                            (Some(then), Some(now)) if then != now);
    match info.liveness {
        Liveness::Alive if !recycled => judgement(
            Cause::CompanionRunning,
            Verdict::Held,
            format!(
                "{}, but pid {companion}, the command it started, is running",
                owner.reason
            ),
        ),
        Liveness::Unknown => judgement(
            Cause::CompanionUnknown,
            Verdict::Held,
            format!(
                "{}, and whether pid {companion}, the command it started, is running \
                 cannot be told",
                owner.reason
            ),
        ),
        Liveness::Alive => judgement(
            owner.cause,
            Verdict::Stale,
            format!(
                "{}, and pid {companion}, the command it started, was recycled",
                owner.reason
            ),
        ),
        Liveness::Dead => judgement(
            owner.cause,
            Verdict::Stale,
            format!(
                "{}, nor is pid {companion}, the command it started",
                owner.reason
            ),
        ),
    }
}

fn judge_live(record: &Record, info: ProcessInfo) -> Judgement {
    let pid = record.pid;
    if let (Some(theirs), Some(now)) = (record.start_ticks, info.start_ticks) {
        return if theirs == now {
            judgement(
                Cause::Running,
                Verdict::Held,
                format!("pid {pid} is running and is the process that took the lock"),
            )
        } else {
            judgement(
                Cause::Recycled,
                Verdict::Stale,
                format!(
                    "pid {pid} was recycled: the running process started at {now} ticks \
                     after boot, the lock's owner at {theirs}"
                ),
            )
        };
    }
    if let Some(started) = info.start_time {
        let after = started.seconds_since(record.timestamp);
        if after > CLOCK_SLACK_SECONDS {
            return judgement(
                Cause::StartedAfter,
                Verdict::Stale,
                format!(
                    "pid {pid} started {} after the lock was taken, so it cannot be the owner",
                    human_duration(after)
                ),
            );
        }
    }
    judgement(
        Cause::RunningUnverified,
        Verdict::Held,
        format!("pid {pid} is running"),
    )
}

/// A duration in the largest unit that keeps it readable: `40 min`, `3 h`.
pub fn human_duration(seconds: i128) -> String {
    let s = seconds.max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests;
