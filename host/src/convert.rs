//! The host's side of the WIT boundary: the library world's types to the
//! core's and back, as `From` impls, and to the plugin world's (what a
//! plugin imports, answered by `plugin.rs`). The guest's side is
//! `guest/src/convert.rs`.

use lockfile_core::{AcquireOptions, Cause, Mode, Owner, Refusal, Status, Timestamp, Verdict};

use crate::bindings::exports::labm8::lockfile::lockfile as wit;
use crate::error::{Error, LockError};
use crate::process::diagnose::{read_only_mount, sticky_owner};

/// The conversions from a world's `lockfile` types to the core's: for the
/// library world and the coordinated one, whose bindings generate the same
/// WIT types twice.
macro_rules! from_wit {
    ($($segment:ident)::+) => {
        const _: () = {
            use $($segment)::+ as wit;

            impl From<wit::Verdict> for Verdict {
                fn from(v: wit::Verdict) -> Self {
                    match v {
                        wit::Verdict::Unlocked => Verdict::Unlocked,
                        wit::Verdict::OwnedBySelf => Verdict::OwnedBySelf,
                        wit::Verdict::Held => Verdict::Held,
                        wit::Verdict::Stale => Verdict::Stale,
                        wit::Verdict::Foreign => Verdict::Foreign,
                        wit::Verdict::Malformed => Verdict::Malformed,
                    }
                }
            }

            impl From<wit::Cause> for Cause {
                fn from(c: wit::Cause) -> Self {
                    match c {
                        wit::Cause::NoLockFile => Cause::NoLockFile,
                        wit::Cause::Unparsable => Cause::Unparsable,
                        wit::Cause::Ours => Cause::Ours,
                        wit::Cause::Running => Cause::Running,
                        wit::Cause::RunningUnverified => Cause::RunningUnverified,
                        wit::Cause::UnknownLiveness => Cause::UnknownLiveness,
                        wit::Cause::CompanionRunning => Cause::CompanionRunning,
                        wit::Cause::CompanionUnknown => Cause::CompanionUnknown,
                        wit::Cause::BeingReplaced => Cause::BeingReplaced,
                        wit::Cause::Dead => Cause::Dead,
                        wit::Cause::Recycled => Cause::Recycled,
                        wit::Cause::StartedAfter => Cause::StartedAfter,
                        wit::Cause::LeaseExpired => Cause::LeaseExpired,
                        wit::Cause::OtherHolder => Cause::OtherHolder,
                        wit::Cause::OurPidReused => Cause::OurPidReused,
                        wit::Cause::PreviousBoot => Cause::PreviousBoot,
                        wit::Cause::NamespaceEnded => Cause::NamespaceEnded,
                        wit::Cause::OtherHost => Cause::OtherHost,
                        wit::Cause::OtherNamespace => Cause::OtherNamespace,
                    }
                }
            }

            impl From<wit::Owner> for Owner {
                fn from(o: wit::Owner) -> Self {
                    Owner {
                        pid: o.pid,
                        date: Timestamp::new(o.date.seconds, o.date.nanoseconds),
                        hostname: o.hostname,
                        token: o.token,
                        lease_ms: o.lease_ms,
                        expires: o.expires.map(|t| Timestamp::new(t.seconds, t.nanoseconds)),
                    }
                }
            }

            impl From<wit::Status> for Status {
                fn from(s: wit::Status) -> Self {
                    Status {
                        path: s.path,
                        owner: s.owner.map(Owner::from),
                        verdict: s.verdict.into(),
                        cause: s.cause.into(),
                        reason: s.reason,
                    }
                }
            }

            impl From<wit::Refusal> for Refusal {
                fn from(r: wit::Refusal) -> Self {
                    Refusal {
                        path: r.path,
                        owner: r.owner.into(),
                        verdict: r.verdict.into(),
                        cause: r.cause.into(),
                        reason: r.reason,
                    }
                }
            }

            impl From<wit::Error> for LockError {
                fn from(e: wit::Error) -> Self {
                    let refusal = |r: wit::Refusal| Box::new(Refusal::from(r));
                    match e {
                        wit::Error::UnableToAcquire(r) => LockError::UnableToAcquire(refusal(r)),
                        wit::Error::UnableToRelease(r) => LockError::UnableToRelease(refusal(r)),
                        wit::Error::Malformed(f) => LockError::Malformed {
                            path: f.path,
                            message: f.message,
                        },
                        wit::Error::NotAFile(f) => LockError::NotAFile {
                            path: f.path,
                            message: f.message,
                        },
                        wit::Error::Unreachable(f) => LockError::Unreachable {
                            path: f.path,
                            message: f.message,
                        },
                        wit::Error::Denied(f) => LockError::Denied {
                            path: f.path,
                            message: f.message,
                        },
                        wit::Error::InvalidIdentity(f) => LockError::InvalidIdentity {
                            path: f.path,
                            message: f.message,
                        },
                        wit::Error::Contended(f) => LockError::Contended {
                            path: f.path,
                            message: f.message,
                        },
                        wit::Error::Lost(f) => LockError::Lost {
                            path: f.path,
                            message: f.message,
                        },
                        wit::Error::Io(f) => LockError::Io {
                            path: f.path,
                            message: f.message,
                        },
                    }
                }
            }
        };
    };
}

from_wit!(crate::bindings::exports::labm8::lockfile::lockfile);
from_wit!(crate::bindings::coordinated::exports::labm8::lockfile::lockfile);

impl From<wit::Leftover> for crate::Leftover {
    fn from(l: wit::Leftover) -> Self {
        crate::Leftover {
            name: l.name,
            lock: l.lock,
            kind: match l.kind {
                wit::LeftoverKind::Temporary => crate::LeftoverKind::Temporary,
                wit::LeftoverKind::Claim => crate::LeftoverKind::Claim,
                wit::LeftoverKind::Token => crate::LeftoverKind::Token,
            },
            pid: l.pid,
            gone: l.gone,
        }
    }
}

impl From<wit::Error> for Error {
    /// The component's error, with what the host can tell and the
    /// component cannot (whose file in a sticky directory refused, whether
    /// a bare I/O error was a read-only file system).
    fn from(e: wit::Error) -> Self {
        Error::Lock(match LockError::from(e) {
            LockError::Denied { path, message } => {
                let message = match sticky_owner(path.as_ref()) {
                    Some(why) => format!("{message}: {why}"),
                    None => message,
                };
                LockError::Denied { path, message }
            }
            LockError::Io { path, message } => {
                let message = match read_only_mount(path.as_ref()) {
                    Some(true) => message.replace(
                        lockfile_core::plain::EIO_UNDER_WASI,
                        lockfile_core::plain::EROFS,
                    ),
                    _ => message,
                };
                LockError::Io { path, message }
            }
            other => other,
        })
    }
}

impl From<&AcquireOptions> for wit::AcquireOptions {
    fn from(options: &AcquireOptions) -> Self {
        wit::AcquireOptions {
            mode: match options.mode {
                Mode::Free => wit::Mode::Free,
                Mode::ReplaceStale => wit::Mode::ReplaceStale,
                Mode::Force => wit::Mode::Force,
            },
            lease_ms: options.lease_ms(),
            token: options.token,
        }
    }
}

/// The library world's types as the plugin world's.
pub(crate) mod plugin_world {
    use crate::bindings::exports::labm8::lockfile::lockfile as lib;
    use crate::bindings::plugin_world::labm8::lockfile::lockfile as pw;

    // The two bindings (what our component exports, what a plugin imports) are
    // the same WIT types generated twice: convert field by field.

    macro_rules! same_enum {
        ($name:ident: $from:ty => $to:ty { $($case:ident),* $(,)? }) => {
            pub(crate) fn $name(x: $from) -> $to {
                match x { $(<$from>::$case => <$to>::$case),* }
            }
        };
    }

    same_enum!(verdict: lib::Verdict => pw::Verdict {
        Unlocked, OwnedBySelf, Held, Stale, Foreign, Malformed,
    });

    same_enum!(cause: lib::Cause => pw::Cause {
        NoLockFile, Unparsable, Ours, Running, RunningUnverified, UnknownLiveness,
        CompanionRunning, CompanionUnknown, BeingReplaced, Dead, Recycled, StartedAfter,
        LeaseExpired, OtherHolder, OurPidReused, PreviousBoot, NamespaceEnded, OtherHost,
        OtherNamespace,
    });

    pub(crate) fn owner(o: lib::Owner) -> pw::Owner {
        pw::Owner {
            pid: o.pid,
            date: o.date,
            hostname: o.hostname,
            token: o.token,
            lease_ms: o.lease_ms,
            expires: o.expires,
        }
    }

    same_enum!(mode: pw::Mode => lib::Mode { Free, ReplaceStale, Force });

    same_enum!(leftover_kind: lib::LeftoverKind => pw::LeftoverKind {
        Temporary, Claim, Token,
    });

    pub(crate) fn leftover(l: lib::Leftover) -> pw::Leftover {
        pw::Leftover {
            name: l.name,
            lock: l.lock,
            kind: leftover_kind(l.kind),
            pid: l.pid,
            gone: l.gone,
        }
    }

    pub(crate) fn status(s: lib::Status) -> pw::Status {
        pw::Status {
            path: s.path,
            owner: s.owner.map(owner),
            verdict: verdict(s.verdict),
            cause: cause(s.cause),
            reason: s.reason,
        }
    }

    pub(crate) fn refusal(r: lib::Refusal) -> pw::Refusal {
        pw::Refusal {
            path: r.path,
            owner: owner(r.owner),
            verdict: verdict(r.verdict),
            cause: cause(r.cause),
            reason: r.reason,
        }
    }

    pub(crate) fn error(e: lib::Error) -> pw::Error {
        let f = |f: lib::Failure| pw::Failure {
            path: f.path,
            message: f.message,
        };
        match e {
            lib::Error::UnableToAcquire(r) => pw::Error::UnableToAcquire(refusal(r)),
            lib::Error::UnableToRelease(r) => pw::Error::UnableToRelease(refusal(r)),
            lib::Error::Malformed(x) => pw::Error::Malformed(f(x)),
            lib::Error::NotAFile(x) => pw::Error::NotAFile(f(x)),
            lib::Error::Unreachable(x) => pw::Error::Unreachable(f(x)),
            lib::Error::Denied(x) => pw::Error::Denied(f(x)),
            lib::Error::InvalidIdentity(x) => pw::Error::InvalidIdentity(f(x)),
            lib::Error::Contended(x) => pw::Error::Contended(f(x)),
            lib::Error::Lost(x) => pw::Error::Lost(f(x)),
            lib::Error::Io(x) => pw::Error::Io(f(x)),
        }
    }

    /// What a plugin asked for, as the library world's options.
    pub(crate) fn acquire_options(o: pw::AcquireOptions) -> lib::AcquireOptions {
        lib::AcquireOptions {
            mode: mode(o.mode),
            lease_ms: o.lease_ms,
            token: o.token,
        }
    }
}
