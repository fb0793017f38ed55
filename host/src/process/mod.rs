//! What the host knows about processes, one file per platform.
//!
//! - Linux (`linux.rs`): `kill(pid, 0)` (EPERM means alive), and for the
//!   rest (start times, threads, boot id, namespaces) the `/proc` reader in
//!   `lockfile-core` that the WASI components use too.
//! - Other Unix (`unix.rs`): `kill(pid, 0)` only.
//! - Elsewhere (`unknown.rs`): nothing is known, so no lock is ever judged stale.
//!
//! Beside them, what the host can tell about files that the component
//! cannot (`diagnose.rs`: the owner of a file in a sticky directory, a
//! read-only mount), per platform in the same way.

pub(crate) mod diagnose;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{machine, pid_namespace_alive, query};

#[cfg(all(unix, not(target_os = "linux")))]
mod unix;
#[cfg(all(unix, not(target_os = "linux")))]
pub use unix::{machine, pid_namespace_alive, query};

#[cfg(not(unix))]
mod unknown;
#[cfg(not(unix))]
pub use unknown::{machine, pid_namespace_alive, query};

pub use lockfile_core::{Liveness, Machine, ProcessInfo};

/// Whether `pid` runs, by `kill(pid, 0)`: EPERM means it exists (another
/// user's process), ESRCH that it does not; pids beyond `pid_t` are dead.
#[cfg(unix)]
fn signal_probe(pid: u32) -> Liveness {
    use rustix::io::Errno;
    use rustix::process::{test_kill_process, Pid};
    match i32::try_from(pid).ok().and_then(Pid::from_raw) {
        None => Liveness::Dead,
        Some(raw) => match test_kill_process(raw) {
            Ok(()) | Err(Errno::PERM) => Liveness::Alive,
            Err(Errno::SRCH) => Liveness::Dead,
            Err(_) => Liveness::Unknown,
        },
    }
}

/// The parent of the current process: the shell or script that ran us.
// The `lockfile` binary's default `--pid`; not part of the library's API.
#[doc(hidden)]
pub fn parent_pid() -> Option<u32> {
    #[cfg(unix)]
    {
        rustix::process::getppid().map(|p| p.as_raw_nonzero().get().unsigned_abs())
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The host name from `uname`, if it can be written into a lock file.
#[cfg(unix)]
fn unix_hostname() -> Option<String> {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    lockfile_core::format::valid_word(&name).then_some(name)
}
