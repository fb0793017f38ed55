//! The command line over the core, with process facts from `/proc`.

use std::path::Path;

use lockfile_cli::{Backend, CoreLock, Failure, Listing, OnLost};
use lockfile_core::protocol::{self, Leftover, Lock};
use lockfile_core::wasi_dir::{resolve, resolve_dir_with, Plain, WasiDir};
use lockfile_core::{AcquireOptions, Timestamp, Verdict};

use crate::proc::{self, ProcSystem};

const RUN_ABOUT: &str = "Not available here: WASI cannot start processes. \
                         Use the native `lockfile` binary for `run`.";

/// The command's entry point.
pub fn main() {
    let code = lockfile_cli::main(|| Ok(Wasi), Some(RUN_ABOUT));
    exit(code)
}

/// Exits with the exact code. WASI 0.2's stable `exit` carries only success
/// or failure (wasmtime turns failure into 1), so 2 and 3 would read as 1.
fn exit(code: u8) -> ! {
    wasi::cli::exit::exit_with_code(code);
    std::process::exit(i32::from(code))
}

/// The lock logic in this component.
struct Wasi;

/// An open lock: its directory, name and the process view.
type WasiLock = CoreLock<WasiDir, ProcSystem>;

fn guest_path(path: &Path) -> Result<String, Failure> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| Failure::Other(format!("`{}` is not valid UTF-8", path.display())))
}

/// As [`lockfile_cli::failure`], saying more where WASI hides the cause.
fn failure(e: protocol::Error) -> Failure {
    match e {
        // WASI shows neither modes nor owners: say what a sticky directory
        // would mean, which the native binary can tell for sure.
        protocol::Error::Denied { .. } => Failure::Other(format!(
            "{e}; if the directory is sticky (like /tmp), only the file's owner, the \
             directory's owner or root may replace or remove it"
        )),
        other => match lockfile_cli::failure(other) {
            Failure::Refused(mut refused) => {
                if let Some(why) =
                    proc::blind_because().filter(|_| refused.refusal.verdict == Verdict::Held)
                {
                    refused.refusal.reason.push_str(&format!(" ({why})"));
                }
                Failure::Refused(refused)
            }
            failure => failure,
        },
    }
}

impl Backend for Wasi {
    type Lock = WasiLock;

    fn open(&self, path: &Path, pid: Option<u32>) -> Result<WasiLock, Failure> {
        let path = guest_path(path)?;
        let sys = ProcSystem::new(pid).map_err(|e| match e {
            proc::OpenError::Usage(m) => Failure::Usage(m),
            proc::OpenError::Other(m) => Failure::Other(m),
        })?;
        let (dir, name) = resolve(&path).map_err(failure)?;
        Ok(WasiLock {
            dir,
            name,
            path,
            sys,
            failure,
        })
    }

    fn inspect(&self, path: &Path, pid: Option<u32>) -> Result<WasiLock, Failure> {
        if let Some(pid) = pid {
            // A report takes any point of view, a process that has ended too.
            let path = guest_path(path)?;
            let (dir, name) = resolve(&path).map_err(failure)?;
            return Ok(WasiLock {
                dir,
                name,
                path,
                sys: ProcSystem::viewer(pid),
                failure,
            });
        }
        match self.open(path, pid) {
            // Without /proc there is no parent to default to, but the lock's
            // state needs no owner: look at it from no process's point of view.
            Err(Failure::Usage(_)) if pid.is_none() => {
                let path = guest_path(path)?;
                let (dir, name) = resolve(&path).map_err(failure)?;
                Ok(WasiLock {
                    dir,
                    name,
                    path,
                    sys: ProcSystem::spectator(),
                    failure,
                })
            }
            other => other,
        }
    }

    fn list(&self, dir: &Path, pid: Option<u32>) -> Result<Listing, Failure> {
        let path = guest_path(dir)?;
        let d = resolve_dir_with(&path, Plain).map_err(failure)?;
        let sys = match pid {
            Some(pid) => ProcSystem::viewer(pid),
            None => ProcSystem::new(None).unwrap_or_else(|_| ProcSystem::spectator()),
        };
        let found = protocol::survey(&d, &path, &sys).map_err(failure)?;
        Ok(Listing {
            dir: path,
            locks: found.locks,
            unreadable: found.unreadable.iter().map(ToString::to_string).collect(),
            leftovers: found.leftovers,
        })
    }

    fn sweep(&self, dir: &Path) -> Result<Vec<Leftover>, Failure> {
        let path = guest_path(dir)?;
        let d = resolve_dir_with(&path, Plain).map_err(failure)?;
        protocol::sweep_dir(&d, &path, &ProcSystem::spectator()).map_err(failure)
    }

    fn default_pid(&self) -> &'static str {
        "the parent of `wasmtime`, the shell or script that ran it"
    }

    fn own_pid(&self) -> Result<u32, Failure> {
        match proc::runner().pid {
            0 => Err(Failure::Usage(format!(
                "cannot tell this process's pid: {}",
                proc::blind_because().unwrap_or("no /proc")
            ))),
            pid => Ok(pid),
        }
    }

    fn write(&self, path: &Path, pid: u32, timestamp: Timestamp) -> Result<(), Failure> {
        let path = guest_path(path)?;
        let (dir, name) = resolve(&path).map_err(failure)?;
        // Planting a record needs no process knowledge.
        let sys = ProcSystem::unchecked(pid);
        Lock::new(&dir, &name, &path, &sys)
            .write(pid, timestamp)
            .map_err(failure)
    }

    fn run(&self, _: &Path, _: &AcquireOptions, _: OnLost, _: &[String]) -> Result<u8, Failure> {
        Err(Failure::Usage(
            "`run` needs to start COMMAND, which WASI cannot do; use the native `lockfile` binary"
                .into(),
        ))
    }
}
