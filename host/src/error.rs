//! The embedding's typed errors.

use std::path::PathBuf;

use lockfile_core::{Cause, Owner, Refusal, Timestamp, Verdict};

use crate::bindings::exports::labm8::lockfile::lockfile as wit;
use crate::diagnose::{read_only_mount, sticky_owner};

/// Why a lock operation failed. Each case names the path concerned. New
/// cases may be added: match with a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// labm8's `UnableToAcquireLockError`.
    #[error("cannot acquire `{}`: {}", .0.path, .0)]
    UnableToAcquire(Box<Refusal>),
    /// labm8's `UnableToReleaseLockError`.
    #[error("cannot release `{}`: {}", .0.path, .0)]
    UnableToRelease(Box<Refusal>),
    /// The lock file cannot be parsed; it was left untouched.
    #[error("malformed lock file `{}`: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A directory, symlink, FIFO, ... where the lock file should be.
    #[error("`{}` {message}", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What is there.
        message: String,
    },
    /// The path cannot be reached: missing directory, `..`, outside the sandbox.
    #[error("cannot reach `{}`: {message}", path.display())]
    Unreachable {
        /// The path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The file system refused: no permission to write in the directory, or
    /// (in a sticky directory such as `/tmp`) a file of another user, which
    /// the message then names.
    #[error("`{}`: {message}", path.display())]
    Denied {
        /// The path.
        path: PathBuf,
        /// What was refused, and why where it can be told.
        message: String,
    },
    /// The host named pid 0 as the process to act for; nothing was written.
    #[error("`{}`: {message}", path.display())]
    InvalidIdentity {
        /// The lock's path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A contention limit was hit: the lock changed hands too often while
    /// the operation looked (try again; [`crate::LockFile::acquire_with`]
    /// does, within its wait), or too many abandoned claims stand in the way.
    #[error("`{}`: {message}", path.display())]
    Contended {
        /// The lock's path.
        path: PathBuf,
        /// Which limit, and what to do.
        message: String,
    },
    /// [`crate::LockFile::refresh`] found the lock no longer ours (gone,
    /// taken over after its lease ran out, or its lease already ran out):
    /// whatever the holder does now, it does without the lock.
    #[error("lost the lock `{}`: {message}", path.display())]
    Lost {
        /// The lock's path.
        path: PathBuf,
        /// What happened to it.
        message: String,
    },
    /// Any other I/O error: disk full, read-only file system.
    #[error("`{}`: {message}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The process to act for does not exist.
    #[error("process {0} is not running, so no lock can be taken for it")]
    NoSuchProcess(u32),
    /// wasmtime failed or the component trapped: a bug, not a lock condition.
    #[error("{context}: {source:#}")]
    Runtime {
        /// What was being done.
        context: &'static str,
        /// wasmtime's error.
        source: wasmtime::Error,
    },
}

impl Error {
    pub(crate) fn runtime(context: &'static str, source: wasmtime::Error) -> Self {
        Error::Runtime { context, source }
    }

    /// Whether another owner holds the lock (acquire or release refused).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::UnableToAcquire(_) | Error::UnableToRelease(_))
    }

    /// The refusal, for `UnableToAcquire` and `UnableToRelease`.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Error::UnableToAcquire(r) | Error::UnableToRelease(r) => Some(r.as_ref()),
            _ => None,
        }
    }

    /// The protocol's own error this is (`lockfile_core::Error`, whose cases
    /// these mirror with the paths as `PathBuf`), for code that handles the
    /// core's errors whichever front end ran the lock (the `lockfile` CLI's
    /// exit codes); `Err(self)` for the host's own cases (a process that is
    /// not running, a wasmtime failure).
    ///
    /// # Errors
    /// `self`, when it has no counterpart in the core.
    pub fn into_lock_error(self) -> Result<lockfile_core::Error, Self> {
        use lockfile_core::Error as E;
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        Ok(match self {
            Error::UnableToAcquire(r) => E::UnableToAcquire(r),
            Error::UnableToRelease(r) => E::UnableToRelease(r),
            Error::Malformed { path: p, message } => E::Malformed {
                path: path(p),
                message,
            },
            Error::NotAFile { path: p, message } => E::NotAFile {
                path: path(p),
                message,
            },
            Error::Unreachable { path: p, message } => E::Unreachable {
                path: path(p),
                message,
            },
            Error::Denied { path: p, message } => E::Denied {
                path: path(p),
                message,
            },
            Error::InvalidIdentity { path: p, message } => E::InvalidIdentity {
                path: path(p),
                message,
            },
            Error::Contended { path: p, message } => E::Contended {
                path: path(p),
                message,
            },
            Error::Lost { path: p, message } => E::Lost {
                path: path(p),
                message,
            },
            Error::Io { path: p, message } => E::Io {
                path: path(p),
                message,
            },
            own @ (Error::NoSuchProcess(_) | Error::Runtime { .. }) => return Err(own),
        })
    }
}

pub(crate) fn verdict(v: wit::Verdict) -> Verdict {
    match v {
        wit::Verdict::Unlocked => Verdict::Unlocked,
        wit::Verdict::OwnedBySelf => Verdict::OwnedBySelf,
        wit::Verdict::Held => Verdict::Held,
        wit::Verdict::Stale => Verdict::Stale,
        wit::Verdict::Foreign => Verdict::Foreign,
        wit::Verdict::Malformed => Verdict::Malformed,
    }
}

pub(crate) fn cause(c: wit::Cause) -> Cause {
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

pub(crate) fn owner(o: wit::Owner) -> Owner {
    Owner {
        pid: o.pid,
        date: Timestamp::new(o.date.seconds, o.date.nanoseconds),
        hostname: o.hostname,
        token: o.token,
        lease_ms: o.lease_ms,
        expires: o.expires.map(|t| Timestamp::new(t.seconds, t.nanoseconds)),
    }
}

pub(crate) fn leftover(l: wit::Leftover) -> crate::Leftover {
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

pub(crate) fn status(s: wit::Status) -> lockfile_core::Status {
    lockfile_core::Status {
        path: s.path,
        owner: s.owner.map(owner),
        verdict: verdict(s.verdict),
        cause: cause(s.cause),
        reason: s.reason,
    }
}

pub(crate) fn from_wit(e: wit::Error) -> Error {
    let refusal = |r: wit::Refusal| {
        Box::new(Refusal {
            path: r.path,
            owner: owner(r.owner),
            verdict: verdict(r.verdict),
            cause: cause(r.cause),
            reason: r.reason,
        })
    };
    match e {
        wit::Error::UnableToAcquire(r) => Error::UnableToAcquire(refusal(r)),
        wit::Error::UnableToRelease(r) => Error::UnableToRelease(refusal(r)),
        wit::Error::Malformed(f) => Error::Malformed {
            path: f.path.into(),
            message: f.message,
        },
        wit::Error::NotAFile(f) => Error::NotAFile {
            path: f.path.into(),
            message: f.message,
        },
        wit::Error::Unreachable(f) => Error::Unreachable {
            path: f.path.into(),
            message: f.message,
        },
        wit::Error::Denied(f) => {
            let path = PathBuf::from(f.path);
            let message = match sticky_owner(&path) {
                Some(why) => format!("{}: {why}", f.message),
                None => f.message,
            };
            Error::Denied { path, message }
        }
        wit::Error::InvalidIdentity(f) => Error::InvalidIdentity {
            path: f.path.into(),
            message: f.message,
        },
        wit::Error::Contended(f) => Error::Contended {
            path: f.path.into(),
            message: f.message,
        },
        wit::Error::Lost(f) => Error::Lost {
            path: f.path.into(),
            message: f.message,
        },
        wit::Error::Io(f) => {
            let path = PathBuf::from(f.path);
            let message = match read_only_mount(&path) {
                Some(true) => f.message.replace(
                    lockfile_core::plain::EIO_UNDER_WASI,
                    lockfile_core::plain::EROFS,
                ),
                _ => f.message,
            };
            Error::Io { path, message }
        }
    }
}
