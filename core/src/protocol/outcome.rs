//! What operations report: the owner a lock records, who refused us, the
//! errors, and a lock's state and status.

use crate::decide::{Cause, Judgement, Verdict};
use crate::format::{FormatError, Record, Timestamp};

/// The owner a lock file records, as callers see it (labm8's `pid` and
/// `date`, and the host when recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owner's pid.
    pub pid: u32,
    /// When the lock was acquired.
    pub date: Timestamp,
    /// The host it was written on, if recorded.
    pub hostname: Option<String>,
    /// The fencing token its acquisition issued, if it issued one.
    pub token: Option<u64>,
    /// The lease it was taken with, in milliseconds, if any.
    pub lease_ms: Option<u64>,
    /// When that lease runs out unless renewed: the file's modification
    /// time plus the lease (other hosts allow 3 s more for clock skew and
    /// coarse timestamps before they take it over). `None` without a lease,
    /// or where the file's time is unknown.
    pub expires: Option<Timestamp>,
}

impl From<&Record> for Owner {
    fn from(r: &Record) -> Self {
        Owner {
            pid: r.pid,
            date: r.timestamp,
            hostname: r.hostname.clone(),
            token: r.token,
            lease_ms: r.lease_ms,
            expires: r.lease_ms.zip(r.modified).map(|(ms, m)| m.plus_millis(ms)),
        }
    }
}

/// Who holds a lock that could not be taken or released: labm8's
/// `UnableToAcquireLockError` and `UnableToReleaseLockError` carry this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The lock's path.
    pub path: String,
    /// The recorded owner.
    pub owner: Owner,
    /// `held`, `foreign` or `stale`.
    pub verdict: Verdict,
    /// Why, as data.
    pub cause: Cause,
    /// Why, as a sentence.
    pub reason: String,
}

impl Refusal {
    pub(crate) fn new(path: &str, owner: &Record, judgement: Judgement) -> Self {
        Refusal {
            path: path.to_owned(),
            owner: owner.into(),
            verdict: judgement.verdict,
            cause: judgement.cause,
            reason: judgement.reason,
        }
    }

    /// A word or two on the owner: `alive`, `stale`, `on host x`, ...
    pub fn owner_state(&self) -> String {
        crate::decide::owner_state(self.verdict, self.cause, self.owner.hostname.as_deref())
    }
}

impl std::fmt::Display for Refusal {
    /// `held by pid 4242 (alive) since 2026-11-29 10:02:11 UTC`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "held by pid {} ({}) since {}",
            self.owner.pid,
            self.owner_state(),
            crate::display_time(self.owner.date)
        )
    }
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Another owner holds the lock (labm8's `UnableToAcquireLockError`).
    #[error("cannot acquire `{}`: {}", .0.path, .0)]
    UnableToAcquire(Box<Refusal>),
    /// The lock belongs to another owner (labm8's `UnableToReleaseLockError`).
    #[error("cannot release `{}`: {}", .0.path, .0)]
    UnableToRelease(Box<Refusal>),
    /// The lock file cannot be parsed.
    #[error("malformed lock file `{path}`: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Not a regular file at the lock path.
    #[error("`{path}` {message}")]
    NotAFile {
        /// The path.
        path: String,
        /// What is there instead.
        message: String,
    },
    /// The path cannot be reached.
    #[error("cannot reach `{path}`: {message}")]
    Unreachable {
        /// The path.
        path: String,
        /// Why.
        message: String,
    },
    /// The file system refused: no permission, or (in a sticky directory
    /// such as `/tmp`) a file that belongs to another user.
    #[error("`{path}`: {message}")]
    Denied {
        /// The path.
        path: String,
        /// What was refused.
        message: String,
    },
    /// The process the lock is taken for, or that runs the protocol, cannot
    /// exist (pid 0): a host bug, refused before anything is written.
    #[error("`{path}`: {message}")]
    InvalidIdentity {
        /// The lock's path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A contention limit was hit: the lock changed hands too often while
    /// we looked, or too many abandoned claims stand in the way. Transient in
    /// the first case (try again), manual in the second (the message says).
    #[error("`{path}`: {message}")]
    Contended {
        /// The lock's path.
        path: String,
        /// Which limit, and what to do.
        message: String,
    },
    /// A lease could not be refreshed: the lock is no longer ours (gone,
    /// taken over after our lease ran out, or never ours). Whatever we do
    /// under it now, we do without the lock.
    #[error("lost the lock `{path}`: {message}")]
    Lost {
        /// The lock's path.
        path: String,
        /// What happened to it.
        message: String,
    },
    /// Another I/O error.
    #[error("`{path}`: {message}")]
    Io {
        /// The path.
        path: String,
        /// What failed.
        message: String,
    },
}

impl Error {
    /// The case as the WIT names it (`unable-to-acquire`, `malformed`, ...):
    /// the word front ends (the Python package's exception classes) match on.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::UnableToAcquire(_) => "unable-to-acquire",
            Error::UnableToRelease(_) => "unable-to-release",
            Error::Malformed { .. } => "malformed",
            Error::NotAFile { .. } => "not-a-file",
            Error::Unreachable { .. } => "unreachable",
            Error::Denied { .. } => "denied",
            Error::InvalidIdentity { .. } => "invalid-identity",
            Error::Contended { .. } => "contended",
            Error::Lost { .. } => "lost",
            Error::Io { .. } => "io",
        }
    }

    /// The path the error names.
    pub fn path(&self) -> &str {
        match self {
            Error::UnableToAcquire(r) | Error::UnableToRelease(r) => &r.path,
            Error::Malformed { path, .. }
            | Error::NotAFile { path, .. }
            | Error::Unreachable { path, .. }
            | Error::Denied { path, .. }
            | Error::InvalidIdentity { path, .. }
            | Error::Contended { path, .. }
            | Error::Lost { path, .. }
            | Error::Io { path, .. } => path,
        }
    }

    /// What is wrong at [`Error::path`]: a refusal's reason, else the message.
    pub fn message(&self) -> &str {
        match self {
            Error::UnableToAcquire(r) | Error::UnableToRelease(r) => &r.reason,
            Error::Malformed { message, .. }
            | Error::NotAFile { message, .. }
            | Error::Unreachable { message, .. }
            | Error::Denied { message, .. }
            | Error::InvalidIdentity { message, .. }
            | Error::Contended { message, .. }
            | Error::Lost { message, .. }
            | Error::Io { message, .. } => message,
        }
    }

    /// The refusal, for `UnableToAcquire` and `UnableToRelease`.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Error::UnableToAcquire(r) | Error::UnableToRelease(r) => Some(r),
            _ => None,
        }
    }
}

/// What is at the lock path.
// Returned once per read and consumed at once: a box would cost an
// allocation per read to save stack space nobody holds on to.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Nothing.
    Absent,
    /// A regular file, its exact bytes and what they say.
    Present {
        /// The bytes (at most [`crate::format::MAX_LEN`]; more makes it malformed).
        bytes: Vec<u8>,
        /// The parsed record, or why it could not be parsed.
        record: Result<Record, FormatError>,
    },
}

/// The state of a lock with its verdict: what `status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The lock's path.
    pub path: String,
    /// The recorded owner; `None` when unlocked or malformed.
    pub owner: Option<Owner>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, as data.
    pub cause: Cause,
    /// Why, as a sentence.
    pub reason: String,
}
