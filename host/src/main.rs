//! `lockfile`: take, release and inspect PID lock files from the shell.
//!
//! The command line itself is `lockfile-cli`, shared with the WASI command
//! component; this binary supplies the backend: the lock component running
//! in wasmtime, and `run`, which needs to start processes.

use std::mem::ManuallyDrop;
use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::Context;
use lockfile_cli::{Backend, Failure, Lock, Owner, Refused, StatusView, Wait, OTHER};
use lockfile_host::{Allocation, Error, LockFile, Runtime, Timestamp};

fn main() -> ExitCode {
    ExitCode::from(lockfile_cli::main(
        || {
            // One lock per process: no pool to reserve.
            Runtime::with_allocation(Allocation::OnDemand)
                .map(|r| Native(ManuallyDrop::new(r)))
                .map_err(|e| Failure::Other(format!("cannot load the lockfile component: {e}")))
        },
        None,
    ))
}

/// The lock component in wasmtime. Never dropped: the process exits right
/// after one command, and unmapping the engine's code and the sandbox's
/// memory by hand costs a quarter of a millisecond that exit does for free.
struct Native(ManuallyDrop<Runtime>);

/// A lock opened through the component (never dropped, as above).
struct NativeLock(ManuallyDrop<LockFile>);

fn failure(e: Error) -> Failure {
    let refused = |r: lockfile_host::Refusal, acquiring| {
        Failure::Refused(Box::new(Refused {
            acquiring,
            path: r.path.display().to_string(),
            owner: Owner {
                pid: r.owner.pid,
                date: r.owner.date,
                hostname: r.owner.hostname,
            },
            verdict: r.verdict,
            reason: r.reason,
        }))
    };
    match e {
        Error::UnableToAcquire(r) => refused(r, true),
        Error::UnableToRelease(r) => refused(r, false),
        other => Failure::Other(other.to_string()),
    }
}

impl Lock for NativeLock {
    fn acquire(&mut self, replace_stale: bool, force: bool) -> Result<(), Failure> {
        self.0.acquire(replace_stale, force).map_err(failure)
    }

    fn release(&mut self, force: bool) -> Result<(), Failure> {
        self.0.release(force).map_err(failure)
    }

    fn status(&mut self) -> Result<StatusView, Failure> {
        let s = self.0.status().map_err(failure)?;
        Ok(StatusView {
            path: s.path.display().to_string(),
            owner: s.owner.map(|o| Owner {
                pid: o.pid,
                date: o.date,
                hostname: o.hostname,
            }),
            verdict: s.verdict,
            reason: s.reason,
        })
    }
}

impl Backend for Native {
    type Lock = NativeLock;

    fn open(&self, path: &Path, pid: Option<u32>) -> Result<NativeLock, Failure> {
        let pid = match pid {
            Some(pid) => pid,
            None => lockfile_host::process::parent_pid().ok_or_else(|| {
                Failure::Usage("cannot tell the parent process here; give --pid".into())
            })?,
        };
        self.0
            .open_as(path, pid)
            .map(|l| NativeLock(ManuallyDrop::new(l)))
            .map_err(failure)
    }

    fn write(&self, path: &Path, pid: u32, timestamp: Timestamp) -> Result<(), Failure> {
        self.0.write(path, pid, timestamp).map_err(failure)
    }

    fn run(
        &self,
        path: &Path,
        replace_stale: bool,
        wait: Option<Wait>,
        command: &[String],
    ) -> Result<u8, Failure> {
        let mut lock = NativeLock(ManuallyDrop::new(self.0.open(path).map_err(failure)?));
        lockfile_cli::acquire(&mut lock, replace_stale, false, wait)?;
        let result = spawn_and_wait(command);
        let released = lock.release(false);
        let code = result.map_err(|e| Failure::Other(format!("{e:#}")))?;
        if let Err(e) = released {
            eprintln!("lockfile: {}", e.message());
            if code == 0 {
                return Ok(OTHER);
            }
        }
        Ok(code)
    }
}

/// Runs the command to its end and returns its exit code (128+N for signal N).
fn spawn_and_wait(command: &[String]) -> anyhow::Result<u8> {
    let Some((program, args)) = command.split_first() else {
        anyhow::bail!("no COMMAND given");
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = rustix::process::getpid();
        // SAFETY: the closure runs in the forked child before exec and makes
        // only async-signal-safe system calls (prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::TERM,
                ))?;
                // If `lockfile` died before the prctl, no signal will come:
                // do not start COMMAND at all.
                if rustix::process::getppid() != Some(parent) {
                    return Err(std::io::Error::other(
                        "lockfile exited before COMMAND started",
                    ));
                }
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run `{program}`"))?;
    #[cfg(unix)]
    let forwarder = forward_signals(child.id())?;
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for `{program}`"))?;
    #[cfg(unix)]
    forwarder.close();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return Ok(128u8.saturating_add(u8::try_from(signal).unwrap_or(127)));
        }
    }
    Ok(status
        .code()
        .map_or(OTHER, |c| u8::try_from(c & 0xff).unwrap_or(OTHER)))
}

/// Forwards termination signals to the child until closed.
#[cfg(unix)]
fn forward_signals(child: u32) -> anyhow::Result<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
        .context("cannot install signal handlers")?;
    let handle = signals.handle();
    let pid = i32::try_from(child)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let sig = rustix::process::Signal::from_named_raw(signal);
            if let (Some(pid), Some(sig)) = (pid, sig) {
                let _ = rustix::process::kill_process(pid, sig);
            }
        }
    });
    Ok(handle)
}
