//! `lockfile.node`: labm8's `LockFile` for Node over the Rust host library.
//!
//! Every method is one call into the sandbox. The asynchronous ones run on
//! libuv's thread pool (napi async work) for one attempt each: waiting is
//! the package's JavaScript, with timers between attempts on the schedule
//! [`Schedule`] gives (core's), so a wait never holds a pool thread, nor
//! the process when it exits. `acquireSync` waits on the calling thread
//! (core's `Wait::retry`). A handle's mutex is held only for one call.
//!
//! Each handle is a holder of its own within the process (a holder tag, as
//! an application gives each plugin), so two handles, or two worker
//! threads, exclude each other as two processes do; and, as a plugin's
//! locks go with the plugin, a handle's lock goes with the handle (closed,
//! collected, or its worker ended).
//!
//! Errors reach JavaScript as an `Error` whose message is
//! `labm8-lockfile:` followed by JSON (`kind`, `path`, `message`, `text`,
//! `refusal`); `node/src/index.cjs` turns it into labm8's classes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lockfile_host::{AcquireOptions, Backoff, Error, LockFile, Runtime, Wait};
use napi::bindgen_prelude::{AsyncTask, BigInt, ToNapiValue, TypeName};
use napi::{Env, Task};
use napi_derive::napi;

mod errors;
mod records;

use errors::{fail, fail_on, invalid, Failure};
use records::{millis, owner, status_record, AcquireArgs, OwnerRecord, StatusRecord};

/// The runtime of the process: the component is loaded once, on first use.
static RUNTIME: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

/// The fastest start (`Runtime::for_command`): the component's code run
/// where it lies in the addon, and sandboxes allocated on demand rather than
/// from a pool, which would cap how many handles may be open at once.
fn runtime() -> Result<Arc<Runtime>, Error> {
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(runtime) = slot.as_ref() {
        return Ok(Arc::clone(runtime));
    }
    let runtime = Arc::new(Runtime::for_command()?);
    *slot = Some(Arc::clone(&runtime));
    Ok(runtime)
}

/// One lock file's handle, opened in its own sandbox on first use, and
/// whether it was closed (then nothing opens it again).
#[derive(Debug, Default)]
struct Handle {
    lock: Option<LockFile>,
    closed: bool,
}

impl Handle {
    /// Ends the handle: the lock it holds is released, since the handle is
    /// its holder and nothing else could release it short of `force` (the
    /// process lives on, so the lock would not even look stale).
    fn end(&mut self) {
        self.closed = true;
        if let Some(mut lock) = self.lock.take() {
            // Not ours (never taken, or taken over): release refuses, and
            // leaves it as it is.
            let _ = lock.release(false);
        }
    }
}

/// Garbage collection, and the end of a worker's environment, drop the
/// last reference: a handle that ends that way releases too.
impl Drop for Handle {
    fn drop(&mut self) {
        self.end();
    }
}

type Slot = Arc<Mutex<Handle>>;

/// Runs `op` on the handle in `slot`, opening it first (as holder `tag`)
/// if needed.
fn call<T>(
    path: &std::path::Path,
    tag: u64,
    slot: &Slot,
    op: impl FnOnce(&mut LockFile) -> Result<T, Error>,
) -> Result<T, Failure> {
    let mut handle = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if handle.closed {
        return Err(Failure::Closed);
    }
    let lock = match &mut handle.lock {
        Some(lock) => lock,
        empty => empty.insert(runtime()?.open_for_holder(path, tag)?),
    };
    Ok(op(lock)?)
}

/// Acquires with `options`: one attempt per call into the sandbox, core's
/// wait loop between them (the handle is free while it pauses).
fn acquire(
    path: &std::path::Path,
    tag: u64,
    slot: &Slot,
    options: AcquireOptions,
) -> Result<(), Failure> {
    let once = AcquireOptions {
        wait: Wait::No,
        ..options
    };
    options.wait.retry(
        || call(path, tag, slot, |h| h.acquire_with(once)),
        |e| {
            matches!(
                e,
                Failure::Lock(e) if matches!(
                    e.lock_error(),
                    Some(lockfile_host::LockError::UnableToAcquire(_))
                        | Some(lockfile_host::LockError::Contended { .. })
                )
            )
        },
        |_| {},
    )
}

/// An operation run on libuv's thread pool; its promise settles with `T`.
pub struct Work<T: Send + 'static> {
    op: Option<Box<dyn FnOnce() -> napi::Result<T> + Send>>,
}

impl<T: Send + 'static> std::fmt::Debug for Work<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Work").finish_non_exhaustive()
    }
}

impl<T: Send + ToNapiValue + TypeName + 'static> Work<T> {
    fn task(op: impl FnOnce() -> napi::Result<T> + Send + 'static) -> AsyncTask<Self> {
        AsyncTask::new(Work {
            op: Some(Box::new(op)),
        })
    }
}

impl<T: Send + ToNapiValue + TypeName + 'static> Task for Work<T> {
    type Output = T;
    type JsValue = T;

    fn compute(&mut self) -> napi::Result<T> {
        let op = self
            .op
            .take()
            .ok_or_else(|| napi::Error::from_reason("the operation ran twice"))?;
        op()
    }

    fn resolve(&mut self, _env: Env, output: T) -> napi::Result<T> {
        Ok(output)
    }
}

/// Holder tags: one per handle, unique in the process.
static NEXT_HOLDER: AtomicU64 = AtomicU64::new(1);

/// A lock file at a path: labm8's `LockFile(path)`, natively, as a holder
/// of its own.
#[napi]
#[derive(Debug)]
pub struct NativeLock {
    path: PathBuf,
    tag: u64,
    slot: Slot,
}

impl NativeLock {
    /// `op` on the handle, on libuv's pool.
    fn work<T: Send + ToNapiValue + TypeName + 'static>(
        &self,
        op: impl FnOnce(&mut LockFile) -> Result<T, Error> + Send + 'static,
    ) -> AsyncTask<Work<T>> {
        let (path, tag, slot) = (self.path.clone(), self.tag, Arc::clone(&self.slot));
        Work::task(move || call(&path, tag, &slot, op).map_err(|f| fail_on(&path, f)))
    }

    /// `op` on the handle, on this thread.
    fn now<T>(&self, op: impl FnOnce(&mut LockFile) -> Result<T, Error>) -> napi::Result<T> {
        call(&self.path, self.tag, &self.slot, op).map_err(|f| fail_on(&self.path, f))
    }
}

#[napi]
impl NativeLock {
    /// Names the lock; touches nothing until an operation runs.
    #[napi(constructor)]
    pub fn new(path: String) -> Self {
        NativeLock {
            path: PathBuf::from(path),
            tag: NEXT_HOLDER.fetch_add(1, Ordering::Relaxed),
            slot: Arc::new(Mutex::new(Handle::default())),
        }
    }

    /// Opens the handle now (the sandbox for the lock's directory), so that
    /// a path that cannot be reached fails here.
    #[napi]
    pub fn open(&self) -> AsyncTask<Work<()>> {
        self.work(|_| Ok(()))
    }

    /// As [`NativeLock::open`], on this thread.
    #[napi]
    pub fn open_sync(&self) -> napi::Result<()> {
        self.now(|_| Ok(()))
    }

    /// One attempt to acquire the lock, off the main thread (the package
    /// waits between attempts).
    #[napi]
    pub fn try_acquire(&self, args: Option<AcquireArgs>) -> napi::Result<AsyncTask<Work<()>>> {
        let once = AcquireOptions {
            wait: Wait::No,
            ..args.unwrap_or_default().options()?
        };
        Ok(self.work(move |h| h.acquire_with(once)))
    }

    /// Acquires the lock on this thread (a wait blocks it).
    #[napi]
    pub fn acquire_sync(&self, args: Option<AcquireArgs>) -> napi::Result<()> {
        let options = args.unwrap_or_default().options()?;
        acquire(&self.path, self.tag, &self.slot, options).map_err(|f| fail_on(&self.path, f))
    }

    /// Releases the lock, off the main thread.
    #[napi]
    pub fn release(&self, force: Option<bool>) -> AsyncTask<Work<()>> {
        let force = force.unwrap_or(false);
        self.work(move |h| h.release(force))
    }

    /// Releases the lock on this thread.
    #[napi]
    pub fn release_sync(&self, force: Option<bool>) -> napi::Result<()> {
        self.now(|h| h.release(force.unwrap_or(false)))
    }

    /// Renews this handle's lease, off the main thread.
    #[napi]
    pub fn refresh(&self) -> AsyncTask<Work<()>> {
        self.work(LockFile::refresh)
    }

    /// Renews this handle's lease on this thread.
    #[napi]
    pub fn refresh_sync(&self) -> napi::Result<()> {
        self.now(LockFile::refresh)
    }

    /// How the lock stands, off the main thread.
    #[napi]
    pub fn status(&self) -> AsyncTask<Work<StatusRecord>> {
        self.work(|h| Ok(status_record(h.status()?)))
    }

    /// How the lock stands, on this thread.
    #[napi]
    pub fn status_sync(&self) -> napi::Result<StatusRecord> {
        self.now(|h| Ok(status_record(h.status()?)))
    }

    /// The recorded owner's pid.
    #[napi]
    pub fn pid(&self) -> napi::Result<Option<u32>> {
        self.now(LockFile::pid)
    }

    /// When the lock was acquired, in milliseconds since the epoch.
    #[napi]
    pub fn date_ms(&self) -> napi::Result<Option<f64>> {
        self.now(|h| Ok(h.date()?.map(millis)))
    }

    /// Whether a lock file exists.
    #[napi]
    pub fn is_locked(&self) -> napi::Result<bool> {
        self.now(LockFile::is_locked)
    }

    /// Whether this handle holds the lock.
    #[napi]
    pub fn owned_by_self(&self) -> napi::Result<bool> {
        self.now(LockFile::owned_by_self)
    }

    /// The fencing token of the lock as it stands.
    #[napi]
    pub fn token(&self) -> napi::Result<Option<BigInt>> {
        self.now(|h| Ok(h.token()?.map(BigInt::from)))
    }

    /// Ends the handle for good: releases the lock it holds and lets the
    /// component clean up after it (its spare file); a call waiting for the
    /// handle, and every later one, fails as closed.
    #[napi]
    pub fn close(&self) {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .end();
    }
}

/// The pauses of one wait: core's backoff (5 ms growing by half to 250 ms)
/// within a limit, for the package's waits between attempts.
#[napi]
#[derive(Debug)]
pub struct Schedule {
    wait: Wait,
    backoff: Mutex<Backoff>,
}

#[napi]
impl Schedule {
    /// A wait of `wait_ms` milliseconds (`Infinity`: until free; 0: none).
    #[napi(constructor)]
    pub fn new(wait_ms: f64) -> napi::Result<Self> {
        let wait = AcquireArgs {
            wait_ms: Some(wait_ms),
            ..AcquireArgs::default()
        }
        .options()?
        .wait;
        Ok(Schedule {
            wait,
            backoff: Mutex::new(Backoff::default()),
        })
    }

    /// Milliseconds to pause before the next attempt, having waited
    /// `waited_ms` so far; `null` when the wait is over.
    #[napi]
    pub fn pause(&self, waited_ms: f64) -> Option<f64> {
        let waited =
            Duration::try_from_secs_f64(waited_ms.max(0.0) / 1000.0).unwrap_or(Duration::MAX);
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        self.wait
            .pause(waited, &mut backoff)
            .map(|d| d.as_secs_f64() * 1000.0)
    }
}

/// labm8's static `read`: the owner recorded at `path`.
#[napi]
pub fn read(path: String) -> napi::Result<Option<OwnerRecord>> {
    runtime()
        .and_then(|r| r.read(&path))
        .map(|o| o.map(owner))
        .map_err(|e| fail(&e))
}

/// labm8's static `write`: plants `PID TIMESTAMP` at `path`.
#[napi]
pub fn write(path: String, pid: u32, date_ms: f64) -> napi::Result<()> {
    if !date_ms.is_finite() || date_ms < 0.0 {
        return Err(invalid(format!(
            "date: {date_ms}: give a time at or after the epoch"
        )));
    }
    let ms = date_ms as u64;
    let at = lockfile_host::Timestamp::new(ms / 1000, (ms % 1000) as u32 * 1_000_000);
    runtime()
        .and_then(|r| r.write(&path, pid, at))
        .map_err(|e| fail(&e))
}
