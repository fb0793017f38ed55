//! Why a verdict is what it is: the cause as data, its name in JSON and the
//! WIT, and the words messages use for a refused owner.

use super::Verdict;

/// Why a verdict is what it is, as data: programs match on this, people
/// read [`super::Judgement::reason`]. Exhaustive on purpose: a new cause makes the
/// compiler point at every conversion (the WIT's, the host's) to update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// There is no lock file (`unlocked`).
    NoLockFile,
    /// The file cannot be parsed (`malformed`).
    Unparsable,
    /// The lock is the current process's (`owned-by-self`).
    Ours,
    /// The owner runs, and its start time matches the record's (`held`).
    Running,
    /// The owner's pid runs; no start time to compare (`held`).
    RunningUnverified,
    /// Whether the owner runs cannot be told (`held`).
    UnknownLiveness,
    /// The owner is gone, but the command it started runs (`held`).
    CompanionRunning,
    /// The owner is gone; whether its command runs cannot be told (`held`).
    CompanionUnknown,
    /// A process is replacing or releasing the lock right now (a live claim).
    BeingReplaced,
    /// The owner's pid is not running (`stale`).
    Dead,
    /// The owner's pid runs another process, started at another time (`stale`).
    Recycled,
    /// The owner's pid runs a process that started after the lock was taken (`stale`).
    StartedAfter,
    /// Taken on another host or in another PID namespace with a lease, not
    /// refreshed for longer than the lease plus the clock allowance
    /// (`stale`); or our own lock, whose lease ran out (`owned-by-self`,
    /// but `refresh` fails: another host may take it over).
    LeaseExpired,
    /// Our own process, but another holder in it (`held`): another plugin
    /// of the same application (see [`super::with_holder`]).
    OtherHolder,
    /// Our own pid, but an earlier process with it took the lock (`stale`).
    OurPidReused,
    /// Taken before this machine last booted (`stale`).
    PreviousBoot,
    /// Taken in a PID namespace that has ended on this machine (`stale`).
    NamespaceEnded,
    /// Taken on another host (`foreign`).
    OtherHost,
    /// Taken in another PID namespace (`foreign`).
    OtherNamespace,
}

impl Cause {
    /// The name used in JSON and in the WIT.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::NoLockFile => "no-lock-file",
            Cause::Unparsable => "unparsable",
            Cause::Ours => "ours",
            Cause::Running => "running",
            Cause::RunningUnverified => "running-unverified",
            Cause::UnknownLiveness => "unknown-liveness",
            Cause::CompanionRunning => "companion-running",
            Cause::CompanionUnknown => "companion-unknown",
            Cause::BeingReplaced => "being-replaced",
            Cause::Dead => "dead",
            Cause::Recycled => "recycled",
            Cause::StartedAfter => "started-after",
            Cause::LeaseExpired => "lease-expired",
            Cause::OtherHolder => "other-holder",
            Cause::OurPidReused => "our-pid-reused",
            Cause::PreviousBoot => "previous-boot",
            Cause::NamespaceEnded => "namespace-ended",
            Cause::OtherHost => "other-host",
            Cause::OtherNamespace => "other-namespace",
        }
    }
}

/// A word or two on a refused owner for messages: `alive`, `stale`,
/// `liveness unknown`, `on host X`, `in another PID namespace`.
pub fn owner_state(verdict: Verdict, cause: Cause, hostname: Option<&str>) -> String {
    match (verdict, cause) {
        (Verdict::Held, Cause::UnknownLiveness | Cause::CompanionUnknown) => {
            "liveness unknown".into()
        }
        (Verdict::Held, Cause::CompanionRunning) => "gone, its command alive".into(),
        (Verdict::Held, _) => "alive".into(),
        (Verdict::Foreign, Cause::OtherNamespace) => "in another PID namespace".into(),
        (Verdict::Foreign, _) => match hostname {
            Some(host) => format!("on host {host}"),
            None => "on another host".into(),
        },
        (other, _) => other.as_str().into(),
    }
}
