//! What the protocol runs over: the lock's directory ([`Dir`]) and the
//! facts about processes, time and the machine ([`System`]). The simulator,
//! `std_dir`, `wasi_dir` and the hosts implement them.

use std::io;

use crate::decide::{Identity, Machine, ProcessInfo};
use crate::format::Timestamp;

/// What is at a name in the lock's directory (never following symlinks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file of this many bytes.
    File(u64),
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// Anything else: FIFO, socket, device. The name says which.
    Other(&'static str),
}

/// The directory that holds a lock. Names are single path components.
/// Implementations never follow a symlink at the final component.
pub trait Dir {
    /// What is at `name`, or `None` when nothing is.
    fn kind(&self, name: &str) -> io::Result<Option<Kind>>;
    /// Up to `limit` bytes of the regular file `name`. `limit` is at most
    /// [`crate::FILES_READ_LIMIT`]: the component's reads go through its
    /// host's `files`, which refuses more.
    fn read(&self, name: &str, limit: usize) -> io::Result<Vec<u8>>;
    /// As [`Dir::read`], and when the file system last modified that same
    /// file (its clock), where it can tell. Asked only for leased locks.
    fn read_modified(&self, name: &str, limit: usize) -> io::Result<(Vec<u8>, Option<Timestamp>)> {
        Ok((self.read(name, limit)?, None))
    }
    /// Sets the modification time of the regular file `name` to now, by the
    /// file system's clock where it can (WASI's `now`: on NFS the server
    /// sets it). Refreshes a lease.
    fn touch(&self, _name: &str) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    /// Creates `name` exclusively with `data`; removes it again if writing fails.
    fn create(&self, name: &str, data: &[u8]) -> io::Result<()>;
    /// Overwrites the existing regular file `name` with exactly `data`, but
    /// only if `name` is its one and only link: `Ok(false)`, untouched,
    /// when it is anything else or has other links. The default never
    /// rewrites, so every publish uses a fresh temporary file.
    fn rewrite(&self, _name: &str, _data: &[u8]) -> io::Result<bool> {
        Ok(false)
    }
    /// Hard-links `existing` as `new`; fails with `AlreadyExists` if `new` exists.
    fn link(&self, existing: &str, new: &str) -> io::Result<()>;
    /// As [`Dir::link`], then whether `probe` exists: `None` when that
    /// could not be told. One host call where the host has one (the
    /// `files` interface), else a link and a look.
    fn link_probe(&self, existing: &str, new: &str, probe: &str) -> io::Result<Option<bool>> {
        self.link(existing, new)?;
        Ok(self.kind(probe).ok().map(|k| k.is_some()))
    }
    /// Renames `from` to `to`, replacing `to` atomically.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes the file (or symlink) `name`.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// The names in the directory.
    fn names(&self) -> io::Result<Vec<String>>;
}

/// A host's I/O error without a more precise cause, as WASI reports
/// `ESTALE` and the like (its `error-code.io`); see [`changed_under_us`].
#[derive(Debug)]
pub struct HostIoError(pub String);

impl std::fmt::Display for HostIoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostIoError {}

/// Whether an error reading a lock file we just found means that the file
/// changed under us rather than that reading is broken. On NFS another
/// host's release unlinks the file we opened, and the next read fails with
/// `ESTALE` (kernel clients) or `EIO`/`EFAULT` (userspace clients); WASI
/// reports those as its generic `io` code. Such reads are retried (bounded):
/// a persistent `EIO` is still reported after 16 looks.
pub fn changed_under_us(e: &io::Error) -> bool {
    const EIO: i32 = 5;
    const EFAULT: i32 = 14;
    const ESTALE: i32 = 116;
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::StaleNetworkFileHandle
    ) || (cfg!(target_os = "linux") && matches!(e.raw_os_error(), Some(EIO | EFAULT | ESTALE)))
        || e.get_ref().is_some_and(|inner| inner.is::<HostIoError>())
}

/// What the protocol needs from its surroundings besides the directory.
pub trait System {
    /// The process the lock is taken for.
    fn current(&self) -> Identity;
    /// The process running this code: named by claims and temporary files.
    fn runner(&self) -> Identity;
    /// Facts about this machine.
    fn machine(&self) -> Machine;
    /// What is known about `pid`.
    fn query(&self, pid: u32) -> ProcessInfo;
    /// The current time.
    fn now(&self) -> Timestamp;
    /// A random number, for unique names and records.
    fn random(&self) -> u64;
    /// A second process the lock is taken for: the lock stays held while
    /// either runs (`lockfile run` names the command it started).
    fn companion(&self) -> Option<Identity> {
        None
    }
    /// Whether any process on this machine is in the PID namespace with
    /// this inode: `Some(false)` only when every process could be seen and
    /// none is in it; `None` when that cannot be told.
    fn pid_namespace_alive(&self, _inode: u64) -> Option<bool> {
        None
    }
    /// Which holder within the current process takes locks, where the host
    /// tells holders apart (an application gives each plugin a tag): a lock
    /// is `owned-by-self` only with the same tag. `None`: the process as a
    /// whole, labm8's rule.
    fn holder(&self) -> Option<u64> {
        None
    }
    /// A named point in the protocol, where a test may pause. No effect on results.
    fn checkpoint(&self, _name: &str) {}
}
