//! `lockfile`: take, release and inspect PID lock files from the shell.
//!
//! The command line itself is `lockfile-cli`, shared with the WASI command
//! component; this binary supplies the backend: the lock component running
//! in wasmtime, and `run`, which needs to start processes.

use std::mem::ManuallyDrop;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use lockfile_cli::{Backend, Failure, Listing, Lock, Wait, OTHER};
use lockfile_host::{
    AcquireOptions, Error, Leftover, LockError, LockFile, Runtime, Status, Timestamp,
};

#[cfg(unix)]
mod gate;

fn main() -> ExitCode {
    let code = lockfile_cli::main(
        || {
            Ok(Sandboxed {
                runtime: std::cell::OnceCell::new(),
            })
        },
        None,
    );
    ExitCode::from(code)
}

/// The lock component in wasmtime, loaded on first use (`run` forks its
/// command's process first: a fork copies the page tables of everything
/// mapped, and the loaded component maps a lot). Never dropped: the process
/// exits right after one command, and unmapping the engine's code and the
/// sandbox's memory by hand costs a quarter of a millisecond that exit does
/// for free.
struct Sandboxed {
    runtime: std::cell::OnceCell<ManuallyDrop<Runtime>>,
}

impl Sandboxed {
    fn runtime(&self) -> Result<&Runtime, Failure> {
        if let Some(r) = self.runtime.get() {
            return Ok(r);
        }
        // The test pause hook is read here, by the binary, never by the library.
        let pauses = std::env::var(lockfile_host::PAUSE_VAR).ok();
        let runtime = Runtime::for_command()
            .map(|r| match &pauses {
                Some(spec) => r.with_test_pauses(spec),
                None => r,
            })
            .map_err(|e| Failure::Other(format!("cannot load the lockfile component: {e}")))?;
        Ok(self.runtime.get_or_init(|| ManuallyDrop::new(runtime)))
    }
}

/// A lock opened through the component (never dropped, as above).
struct SandboxedLock(ManuallyDrop<LockFile>);

/// The failure a host error is: the core's cases as every front end maps
/// them (`lockfile_cli::failure`), the host's own as errors.
fn failure(e: Error) -> Failure {
    match e.into_lock_error() {
        Ok(e) => lockfile_cli::failure(e),
        Err(own) => Failure::Other(own.to_string()),
    }
}

impl Lock for SandboxedLock {
    fn acquire(&mut self, options: &AcquireOptions) -> Result<(), Failure> {
        // One attempt: the caller waits (`lockfile_cli::acquire`).
        let once = AcquireOptions {
            wait: Wait::No,
            ..*options
        };
        self.0.acquire_with(once).map_err(failure)
    }

    fn token(&mut self) -> Result<Option<u64>, Failure> {
        self.0.token().map_err(failure)
    }

    fn refresh(&mut self) -> Result<(), Failure> {
        self.0.refresh().map_err(failure)
    }

    fn release(&mut self, force: bool) -> Result<(), Failure> {
        self.0.release(force).map_err(failure)
    }

    fn status(&mut self) -> Result<Status, Failure> {
        self.0.status().map_err(failure)
    }
}

impl Backend for Sandboxed {
    type Lock = SandboxedLock;

    fn open(&self, path: &Path, pid: Option<u32>) -> Result<SandboxedLock, Failure> {
        let pid = match pid {
            Some(pid) => pid,
            None => lockfile_host::process::parent_pid().ok_or_else(|| {
                Failure::Usage("cannot tell the parent process here; give --pid".into())
            })?,
        };
        self.runtime()?
            .open_as(path, pid)
            .map(|l| SandboxedLock(ManuallyDrop::new(l)))
            .map_err(failure)
    }

    fn inspect(&self, path: &Path, pid: Option<u32>) -> Result<SandboxedLock, Failure> {
        // A report takes any point of view, a process that has ended too.
        match pid {
            Some(pid) => self
                .runtime()?
                .inspect_as(path, pid)
                .map(|l| SandboxedLock(ManuallyDrop::new(l)))
                .map_err(failure),
            None => self.open(path, None),
        }
    }

    fn list(&self, dir: &Path, pid: Option<u32>) -> Result<Listing, Failure> {
        let pid = pid.or_else(lockfile_host::process::parent_pid);
        let found = self.runtime()?.list_locks(dir, pid).map_err(failure)?;
        Ok(Listing {
            dir: std::fs::canonicalize(dir)
                .unwrap_or_else(|_| dir.to_path_buf())
                .to_string_lossy()
                .into_owned(),
            locks: found.locks,
            unreadable: found.unreadable.iter().map(ToString::to_string).collect(),
            leftovers: found.leftovers,
        })
    }

    fn sweep(&self, dir: &Path) -> Result<Vec<Leftover>, Failure> {
        self.runtime()?.sweep_leftovers(dir).map_err(failure)
    }

    fn write(&self, path: &Path, pid: u32, timestamp: Timestamp) -> Result<(), Failure> {
        self.runtime()?.write(path, pid, timestamp).map_err(failure)
    }

    fn run(
        &self,
        path: &Path,
        options: &AcquireOptions,
        command: &[String],
    ) -> Result<u8, Failure> {
        #[cfg(not(unix))]
        return Err(Failure::Usage(
            "`run` needs Unix (pipes, exec and signals)".into(),
        ));
        #[cfg(unix)]
        self.run_gated(path, options, command)
    }
}

impl Sandboxed {
    #[cfg(unix)]
    fn run_gated(
        &self,
        path: &Path,
        options: &AcquireOptions,
        command: &[String],
    ) -> Result<u8, Failure> {
        let other = |e: anyhow::Error| Failure::Other(format!("{e:#}"));
        // COMMAND's process exists before the lock is taken, held at a gate,
        // so that the lock names it too (see `gate`).
        let gated = gate::Gated::spawn(command).map_err(other)?;
        let opened = self.runtime().and_then(|r| {
            r.open_with_companion(path, gated.pid())
                .map(|l| SandboxedLock(ManuallyDrop::new(l)))
                .map_err(failure)
        });
        let mut lock = match opened {
            Ok(lock) => lock,
            Err(e) => {
                gated.abandon();
                return Err(e);
            }
        };
        // A fencing token, if asked for, goes to COMMAND as LOCKFILE_TOKEN.
        let token = lockfile_cli::acquire(&mut lock, options).and_then(|()| {
            if options.token {
                lock.token()
            } else {
                Ok(None)
            }
        });
        let token = match token {
            Ok(token) => token,
            Err(e) => {
                gated.abandon();
                return Err(e);
            }
        };
        let (result, lost) = match options.lease {
            None => (gated.open_and_wait(token), false),
            Some(lease) => {
                self.with_refresher(path, gated.pid(), lease, || gated.open_and_wait(token))
            }
        };
        let released = lock.release(false);
        let code = match result {
            Ok(code) => code,
            // COMMAND never ran: say so, with the shell's 126 or 127.
            Err(e) => match e.downcast::<gate::CannotRun>() {
                Ok(cannot) => {
                    eprintln!("lockfile: {cannot}");
                    cannot.code
                }
                Err(e) => return Err(other(e)),
            },
        };
        if let Err(e) = released {
            // A lock lost (its lease ran out) was said to be lost already.
            if !lost {
                eprintln!("lockfile: {}", e.message());
            }
            if code == 0 {
                return Ok(OTHER);
            }
        }
        Ok(code)
    }

    /// Runs `wait` while a thread renews the lease every third of it, from a
    /// handle of its own (the same owner: this process and `companion`).
    /// Returns what `wait` returned, and whether the lock was lost: then
    /// the refreshing stops, and `lockfile` says so on stderr (COMMAND runs
    /// on; tokens, not this process, can stop what it does downstream).
    #[cfg(unix)]
    fn with_refresher<T: Send>(
        &self,
        path: &Path,
        companion: u32,
        lease: Duration,
        wait: impl FnOnce() -> T + Send,
    ) -> (T, bool) {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let Ok(runtime) = self.runtime() else {
            return (wait(), false);
        };
        std::thread::scope(|scope| {
            let refresher = scope.spawn(move || {
                let mut handle = match runtime.open_with_companion(path, companion) {
                    Ok(handle) => handle,
                    Err(e) => {
                        eprintln!("lockfile: cannot renew the lease: {e}");
                        return false;
                    }
                };
                let every = (lease / 3).max(Duration::from_millis(1));
                loop {
                    match stopped.recv_timeout(every) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return false,
                    }
                    match handle.refresh() {
                        Ok(()) => {}
                        Err(e @ Error::Lock(LockError::Lost { .. })) => {
                            eprintln!("lockfile: {e}; COMMAND runs on without it");
                            return true;
                        }
                        // A passing failure (an NFS hiccup): try again next time.
                        Err(e) => eprintln!("lockfile: cannot renew the lease (will retry): {e}"),
                    }
                }
            });
            let result = wait();
            let _ = stop.send(());
            let lost = refresher.join().unwrap_or(false);
            (result, lost)
        })
    }
}

/// Forwards termination signals to the child until closed.
///
/// The handlers themselves send the signal on (`kill` is
/// async-signal-safe): no thread to start and tear down, which `run` paid
/// for on every command.
#[cfg(unix)]
fn forward_signals(child: u32) -> anyhow::Result<Forwarder> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let pid = i32::try_from(child)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .context("the command's pid is not a pid")?;
    let mut ids = Vec::new();
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
        let Some(sig) = rustix::process::Signal::from_named_raw(signal) else {
            continue;
        };
        // SAFETY: the action only makes the `kill` system call (through
        // rustix, no allocation, no lock), which is async-signal-safe.
        let id = unsafe {
            signal_hook::low_level::register(signal, move || {
                let _ = rustix::process::kill_process(pid, sig);
            })
        }
        .context("cannot install signal handlers")?;
        ids.push(id);
    }
    Ok(Forwarder(ids))
}

/// The forwarding handlers, until [`Forwarder::close`].
#[cfg(unix)]
struct Forwarder(Vec<signal_hook::SigId>);

#[cfg(unix)]
impl Forwarder {
    /// Stops forwarding (the child is gone).
    fn close(self) {
        for id in self.0 {
            signal_hook::low_level::unregister(id);
        }
    }
}
