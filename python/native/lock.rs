//! `Lock`: one lock file's handle, shared safely by threads and across
//! `fork`. Each method is one call into the sandbox, made without the GIL
//! and inside the fork gate; waiting is the package's (Python) business,
//! between calls, so that a wait holds neither the GIL, the gate nor the
//! handle, and Ctrl-C interrupts it.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lockfile_host::{
    AcquireOptions, Error, KvFor, KvLockFile, LockFile, Mode, Status, Timestamp, Verdict,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::{self, OwnerTuple};
use crate::{fork, runtime};

/// A status as `(path, owner, verdict, cause, reason)`.
type StatusTuple = (
    String,
    Option<OwnerTuple>,
    &'static str,
    &'static str,
    String,
);

/// A lock file's handle, or a lock's in etcd.
#[derive(Debug)]
enum Handle {
    File(LockFile),
    Kv(KvLockFile),
}

impl Handle {
    fn abandon(self) {
        match self {
            Handle::File(h) => h.abandon(),
            // Its store's thread was the parent's: nothing to clean up.
            Handle::Kv(h) => std::mem::forget(h),
        }
    }

    fn acquire_with(&mut self, options: AcquireOptions) -> Result<(), Error> {
        match self {
            Handle::File(h) => h.acquire_with(options),
            Handle::Kv(h) => h.acquire_with(options),
        }
    }

    fn release(&mut self, force: bool) -> Result<(), Error> {
        match self {
            Handle::File(h) => h.release(force),
            Handle::Kv(h) => h.release(force),
        }
    }

    fn refresh(&mut self) -> Result<(), Error> {
        match self {
            Handle::File(h) => h.refresh(),
            Handle::Kv(h) => h.refresh(),
        }
    }

    fn status(&mut self) -> Result<Status, Error> {
        match self {
            Handle::File(h) => h.status(),
            Handle::Kv(h) => h.status(),
        }
    }

    fn token(&mut self) -> Result<Option<u64>, Error> {
        match self {
            Handle::File(h) => h.token(),
            Handle::Kv(h) => Ok(h.status()?.owner.and_then(|o| o.token)),
        }
    }

    fn pid(&mut self) -> Result<Option<u32>, Error> {
        match self {
            Handle::File(h) => h.pid(),
            Handle::Kv(h) => Ok(h.status()?.owner.map(|o| o.pid)),
        }
    }

    fn date(&mut self) -> Result<Option<Timestamp>, Error> {
        match self {
            Handle::File(h) => h.date(),
            Handle::Kv(h) => Ok(h.status()?.owner.map(|o| o.date)),
        }
    }

    fn is_locked(&mut self) -> Result<bool, Error> {
        match self {
            Handle::File(h) => h.is_locked(),
            Handle::Kv(h) => Ok(h.status()?.verdict != Verdict::Unlocked),
        }
    }

    fn owned_by_self(&mut self) -> Result<bool, Error> {
        match self {
            Handle::File(h) => h.owned_by_self(),
            Handle::Kv(h) => Ok(h.status()?.verdict == Verdict::OwnedBySelf),
        }
    }
}

/// Opens the lock at `path`: a lock file, or a key in etcd.
fn open(path: &std::path::Path) -> Result<Handle, Error> {
    let runtime = runtime::current()?;
    let text = path.to_string_lossy();
    match crate::kv::address(&text) {
        None => Ok(Handle::File(runtime.open(path)?)),
        Some(address) => {
            let address = address?;
            let store = crate::kv::store(&address, &text)?;
            Ok(Handle::Kv(runtime.open_kv(
                store,
                &text,
                &address.key,
                KvFor::This,
            )?))
        }
    }
}

/// The handle, opened on first use, and the generation that opened it.
#[derive(Debug, Default)]
struct Slot {
    generation: u64,
    handle: Option<Handle>,
}

impl Slot {
    /// Lets go of the handle: cleaned up if this process opened it,
    /// abandoned if the parent did (see [`fork`]).
    fn close(&mut self) {
        if let Some(handle) = self.handle.take() {
            if self.generation == fork::generation() {
                drop(handle);
            } else {
                handle.abandon();
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let _inside = fork::enter();
        self.close();
    }
}

/// One lock file, opened in its own sandbox on first use.
#[pyclass(frozen, module = "labm8_lockfile._native")]
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    slot: Mutex<Slot>,
}

impl Lock {
    /// Runs `op` on the handle inside the gate, without the GIL, opening
    /// the handle first if this process has none yet.
    fn call<T: Send>(
        &self,
        py: Python<'_>,
        op: impl FnOnce(&mut Handle) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let _inside = fork::enter();
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            let generation = fork::generation();
            if slot.generation != generation {
                slot.close();
                slot.generation = generation;
            }
            let handle = match &mut slot.handle {
                Some(handle) => handle,
                empty => empty.insert(open(&self.path)?),
            };
            op(handle)
        })
        .map_err(|e| errors::to_py(&e))
    }
}

/// A lease in seconds as a duration: positive and finite.
fn lease(seconds: Option<f64>) -> PyResult<Option<Duration>> {
    seconds
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "lease={s}: give a positive, finite number of seconds"
                    ))
                })
        })
        .transpose()
}

#[pymethods]
impl Lock {
    #[new]
    fn new(path: PathBuf) -> Self {
        Lock {
            path,
            slot: Mutex::new(Slot {
                generation: fork::generation(),
                handle: None,
            }),
        }
    }

    /// One attempt to acquire; `force` wins over `replace_stale`.
    #[pyo3(signature = (replace_stale, force, lease_seconds, token))]
    fn acquire(
        &self,
        py: Python<'_>,
        replace_stale: bool,
        force: bool,
        lease_seconds: Option<f64>,
        token: bool,
    ) -> PyResult<()> {
        let in_store = self
            .path
            .to_str()
            .is_some_and(|p| crate::kv::address(p).is_some());
        if in_store && lease_seconds.is_none() {
            return Err(PyValueError::new_err(
                "a lock in etcd lives as long as its lease: give lease=SECONDS and call \
                 refresh() well within it",
            ));
        }
        let options = AcquireOptions {
            mode: match (force, replace_stale) {
                (true, _) => Mode::Force,
                (false, true) => Mode::ReplaceStale,
                (false, false) => Mode::Free,
            },
            lease: lease(lease_seconds)?,
            token,
            ..AcquireOptions::default()
        };
        self.call(py, |h| h.acquire_with(options))
    }

    fn release(&self, py: Python<'_>, force: bool) -> PyResult<()> {
        self.call(py, |h| h.release(force))
    }

    fn refresh(&self, py: Python<'_>) -> PyResult<()> {
        self.call(py, Handle::refresh)
    }

    fn pid(&self, py: Python<'_>) -> PyResult<Option<u32>> {
        self.call(py, Handle::pid)
    }

    /// `(seconds, nanoseconds)` of the acquisition; `None` when unlocked.
    fn date(&self, py: Python<'_>) -> PyResult<Option<(u64, u32)>> {
        self.call(py, |h| Ok(h.date()?.map(|t| (t.seconds, t.nanos))))
    }

    fn is_locked(&self, py: Python<'_>) -> PyResult<bool> {
        self.call(py, Handle::is_locked)
    }

    fn owned_by_self(&self, py: Python<'_>) -> PyResult<bool> {
        self.call(py, Handle::owned_by_self)
    }

    fn token(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        self.call(py, Handle::token)
    }

    fn status(&self, py: Python<'_>) -> PyResult<StatusTuple> {
        self.call(py, |h| Ok(status(h.status()?)))
    }

    /// Lets the component clean up after the handle; the next call opens a
    /// new one.
    fn close(&self, py: Python<'_>) {
        py.detach(|| {
            let _inside = fork::enter();
            self.slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .close();
        });
    }
}

fn status(s: Status) -> StatusTuple {
    (
        s.path,
        s.owner.as_ref().map(errors::owner),
        s.verdict.as_str(),
        s.cause.as_str(),
        s.reason,
    )
}

/// labm8's static `read`: the owner at `path`, or `None`.
#[pyfunction]
pub fn read(py: Python<'_>, path: PathBuf) -> PyResult<Option<OwnerTuple>> {
    py.detach(|| {
        let _inside = fork::enter();
        runtime::current()?.read(&path)
    })
    .map(|o| o.as_ref().map(errors::owner))
    .map_err(|e| errors::to_py(&e))
}

/// labm8's static `write`: plants `PID TIMESTAMP` at `path`.
#[pyfunction]
pub fn write(py: Python<'_>, path: PathBuf, pid: u32, seconds: u64, nanos: u32) -> PyResult<()> {
    py.detach(|| {
        let _inside = fork::enter();
        runtime::current()?.write(&path, pid, lockfile_host::Timestamp::new(seconds, nanos))
    })
    .map_err(|e| errors::to_py(&e))
}
