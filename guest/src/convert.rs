//! The guest's side of the WIT boundary: the core's types as the WIT's,
//! as `From` impls. (The host's side is `lockfile_host`'s `convert.rs`.)

use lockfile_core::{protocol, Cause, Timestamp, Verdict};
use wasi::clocks::wall_clock::Datetime;

use crate::bindings::exports::labm8::lockfile::lockfile::{self as wit, Owner, Refusal, Status};

/// A time as WASI's clock gives it (a type of the `wasi` crate: no `From`).
pub(crate) fn to_datetime(t: Timestamp) -> Datetime {
    Datetime {
        seconds: t.seconds,
        nanoseconds: t.nanos,
    }
}

impl From<protocol::Leftover> for wit::Leftover {
    fn from(l: protocol::Leftover) -> Self {
        wit::Leftover {
            name: l.name,
            lock: l.lock,
            kind: match l.kind {
                protocol::LeftoverKind::Temporary => wit::LeftoverKind::Temporary,
                protocol::LeftoverKind::Claim => wit::LeftoverKind::Claim,
                protocol::LeftoverKind::Token => wit::LeftoverKind::Token,
            },
            pid: l.pid,
            gone: l.gone,
        }
    }
}

impl From<lockfile_core::Status> for Status {
    fn from(status: lockfile_core::Status) -> Self {
        Status {
            owner: status.owner.as_ref().map(Owner::from),
            path: status.path,
            verdict: status.verdict.into(),
            cause: status.cause.into(),
            reason: status.reason,
        }
    }
}

impl From<&lockfile_core::Owner> for Owner {
    fn from(o: &lockfile_core::Owner) -> Self {
        Owner {
            pid: o.pid,
            date: to_datetime(o.date),
            hostname: o.hostname.clone(),
            token: o.token,
            lease_ms: o.lease_ms,
            expires: o.expires.map(to_datetime),
        }
    }
}

impl From<Cause> for wit::Cause {
    fn from(c: Cause) -> Self {
        match c {
            Cause::NoLockFile => wit::Cause::NoLockFile,
            Cause::Unparsable => wit::Cause::Unparsable,
            Cause::Ours => wit::Cause::Ours,
            Cause::Running => wit::Cause::Running,
            Cause::RunningUnverified => wit::Cause::RunningUnverified,
            Cause::UnknownLiveness => wit::Cause::UnknownLiveness,
            Cause::CompanionRunning => wit::Cause::CompanionRunning,
            Cause::CompanionUnknown => wit::Cause::CompanionUnknown,
            Cause::BeingReplaced => wit::Cause::BeingReplaced,
            Cause::Dead => wit::Cause::Dead,
            Cause::Recycled => wit::Cause::Recycled,
            Cause::StartedAfter => wit::Cause::StartedAfter,
            Cause::LeaseExpired => wit::Cause::LeaseExpired,
            Cause::OtherHolder => wit::Cause::OtherHolder,
            Cause::OurPidReused => wit::Cause::OurPidReused,
            Cause::PreviousBoot => wit::Cause::PreviousBoot,
            Cause::NamespaceEnded => wit::Cause::NamespaceEnded,
            Cause::OtherHost => wit::Cause::OtherHost,
            Cause::OtherNamespace => wit::Cause::OtherNamespace,
        }
    }
}

impl From<Verdict> for wit::Verdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Unlocked => wit::Verdict::Unlocked,
            Verdict::OwnedBySelf => wit::Verdict::OwnedBySelf,
            Verdict::Held => wit::Verdict::Held,
            Verdict::Stale => wit::Verdict::Stale,
            Verdict::Foreign => wit::Verdict::Foreign,
            Verdict::Malformed => wit::Verdict::Malformed,
        }
    }
}

impl From<protocol::Refusal> for Refusal {
    fn from(r: protocol::Refusal) -> Self {
        Refusal {
            owner: Owner::from(&r.owner),
            path: r.path,
            verdict: r.verdict.into(),
            cause: r.cause.into(),
            reason: r.reason,
        }
    }
}

impl From<protocol::Error> for wit::Error {
    fn from(e: protocol::Error) -> Self {
        use protocol::Error as E;
        let failure = |path, message| wit::Failure { path, message };
        match e {
            E::UnableToAcquire(r) => wit::Error::UnableToAcquire((*r).into()),
            E::UnableToRelease(r) => wit::Error::UnableToRelease((*r).into()),
            E::Malformed { path, message } => wit::Error::Malformed(failure(path, message)),
            E::NotAFile { path, message } => wit::Error::NotAFile(failure(path, message)),
            E::Unreachable { path, message } => wit::Error::Unreachable(failure(path, message)),
            E::Denied { path, message } => wit::Error::Denied(failure(path, message)),
            E::InvalidIdentity { path, message } => {
                wit::Error::InvalidIdentity(failure(path, message))
            }
            E::Contended { path, message } => wit::Error::Contended(failure(path, message)),
            E::Lost { path, message } => wit::Error::Lost(failure(path, message)),
            E::Io { path, message } => wit::Error::Io(failure(path, message)),
        }
    }
}
