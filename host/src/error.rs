//! The embedding's typed error: the protocol's own, whichever front end ran
//! it ([`LockError`], `lockfile_core::Error`), and the few ways the
//! embedding itself fails.

use std::path::Path;

pub use lockfile_core::Error as LockError;
use lockfile_core::Refusal;

/// Why a lock operation failed. New cases may be added: match with a
/// wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The lock operation failed: another owner holds the lock (labm8's
    /// `UnableToAcquireLockError` and `UnableToReleaseLockError`), the file
    /// is malformed, the path cannot be reached, the lock was lost, ...
    /// Each case names the path concerned.
    #[error(transparent)]
    Lock(#[from] LockError),
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

    /// A path the host itself cannot reach (before the component runs).
    pub(crate) fn unreachable(path: &Path, message: impl Into<String>) -> Self {
        Error::Lock(LockError::Unreachable {
            path: path.display().to_string(),
            message: message.into(),
        })
    }

    /// Whether another owner holds the lock (acquire or release refused).
    pub fn is_refusal(&self) -> bool {
        self.refusal().is_some()
    }

    /// The refusal, for `UnableToAcquire` and `UnableToRelease`.
    pub fn refusal(&self) -> Option<&Refusal> {
        self.lock_error().and_then(LockError::refusal)
    }

    /// The protocol's error, when this is one.
    pub fn lock_error(&self) -> Option<&LockError> {
        match self {
            Error::Lock(e) => Some(e),
            _ => None,
        }
    }

    /// The protocol's error, for code that handles the core's errors
    /// whichever front end ran the lock (the `lockfile` CLI's exit codes).
    ///
    /// # Errors
    /// `self`, for the host's own cases (a process that is not running, a
    /// wasmtime failure).
    pub fn into_lock_error(self) -> Result<LockError, Self> {
        match self {
            Error::Lock(e) => Ok(e),
            own => Err(own),
        }
    }
}
