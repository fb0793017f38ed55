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
//! threads, exclude each other as two processes do.
//!
//! Errors reach JavaScript as an `Error` whose message is
//! `labm8-lockfile:` followed by JSON (`kind`, `path`, `message`, `text`,
//! `refusal`); `node/src/index.cjs` turns it into labm8's classes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lockfile_host::{AcquireOptions, Backoff, Error, LockFile, Mode, Owner, Runtime, Wait};
use napi::bindgen_prelude::{AsyncTask, BigInt, ToNapiValue, TypeName};
use napi::{Env, Task};
use napi_derive::napi;

/// What starts the message of every error this addon throws.
const ERROR_MARK: &str = "labm8-lockfile:";

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

/// A failure as the JSON the package's JavaScript reads.
fn fail(e: &Error) -> napi::Error {
    let (kind, path, message) = match e {
        Error::Lock(l) => (l.kind(), l.path().to_owned(), l.message().to_owned()),
        Error::NoSuchProcess(_) => ("no-such-process", String::new(), e.to_string()),
        _ => ("runtime", String::new(), e.to_string()),
    };
    let refusal = e.refusal().map(|r| {
        serde_json::json!({
            "owner": owner_json(&r.owner),
            "verdict": r.verdict.as_str(),
            "cause": r.cause.as_str(),
            "reason": r.reason,
        })
    });
    let payload = serde_json::json!({
        "kind": kind,
        "path": path,
        "message": message,
        "text": e.to_string(),
        "refusal": refusal,
    });
    napi::Error::from_reason(format!("{ERROR_MARK}{payload}"))
}

/// An error of this addon's own, with the same JSON shape.
fn own_error(kind: &str, path: &str, message: String) -> napi::Error {
    let payload = serde_json::json!({
        "kind": kind,
        "path": path,
        "message": message,
        "text": format!("{path}: {message}"),
        "refusal": null,
    });
    napi::Error::from_reason(format!("{ERROR_MARK}{payload}"))
}

/// A usage error (a bad option).
fn invalid(message: String) -> napi::Error {
    own_error("invalid-argument", "", message)
}

/// Tokens go to JavaScript as decimal strings inside JSON: a `number`
/// loses precision past 2^53, and two tokens must never compare equal.
fn owner_json(o: &Owner) -> serde_json::Value {
    serde_json::json!({
        "pid": o.pid,
        "seconds": o.date.seconds,
        "nanos": o.date.nanos,
        "hostname": o.hostname,
        "token": o.token.map(|t| t.to_string()),
        "leaseMs": o.lease_ms,
    })
}

/// A recorded owner.
#[napi(object)]
#[derive(Debug)]
pub struct OwnerRecord {
    /// The owner's pid (0 when planted so by labm8's `write`).
    pub pid: u32,
    /// When it acquired the lock, in milliseconds since the epoch.
    pub date_ms: f64,
    /// The host it acquired the lock on, when recorded.
    pub hostname: Option<String>,
    /// The fencing token its acquisition issued, if any.
    pub token: Option<BigInt>,
    /// Its lease, in milliseconds, if any.
    pub lease_ms: Option<f64>,
}

fn owner(o: Owner) -> OwnerRecord {
    OwnerRecord {
        pid: o.pid,
        date_ms: millis(o.date),
        hostname: o.hostname,
        token: o.token.map(BigInt::from),
        lease_ms: o.lease_ms.map(|ms| ms as f64),
    }
}

fn millis(t: lockfile_host::Timestamp) -> f64 {
    t.seconds as f64 * 1000.0 + f64::from(t.nanos / 1_000_000)
}

/// How a lock stands for this process.
#[napi(object)]
#[derive(Debug)]
pub struct StatusRecord {
    /// The lock's path.
    pub path: String,
    /// The recorded owner; absent when unlocked or malformed.
    pub owner: Option<OwnerRecord>,
    /// `unlocked`, `owned-by-self`, `held`, `stale`, `foreign` or `malformed`.
    pub verdict: String,
    /// Why, as a word (`running`, `dead`, `recycled`, ...).
    pub cause: String,
    /// Why, as a sentence.
    pub reason: String,
}

/// What `acquire` may be told.
#[napi(object)]
#[derive(Debug, Default)]
pub struct AcquireArgs {
    /// Take the lock over when its owner is certainly gone.
    pub replace_stale: Option<bool>,
    /// Take the lock whoever holds it.
    pub force: Option<bool>,
    /// Retry while the lock is held, for up to this many milliseconds
    /// (`Infinity`: until it is free).
    pub wait_ms: Option<f64>,
    /// Record a lease of this many milliseconds (for locks shared by hosts).
    pub lease_ms: Option<f64>,
    /// Issue a fencing token.
    pub token: Option<bool>,
}

fn duration_ms(what: &str, ms: f64) -> napi::Result<Duration> {
    if ms.is_nan() || ms < 0.0 {
        let shown = if ms.is_nan() {
            "NaN".to_owned()
        } else if ms.is_infinite() {
            "-Infinity".to_owned()
        } else {
            ms.to_string()
        };
        return Err(invalid(format!(
            "{what}: {shown}: give a number of milliseconds, 0 or more"
        )));
    }
    Ok(Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX))
}

impl AcquireArgs {
    fn options(&self) -> napi::Result<AcquireOptions> {
        let mode = match (self.force, self.replace_stale) {
            (Some(true), _) => Mode::Force,
            (_, Some(true)) => Mode::ReplaceStale,
            _ => Mode::Free,
        };
        let wait = match self.wait_ms {
            None => Wait::No,
            Some(ms) if ms.is_infinite() && ms > 0.0 => Wait::Forever,
            Some(ms) => match duration_ms("waitMs", ms)? {
                d if d.is_zero() => Wait::No,
                d => Wait::For(d),
            },
        };
        let lease = match self.lease_ms {
            None => None,
            Some(ms) => match duration_ms("leaseMs", ms)? {
                d if d.is_zero() || ms.is_infinite() || ms >= 9_007_199_254_740_992.0 => {
                    let shown = if ms.is_infinite() {
                        "Infinity".to_owned()
                    } else {
                        ms.to_string()
                    };
                    return Err(invalid(format!(
                        "leaseMs: {shown}: give a positive number of milliseconds below 2^53"
                    )));
                }
                d => Some(d),
            },
        };
        Ok(AcquireOptions {
            mode,
            wait,
            lease,
            token: self.token.unwrap_or(false),
        })
    }
}

/// One lock file's handle, opened in its own sandbox on first use, and
/// whether it was closed (then nothing opens it again).
#[derive(Debug, Default)]
struct Handle {
    lock: Option<LockFile>,
    closed: bool,
}

type Slot = Arc<Mutex<Handle>>;

/// A failure of a call on a closed handle (including one that was waiting
/// for the handle when it was closed).
enum Failure {
    Lock(Error),
    Closed,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Lock(e)
    }
}

fn fail_on(path: &std::path::Path, f: Failure) -> napi::Error {
    match f {
        Failure::Lock(e) => fail(&e),
        Failure::Closed => own_error(
            "closed",
            &path.display().to_string(),
            "this LockFile was closed".into(),
        ),
    }
}

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

fn status_record(s: lockfile_host::Status) -> StatusRecord {
    StatusRecord {
        path: s.path,
        owner: s.owner.map(owner),
        verdict: s.verdict.as_str().to_owned(),
        cause: s.cause.as_str().to_owned(),
        reason: s.reason,
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

    /// Lets the component clean up after the handle (its spare file), for
    /// good: a call waiting for the handle, and every later one, fails as
    /// closed. Does not release the lock.
    #[napi]
    pub fn close(&self) {
        let mut handle = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        handle.closed = true;
        drop(handle.lock.take());
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
