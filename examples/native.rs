//! The `lockfile` command line over `lockfile-core` natively, without the
//! sandbox: the limit `bench/compare.sh` measures the real binary against
//! (issue 14). Same argument parsing, same protocol code, same process
//! facts; only the component and wasmtime are missing. Not for use: it
//! gives up the sandbox, and `run` is left out.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use lockfile_cli::{Backend, Failure, Refused, Wait};
use lockfile_core::protocol::{self, Lock};
use lockfile_core::std_dir::StdDir;
use lockfile_core::{Identity, Liveness, Machine, ProcessInfo, Status, System, Timestamp};
use lockfile_host::process;

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

struct NativeLock {
    dir: StdDir,
    name: String,
    path: String,
    sys: Sys,
}

impl NativeLock {
    fn lock(&self) -> Lock<'_, StdDir, Sys> {
        Lock::new(&self.dir, &self.name, &self.path, &self.sys)
    }
}

fn failure(e: protocol::Error) -> Failure {
    match e {
        protocol::Error::UnableToAcquire(r) => Failure::Refused(Box::new(Refused {
            acquiring: true,
            refusal: *r,
        })),
        protocol::Error::UnableToRelease(r) => Failure::Refused(Box::new(Refused {
            acquiring: false,
            refusal: *r,
        })),
        protocol::Error::Contended { .. } => Failure::Busy(e.to_string()),
        protocol::Error::Lost { .. } => Failure::Lost(e.to_string()),
        other => Failure::Other(other.to_string()),
    }
}

impl lockfile_cli::Lock for NativeLock {
    fn acquire(
        &mut self,
        replace_stale: bool,
        force: bool,
        lease: Option<Duration>,
        token: bool,
    ) -> Result<(), Failure> {
        self.lock()
            .with_lease(lease.map(lockfile_core::options::lease_millis))
            .with_tokens(token)
            .acquire(replace_stale, force)
            .map_err(failure)
    }
    fn token(&mut self) -> Result<Option<u64>, Failure> {
        self.lock().token().map_err(failure)
    }
    fn refresh(&mut self) -> Result<(), Failure> {
        self.lock().refresh().map_err(failure)
    }
    fn release(&mut self, force: bool) -> Result<(), Failure> {
        self.lock().release(force).map_err(failure)
    }
    fn status(&mut self) -> Result<Status, Failure> {
        self.lock().status().map_err(failure)
    }
}

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
        })
    }

    fn write(&self, path: &Path, pid: u32, timestamp: Timestamp) -> Result<(), Failure> {
        let lock = self.open(path, Some(std::process::id()))?;
        lock.lock().write(pid, timestamp).map_err(failure)
    }

    fn run(
        &self,
        _: &Path,
        _: bool,
        _: Option<Wait>,
        _: Option<Duration>,
        _: bool,
        _: &[String],
    ) -> Result<u8, Failure> {
        Err(Failure::Usage("this benchmark limit has no `run`".into()))
    }
}
