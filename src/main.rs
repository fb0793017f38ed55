//! `lockfile`: take, release and inspect PID lock files from the shell.
//!
//! The command line itself is `lockfile-cli`, shared with the WASI command
//! component; this binary supplies the backend: the lock component running
//! in wasmtime, and `run`, which needs to start processes.

#![cfg_attr(all(target_os = "linux", not(test)), no_main)]

use std::mem::ManuallyDrop;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use lockfile_cli::{Backend, Failure, Listing, Lock, OnLost, Wait, LOST, OTHER};
use lockfile_host::kv::{KvAddress, SharedStore, DEFAULT_KV_LEASE, ENDPOINTS_VAR};
use lockfile_host::{
    AcquireOptions, Error, KvFor, KvLockFile, Leftover, LockFile, Runtime, Status, Timestamp,
};

mod alloc;
#[cfg(unix)]
mod gate;
#[cfg(all(target_arch = "x86_64", any(test, target_env = "musl")))]
mod memfns;

#[global_allocator]
static ALLOC: alloc::Arena = alloc::Arena::new();

#[cfg(not(all(target_os = "linux", not(test))))]
fn main() -> std::process::ExitCode {
    ALLOC.prefault(alloc::PREFAULT);
    std::process::ExitCode::from(lockfile(std::env::args_os()))
}

/// The process's entry point, called by the C library's start-up without
/// std's runtime start (`no_main`). That start exists for the message a
/// stack overflow would print: on glibc it reads and parses all of
/// `/proc/self/maps` (through `pthread_getattr_np`) to place a guard page
/// below the main thread's stack, a twentieth of a `lockfile status`
/// process; on musl it maps, guards and installs an alternate signal stack
/// and unmaps it at exit, eleven system calls. wasmtime installs its own
/// handlers and stack anyway. What else that start does and `lockfile`
/// relies on is done here. The arguments are taken from `argv`: std learns
/// them from glibc itself, but from musl only in that start. The
/// environment std reads from the C library either way.
#[cfg(all(target_os = "linux", not(test)))]
#[unsafe(no_mangle)]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: plain system calls on the standard descriptors.
    unsafe {
        // A closed stdin, stdout or stderr is opened on /dev/null, as std
        // does: a lock file opened on descriptor 1 would get what is printed.
        let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        });
        while libc::poll(fds.as_mut_ptr(), 3, 0) == -1 {
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                libc::abort();
            }
        }
        for pfd in fds {
            if pfd.revents & libc::POLLNVAL != 0
                && libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) != pfd.fd
            {
                libc::abort();
            }
        }
        // Writes to a closed pipe fail with EPIPE instead of killing us.
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    ALLOC.prefault(alloc::PREFAULT);
    let count = usize::try_from(argc).unwrap_or(0);
    // SAFETY: the C start-up passes `argc` valid NUL-terminated strings in
    // `argv`, which live as long as the process.
    let args = (0..count).map(|i| unsafe {
        let arg = std::ffi::CStr::from_ptr(*argv.add(i));
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(arg.to_bytes()).to_owned()
    });
    let code = lockfile(args);
    // std's runtime would flush stdout at exit.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    libc::c_int::from(code)
}

fn lockfile(args: impl IntoIterator<Item = std::ffi::OsString>) -> u8 {
    lockfile_cli::main_with_args(
        args,
        || {
            Ok(Sandboxed {
                runtime: std::cell::OnceCell::new(),
                stores: std::cell::RefCell::default(),
            })
        },
        None,
    )
}

/// The lock component in wasmtime, loaded on first use (`run` forks its
/// command's process first: a fork copies the page tables of everything
/// mapped, and the loaded component maps a lot). Never dropped: the process
/// exits right after one command, and unmapping the engine's code and the
/// sandbox's memory by hand costs a quarter of a millisecond that exit does
/// for free.
struct Sandboxed {
    runtime: std::cell::OnceCell<ManuallyDrop<Runtime>>,
    /// Connections to etcd clusters, by endpoints, for locks kept there.
    stores: std::cell::RefCell<Vec<(Vec<String>, SharedStore)>>,
}

/// Whom a lock is opened for.
#[derive(Clone, Copy)]
enum Whom {
    Pid(u32),
    Inspect(u32),
    Companion(u32),
}

/// How long connecting to etcd, and each request, may take.
const ETCD_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// The etcd address `path` is, if it is one.
    fn kv_address(path: &Path) -> Result<Option<KvAddress>, Failure> {
        let Some(text) = path.to_str() else {
            return Ok(None);
        };
        let defaults = std::env::var(ENDPOINTS_VAR).ok();
        KvAddress::parse(text, defaults.as_deref())
            .transpose()
            .map_err(failure)
    }

    /// A connection to the cluster at `address`, made once per process.
    fn kv_store(&self, address: &KvAddress, name: &str) -> Result<SharedStore, Failure> {
        let endpoints = &address.endpoints;
        if let Some((_, store)) = self.stores.borrow().iter().find(|(e, _)| e == endpoints) {
            return Ok(store.clone());
        }
        let unusable = |e: String| failure(lockfile_host::kv::unusable(name, e));
        let options = lockfile_host::etcd::EtcdOptions::from_env(address.tls, ETCD_TIMEOUT)
            .map_err(unusable)?;
        let store: SharedStore = std::sync::Arc::new(
            lockfile_host::etcd::EtcdStore::connect_with(endpoints, &options).map_err(unusable)?,
        );
        self.stores
            .borrow_mut()
            .push((endpoints.to_vec(), store.clone()));
        Ok(store)
    }

    /// Opens the lock at `path` (a lock file, or a key in etcd) for `whom`.
    fn open_for(&self, path: &Path, whom: Whom) -> Result<SandboxedLock, Failure> {
        if let Some(address) = Self::kv_address(path)? {
            let name = path.to_string_lossy();
            let store = self.kv_store(&address, &name)?;
            let whom = match whom {
                Whom::Pid(pid) => KvFor::Pid(pid),
                Whom::Inspect(pid) => KvFor::Inspect(pid),
                Whom::Companion(pid) => KvFor::Companion(pid),
            };
            return self
                .runtime()?
                .open_kv(store, &name, &address.key, whom)
                .map(|l| SandboxedLock::Kv(ManuallyDrop::new(l)))
                .map_err(failure);
        }
        let runtime = self.runtime()?;
        match whom {
            Whom::Pid(pid) => runtime.open_as(path, pid),
            Whom::Inspect(pid) => runtime.inspect_as(path, pid),
            Whom::Companion(pid) => runtime.open_with_companion(path, pid),
        }
        .map(|l| SandboxedLock::File(ManuallyDrop::new(l)))
        .map_err(failure)
    }
}

/// A lock opened through the component (never dropped, as above): a lock
/// file, or a key in etcd.
enum SandboxedLock {
    File(ManuallyDrop<LockFile>),
    Kv(ManuallyDrop<KvLockFile>),
}

/// Where a lock in etcd cannot go.
fn not_in_etcd(what: &str) -> Failure {
    Failure::Usage(format!("{what} is not supported for locks in etcd yet"))
}

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
        match self {
            SandboxedLock::File(l) => l.acquire_with(once),
            SandboxedLock::Kv(l) => {
                if once.lease.is_none() {
                    return Err(Failure::Usage(
                        "a lock in etcd lives as long as its lease: give --lease SECONDS and \
                         renew it with `lockfile refresh` (`lockfile run` renews it for you)"
                            .into(),
                    ));
                }
                l.acquire_with(once)
            }
        }
        .map_err(failure)
    }

    fn token(&mut self) -> Result<Option<u64>, Failure> {
        match self {
            SandboxedLock::File(l) => l.token(),
            SandboxedLock::Kv(l) => l.token(),
        }
        .map_err(failure)
    }

    fn refresh(&mut self) -> Result<(), Failure> {
        match self {
            SandboxedLock::File(l) => l.refresh(),
            SandboxedLock::Kv(l) => l.refresh(),
        }
        .map_err(failure)
    }

    fn release(&mut self, force: bool) -> Result<(), Failure> {
        match self {
            SandboxedLock::File(l) => l.release(force),
            SandboxedLock::Kv(l) => l.release(force),
        }
        .map_err(failure)
    }

    fn status(&mut self) -> Result<Status, Failure> {
        match self {
            SandboxedLock::File(l) => l.status(),
            SandboxedLock::Kv(l) => l.status(),
        }
        .map_err(failure)
    }

    fn wait_for_change(&mut self, limit: Duration) -> Option<Result<(), Failure>> {
        match self {
            SandboxedLock::File(_) => None,
            SandboxedLock::Kv(l) => Some(l.wait_for_change(limit).map(|_| ()).map_err(failure)),
        }
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
        self.open_for(path, Whom::Pid(pid))
    }

    fn inspect(&self, path: &Path, pid: Option<u32>) -> Result<SandboxedLock, Failure> {
        // A report takes any point of view, a process that has ended too.
        match pid {
            Some(pid) => self.open_for(path, Whom::Inspect(pid)),
            None => self.open(path, None),
        }
    }

    fn list(&self, dir: &Path, pid: Option<u32>) -> Result<Listing, Failure> {
        if let Some(address) = Self::kv_address(dir)? {
            // Everything up to the key, so that each lock is named by its
            // address: etcd://HOST:PORT/ and its key.
            let text = dir.to_string_lossy();
            let name_prefix = &text[..text.len() - address.key.len()];
            let store = self.kv_store(&address, &text)?;
            let pid = pid.or_else(lockfile_host::process::parent_pid);
            let locks = self
                .runtime()?
                .list_kv(store, name_prefix, &address.key, pid)
                .map_err(failure)?;
            return Ok(Listing {
                dir: text.into_owned(),
                locks,
                unreadable: Vec::new(),
                leftovers: Vec::new(),
            });
        }
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
        if Self::kv_address(dir)?.is_some() {
            return Err(not_in_etcd("`clean`"));
        }
        self.runtime()?.sweep_leftovers(dir).map_err(failure)
    }

    fn write(&self, path: &Path, pid: u32, timestamp: Timestamp) -> Result<(), Failure> {
        if Self::kv_address(path)?.is_some() {
            return Err(not_in_etcd("`write`"));
        }
        self.runtime()?.write(path, pid, timestamp).map_err(failure)
    }

    fn run(
        &self,
        path: &Path,
        options: &AcquireOptions,
        on_lost: OnLost,
        command: &[String],
    ) -> Result<u8, Failure> {
        #[cfg(not(unix))]
        return Err(Failure::Usage(
            "`run` needs Unix (pipes, exec and signals)".into(),
        ));
        #[cfg(unix)]
        self.run_gated(path, options, on_lost, command)
    }
}

impl Sandboxed {
    #[cfg(unix)]
    fn run_gated(
        &self,
        path: &Path,
        options: &AcquireOptions,
        on_lost: OnLost,
        command: &[String],
    ) -> Result<u8, Failure> {
        let other = |e: anyhow::Error| Failure::Other(format!("{e:#}"));
        // COMMAND's process exists before the lock is taken, held at a gate,
        // so that the lock names it too (see `gate`).
        // A lock in etcd lives as long as its lease: one is always kept;
        // and its token (the key's revision) always comes with it.
        let in_etcd = Self::kv_address(path)?.is_some();
        let options = &AcquireOptions {
            lease: options.lease.or(in_etcd.then_some(DEFAULT_KV_LEASE)),
            token: options.token || in_etcd,
            ..*options
        };
        let gated = gate::Gated::spawn(command).map_err(other)?;
        let opened = self.open_for(path, Whom::Companion(gated.pid()));
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
                let stop = (on_lost == OnLost::Term).then_some(gated.pid());
                self.with_refresher(path, gated.pid(), lease, stop, || {
                    gated.open_and_wait(token)
                })
            }
        };
        // COMMAND may have ended while this process was paused past its
        // lease, before the refresher could look: a last look says whether
        // the lock was still ours when COMMAND ended.
        let mut lost = lost;
        if options.lease.is_some() && !lost {
            if let Err(e @ Failure::Lost(_)) = lock.refresh() {
                eprintln!("lockfile: {}; it was lost while COMMAND ran", e.message());
                lost = true;
            }
        }
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
        if lost && on_lost == OnLost::Term {
            return Ok(LOST);
        }
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
    /// the refreshing stops, `lockfile` says so on stderr, and `stop`, if
    /// given (COMMAND's pid), is sent SIGTERM; otherwise COMMAND runs on,
    /// and tokens, not this process, stop what it does downstream.
    #[cfg(unix)]
    fn with_refresher<T: Send>(
        &self,
        path: &Path,
        companion: u32,
        lease: Duration,
        stop_command: Option<u32>,
        wait: impl FnOnce() -> T + Send,
    ) -> (T, bool) {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let mut handle = match self.open_for(path, Whom::Companion(companion)) {
            Ok(handle) => handle,
            Err(e) => {
                eprintln!("lockfile: cannot renew the lease: {}", e.message());
                return (wait(), false);
            }
        };
        std::thread::scope(|scope| {
            let refresher = scope.spawn(move || {
                let every = (lease / 3).max(Duration::from_millis(1));
                let lose = |why: String| match stop_command {
                    Some(pid) => {
                        eprintln!("lockfile: {why}; COMMAND (pid {pid}) is sent SIGTERM");
                        terminate(pid);
                    }
                    None => eprintln!("lockfile: {why}; COMMAND runs on without it"),
                };
                // The lease was (re)started when the lock was taken, just
                // before COMMAND was let through.
                let mut renewed = std::time::Instant::now();
                loop {
                    match stopped.recv_timeout(every) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return false,
                    }
                    match handle.refresh() {
                        Ok(()) => renewed = std::time::Instant::now(),
                        Err(e @ Failure::Lost(_)) => {
                            lose(e.message());
                            return true;
                        }
                        // Not renewed for a whole lease (the file server or
                        // every etcd member unreachable): another host may
                        // take the lock now, so it counts as lost.
                        Err(e) if renewed.elapsed() >= lease => {
                            lose(format!(
                                "the lease could not be renewed for {lease:?} ({}): \
                                 another host may hold the lock now",
                                e.message()
                            ));
                            return true;
                        }
                        // A passing failure (an NFS hiccup): try again next time.
                        Err(e) => eprintln!(
                            "lockfile: cannot renew the lease (will retry): {}",
                            e.message()
                        ),
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

/// Sends `pid` SIGTERM (best effort: it may have ended).
#[cfg(unix)]
fn terminate(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

/// Where [`forward`] sends the signals it catches: COMMAND's pid, or 0
/// once it is gone.
#[cfg(unix)]
static FORWARD_TO: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The handler of SIGINT, SIGTERM, SIGHUP and SIGQUIT while COMMAND runs:
/// sends the signal on to it.
#[cfg(unix)]
extern "C" fn forward(signal: libc::c_int) {
    let pid = FORWARD_TO.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // `kill` is async-signal-safe; `errno`, which it may set, is the
        // interrupted code's, so it is put back.
        let saved = errno::errno();
        // SAFETY: a plain system call.
        unsafe { libc::kill(pid, signal) };
        errno::set_errno(saved);
    }
}

/// Forwards termination signals to the child until closed.
///
/// The handlers themselves send the signal on (`kill` is
/// async-signal-safe): no thread to start and tear down, which `run` paid
/// for on every command, and no registry of handlers to build (one
/// `sigaction` a signal).
#[cfg(unix)]
fn forward_signals(child: u32) -> anyhow::Result<Forwarder> {
    let pid = i32::try_from(child)
        .ok()
        .filter(|&p| p > 0)
        .context("the command's pid is not a pid")?;
    FORWARD_TO.store(pid, std::sync::atomic::Ordering::Relaxed);
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: a zeroed `sigaction` is a valid one (empty mask, no
        // flags); the handler only loads an atomic and calls `kill`.
        let installed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = forward as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if installed != 0 {
            return Err(std::io::Error::last_os_error()).context("cannot install signal handlers");
        }
    }
    Ok(Forwarder)
}

/// The forwarding handlers, until [`Forwarder::close`].
#[cfg(unix)]
struct Forwarder;

#[cfg(unix)]
impl Forwarder {
    /// Stops forwarding (the child is gone). The handlers stay, doing
    /// nothing: `lockfile` releases the lock next, and a SIGINT then must
    /// not end it halfway.
    fn close(self) {
        FORWARD_TO.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}
