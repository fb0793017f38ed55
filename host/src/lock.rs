//! A lock opened through the component: labm8's `LockFile`, and the guard
//! that releases it.

use std::path::{Path, PathBuf};

use lockfile_core::{AcquireOptions, Timestamp};
use wasmtime::component::ResourceAny;
use wasmtime::Store;

use crate::bindings::exports::labm8::lockfile::lockfile as wit;
use crate::bindings::Library;
use crate::error::{Error, LockError};
use crate::store::{for_call, HostState};

/// A lock file opened through the component: labm8's `LockFile`.
pub struct LockFile {
    pub(crate) store: Store<HostState>,
    pub(crate) lib: Library,
    pub(crate) resource: ResourceAny,
    pub(crate) path: PathBuf,
    /// Whether dropping the handle lets the component clean up after it
    /// (see [`LockFile::abandon`]).
    pub(crate) clean_up: bool,
}

impl std::fmt::Debug for LockFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

macro_rules! call {
    ($self:ident, $method:ident $(, $arg:expr)*) => {{
        let _runtime = for_call($self.store.data());
        let guest = $self.lib.labm8_lockfile_lockfile().lock_file();
        guest
            .$method(&mut $self.store, $self.resource $(, $arg)*)
            .map_err(|e| Error::runtime("the component trapped", e))?
            .map_err(Error::from)
    }};
}

impl LockFile {
    /// The lock's path (absolute, with its directory's links resolved).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drops the handle without letting the component clean up after it:
    /// for a child made by `fork`, whose inherited handle is its parent's.
    /// The files the handle keeps beside the lock (its spare) are the
    /// parent's, which dropping the handle would remove under it, and
    /// the child must not take another step with the parent's handle (its
    /// nonces and names would repeat the parent's).
    pub fn abandon(mut self) {
        self.clean_up = false;
    }

    /// Claims the lock: when unheld, when this process holds it already, with
    /// `force` always, and with `replace_stale` when the owner is gone.
    ///
    /// # Errors
    /// [`LockError::UnableToAcquire`] naming the owner; [`LockError::Malformed`]
    /// (unless `force`); [`LockError::NotAFile`]; [`LockError::Io`].
    pub fn acquire(&mut self, replace_stale: bool, force: bool) -> Result<(), Error> {
        call!(self, call_acquire, replace_stale, force)
    }

    /// Acquires the lock as `options` say: what to do about another owner's
    /// lock, and how long to keep trying (with backoff: 5 ms growing to
    /// 250 ms) while it is held or changing hands.
    ///
    /// ```
    /// # fn main() -> Result<(), lockfile_host::Error> {
    /// use std::time::Duration;
    /// use lockfile_host::{AcquireOptions, Runtime};
    ///
    /// # let dir = tempfile::tempdir().expect("a temporary directory");
    /// let runtime = Runtime::new()?;
    /// let mut lock = runtime.open(dir.path().join("nightly.lock"))?;
    /// lock.acquire_with(AcquireOptions::default().replace_stale().wait_for(Duration::from_secs(30)))?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`LockFile::acquire`]; [`LockError::UnableToAcquire`] or
    /// [`LockError::Contended`] once the wait is over.
    pub fn acquire_with(&mut self, options: AcquireOptions) -> Result<(), Error> {
        let wit_options = wit::AcquireOptions::from(&options);
        options.wait.retry(
            || call!(self, call_acquire_with, wit_options),
            |e| {
                matches!(
                    e,
                    Error::Lock(LockError::UnableToAcquire(_) | LockError::Contended { .. })
                )
            },
            |_| {},
        )
    }

    /// Acquires the lock (labm8's positional form) and returns a guard that
    /// releases it when dropped.
    ///
    /// # Errors
    /// As [`LockFile::acquire`].
    pub fn lock(&mut self, replace_stale: bool, force: bool) -> Result<LockGuard<'_>, Error> {
        self.acquire(replace_stale, force)?;
        Ok(LockGuard { lock: self })
    }

    /// Acquires the lock as `options` say (see [`LockFile::acquire_with`])
    /// and returns a guard that releases it when dropped.
    ///
    /// # Errors
    /// As [`LockFile::acquire_with`].
    pub fn lock_with(&mut self, options: AcquireOptions) -> Result<LockGuard<'_>, Error> {
        self.acquire_with(options)?;
        Ok(LockGuard { lock: self })
    }

    /// The fencing token of the lock's current acquisition (taken with
    /// [`AcquireOptions::token`]); `None` when unlocked or taken without one.
    ///
    /// # Errors
    /// [`LockError::Malformed`], [`LockError::NotAFile`], [`LockError::Io`].
    pub fn token(&mut self) -> Result<Option<u64>, Error> {
        call!(self, call_token)
    }

    /// Renews the lease of the lock this process holds (taken with
    /// [`AcquireOptions::lease`]): sets its file's modification time to now.
    /// Call it well within the lease (a third of it, say); `lockfile run
    /// --lease` does.
    ///
    /// # Errors
    /// [`LockError::Lost`] when the lock is gone, not ours, or its lease already
    /// ran out; [`LockError::Malformed`], [`LockError::Io`].
    pub fn refresh(&mut self) -> Result<(), Error> {
        call!(self, call_refresh)
    }

    /// Releases the lock: no-op when unheld; with `force` whoever holds it.
    ///
    /// # Errors
    /// [`LockError::UnableToRelease`] naming the owner; [`LockError::Malformed`]
    /// (unless `force`); [`LockError::NotAFile`]; [`LockError::Io`].
    pub fn release(&mut self, force: bool) -> Result<(), Error> {
        call!(self, call_release, force)
    }

    /// The owner's pid; `None` when unlocked.
    ///
    /// # Errors
    /// [`LockError::Malformed`], [`LockError::NotAFile`], [`LockError::Io`].
    pub fn pid(&mut self) -> Result<Option<u32>, Error> {
        call!(self, call_pid)
    }

    /// When the lock was acquired; `None` when unlocked.
    ///
    /// # Errors
    /// As [`LockFile::pid`].
    pub fn date(&mut self) -> Result<Option<Timestamp>, Error> {
        let date = call!(self, call_date)?;
        Ok(date.map(|d| Timestamp::new(d.seconds, d.nanoseconds)))
    }

    /// Whether a lock file exists.
    ///
    /// # Errors
    /// [`LockError::NotAFile`], [`LockError::Io`].
    pub fn is_locked(&mut self) -> Result<bool, Error> {
        call!(self, call_is_locked)
    }

    /// Whether this process (or the pid given to [`crate::Runtime::open_as`]) holds the lock.
    ///
    /// # Errors
    /// As [`LockFile::pid`].
    pub fn owned_by_self(&mut self) -> Result<bool, Error> {
        call!(self, call_owned_by_self)
    }

    /// The owner, verdict and reason.
    ///
    /// # Errors
    /// [`LockError::NotAFile`], [`LockError::Io`]; a malformed file is a verdict, not an error.
    pub fn status(&mut self) -> Result<crate::Status, Error> {
        let s = call!(self, call_status)?;
        Ok(s.into())
    }
}

impl Drop for LockFile {
    /// Lets the component clean up after the handle (it removes the spare
    /// file a cycling handle keeps beside the lock). Does not release the
    /// lock: labm8's `LockFile` does not either; use [`LockFile::lock`] for that.
    fn drop(&mut self) {
        if !self.clean_up {
            return;
        }
        let _runtime = for_call(self.store.data());
        let _ = self.resource.resource_drop(&mut self.store);
    }
}

/// Holds a lock until dropped (or [`LockGuard::release`]d).
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard<'a> {
    lock: &'a mut LockFile,
}

impl LockGuard<'_> {
    /// Releases the lock now, reporting failure (dropping the guard ignores it).
    ///
    /// # Errors
    /// As [`LockFile::release`].
    pub fn release(self) -> Result<(), Error> {
        let mut this = std::mem::ManuallyDrop::new(self);
        this.lock.release(false)
    }

    /// The lock.
    pub fn lock_file(&mut self) -> &mut LockFile {
        self.lock
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.release(false);
    }
}
