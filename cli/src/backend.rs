//! Where the lock logic runs: the traits each front end implements, and
//! the lock run by `lockfile-core` in this process (the command component's).

use std::path::Path;

use lockfile_core::protocol::Leftover;
use lockfile_core::{AcquireOptions, Status, Timestamp};

use crate::{Failure, Listing, OnLost};

/// One open lock.
pub trait Lock {
    /// Claims it once, as `options` say (their `wait` is the caller's:
    /// see [`crate::acquire`]).
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn acquire(&mut self, options: &AcquireOptions) -> Result<(), Failure>;
    /// The fencing token of its current acquisition, if it issued one.
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn token(&mut self) -> Result<Option<u64>, Failure>;
    /// Renews its lease.
    ///
    /// # Errors
    /// [`Failure::Lost`] when it is no longer ours; another [`Failure`].
    fn refresh(&mut self) -> Result<(), Failure>;
    /// Releases it.
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn release(&mut self, force: bool) -> Result<(), Failure>;
    /// Its state.
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn status(&mut self) -> Result<Status, Failure>;
    /// Waits up to `limit` for the lock to change, where it can be watched
    /// (a lock in etcd): `None` where it cannot (the caller pauses on its
    /// schedule instead).
    fn wait_for_change(&mut self, _limit: std::time::Duration) -> Option<Result<(), Failure>> {
        None
    }
}

/// Where the lock logic runs.
pub trait Backend {
    /// An open lock.
    type Lock: Lock;
    /// Opens the lock at `path` for `pid` (`None`: the caller's parent).
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn open(&self, path: &Path, pid: Option<u32>) -> Result<Self::Lock, Failure>;
    /// Opens the lock at `path` only to look at it (`status`): as [`Backend::open`],
    /// but a backend that cannot tell the caller's parent may still report
    /// the lock's state.
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn inspect(&self, path: &Path, pid: Option<u32>) -> Result<Self::Lock, Failure> {
        self.open(path, pid)
    }
    /// Every lock in the directory `dir`, seen from `pid` (`None`: the
    /// caller's parent, or no process where that cannot be told).
    ///
    /// # Errors
    /// A [`Failure`] saying why the directory cannot be listed.
    fn list(&self, dir: &Path, pid: Option<u32>) -> Result<Listing, Failure>;
    /// Removes the private files in `dir` of processes that are gone, and
    /// returns them.
    ///
    /// # Errors
    /// As [`Backend::list`].
    fn sweep(&self, dir: &Path) -> Result<Vec<Leftover>, Failure>;
    /// Who the default `--pid` is, for messages.
    fn default_pid(&self) -> &'static str {
        "the parent of `lockfile`, the shell or script that ran it"
    }
    /// The pid of the process running the command (the one `clean` takes
    /// stale locks over for).
    ///
    /// # Errors
    /// A [`Failure`] where it cannot be told.
    fn own_pid(&self) -> Result<u32, Failure> {
        Ok(std::process::id())
    }
    /// Plants a record.
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn write(&self, path: &Path, pid: u32, timestamp: Timestamp) -> Result<(), Failure>;
    /// Runs a command under the lock and returns its exit code; what
    /// happens to the command when a leased lock is lost, `on_lost` says.
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn run(
        &self,
        path: &Path,
        options: &AcquireOptions,
        on_lost: OnLost,
        command: &[String],
    ) -> Result<u8, Failure>;
}

/// A lock run by `lockfile-core`'s protocol in this process, with no
/// sandbox in between: the command component's, and the benchmark's native
/// limit's.
#[derive(Debug)]
pub struct CoreLock<D, S> {
    /// The lock's directory.
    pub dir: D,
    /// The lock's name in it.
    pub name: String,
    /// The lock's full path, for messages.
    pub path: String,
    /// What the protocol knows about processes.
    pub sys: S,
    /// How protocol errors become failures ([`crate::failure()`], or a backend's own
    /// that says more).
    pub failure: fn(lockfile_core::Error) -> Failure,
}

impl<D: lockfile_core::Dir, S: lockfile_core::System> CoreLock<D, S> {
    fn lock(&self) -> lockfile_core::Lock<'_, D, S> {
        lockfile_core::Lock::new(&self.dir, &self.name, &self.path, &self.sys)
    }
}

impl<D: lockfile_core::Dir, S: lockfile_core::System> Lock for CoreLock<D, S> {
    fn acquire(&mut self, options: &AcquireOptions) -> Result<(), Failure> {
        let (replace_stale, force) = options.mode.flags();
        self.lock()
            .with_lease(options.lease_ms())
            .with_tokens(options.token)
            .acquire(replace_stale, force)
            .map_err(self.failure)
    }

    fn token(&mut self) -> Result<Option<u64>, Failure> {
        self.lock().token().map_err(self.failure)
    }

    fn refresh(&mut self) -> Result<(), Failure> {
        self.lock().refresh().map_err(self.failure)
    }

    fn release(&mut self, force: bool) -> Result<(), Failure> {
        self.lock().release(force).map_err(self.failure)
    }

    fn status(&mut self) -> Result<Status, Failure> {
        self.lock().status().map_err(self.failure)
    }
}
