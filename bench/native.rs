//! The `lockfile` command line over `lockfile-core` natively, without the
//! sandbox: the limit `bench/compare.sh` measures the real binary against
//! (issue 14). Same argument parsing, same protocol code, same process
//! facts; only the component and wasmtime are missing. Not for use: it
//! gives up the sandbox, and `run` is left out.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lockfile_cli::{Backend, CoreLock, Failure, Listing, OnLost};
use lockfile_core::protocol::Leftover;
use lockfile_core::std_dir::StdDir;
use lockfile_core::{
    AcquireOptions, Identity, Liveness, Lock, Machine, ProcessInfo, System, Timestamp,
};
use lockfile_host::process;

// Linked as the `lockfile` binary is.
mod linked;

fn main() -> ExitCode {
    ExitCode::from(lockfile_cli::main(|| Ok(Native), None))
}

struct Native;

struct Sys {
    acting: Identity,
    runner: Identity,
    counter: Cell<u64>,
}

impl System for Sys {
    fn current(&self) -> Identity {
        self.acting
    }
    fn runner(&self) -> Identity {
        self.runner
    }
    fn machine(&self) -> Machine {
        process::machine()
    }
    fn query(&self, pid: u32) -> ProcessInfo {
        process::query(pid)
    }
    fn pid_namespace_alive(&self, inode: u64) -> Option<bool> {
        process::pid_namespace_alive(inode)
    }
    fn now(&self) -> Timestamp {
        lockfile_cli::now()
    }
    fn random(&self) -> u64 {
        // std's hasher keys are random per process; a counter makes each
        // call differ.
        let n = self.counter.get().wrapping_add(1);
        self.counter.set(n);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.finish()
    }
}

type NativeLock = CoreLock<StdDir, Sys>;

/// The lock's directory (links resolved, as the real binary preopens it)
/// and its name there.
fn locate(path: &Path) -> Result<(PathBuf, String), Failure> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Failure::Other(format!("`{}` does not name a file", path.display())))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(parent)
        .map_err(|e| Failure::Other(format!("cannot resolve `{}`: {e}", parent.display())))?;
    Ok((dir, name.to_owned()))
}

fn identity(pid: u32) -> Result<Identity, Failure> {
    let info = process::query(pid);
    if info.liveness == Liveness::Dead {
        return Err(Failure::Other(format!("process {pid} is not running")));
    }
    Ok(Identity {
        pid,
        start_ticks: info.start_ticks,
    })
}

impl Backend for Native {
    type Lock = NativeLock;

    fn open(&self, path: &Path, pid: Option<u32>) -> Result<NativeLock, Failure> {
        let pid = match pid {
            Some(pid) => pid,
            None => process::parent_pid().ok_or_else(|| {
                Failure::Usage("cannot tell the parent process; give --pid".into())
            })?,
        };
        let (dir, name) = locate(path)?;
        let me = std::process::id();
        let full = dir.join(&name);
        Ok(NativeLock {
            path: full.to_string_lossy().into_owned(),
            dir: StdDir::new(dir),
            name,
            sys: Sys {
                acting: identity(pid)?,
                runner: identity(me)?,
                counter: Cell::new(u64::from(me) << 32),
            },
            failure: lockfile_cli::failure,
        })
    }

    fn list(&self, dir: &Path, pid: Option<u32>) -> Result<Listing, Failure> {
        let lock = self.open(&dir.join("probe"), pid)?;
        let dir_path = lock.dir.path().to_string_lossy().into_owned();
        let found = lockfile_core::protocol::survey(&lock.dir, &dir_path, &lock.sys)
            .map_err(lockfile_cli::failure)?;
        Ok(Listing {
            dir: dir_path,
            locks: found.locks,
            unreadable: found.unreadable.iter().map(ToString::to_string).collect(),
            leftovers: found.leftovers,
        })
    }

    fn sweep(&self, dir: &Path) -> Result<Vec<Leftover>, Failure> {
        let lock = self.open(&dir.join("probe"), Some(std::process::id()))?;
        lockfile_core::protocol::sweep_dir(&lock.dir, &dir.to_string_lossy(), &lock.sys)
            .map_err(lockfile_cli::failure)
    }

    fn write(&self, path: &Path, pid: u32, timestamp: Timestamp) -> Result<(), Failure> {
        let lock = self.open(path, Some(std::process::id()))?;
        Lock::new(&lock.dir, &lock.name, &lock.path, &lock.sys)
            .write(pid, timestamp)
            .map_err(lockfile_cli::failure)
    }

    fn run(&self, _: &Path, _: &AcquireOptions, _: OnLost, _: &[String]) -> Result<u8, Failure> {
        Err(Failure::Usage("this benchmark limit has no `run`".into()))
    }
}
