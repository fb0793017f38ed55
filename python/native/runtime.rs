//! The one runtime of the process: the component is loaded once, on first
//! use (not at import), and shared by every lock.

use std::sync::{Arc, Mutex, PoisonError};

use lockfile_host::{Allocation, Error, Runtime};

use crate::fork;

/// The runtime and the generation (see [`fork`]) it acts for.
static RUNTIME: Mutex<Option<(u64, Arc<Runtime>)>> = Mutex::new(None);

/// The runtime acting for this process. Call it inside the gate.
///
/// Sandboxes are allocated on demand rather than from a pool: a pool caps
/// how many `LockFile`s may be open at once, and a Python program may keep
/// any number; opening costs a few microseconds more, once per `LockFile`.
///
/// # Errors
/// [`Error::Runtime`] if wasmtime cannot load the component.
pub fn current() -> Result<Arc<Runtime>, Error> {
    let generation = fork::generation();
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    let runtime = match slot.take() {
        Some((made_in, runtime)) if made_in == generation => runtime,
        // The parent's: the same loaded component, acting for this process.
        Some((_, parents)) => Arc::new(parents.for_current_process()),
        None => Arc::new(Runtime::with_allocation(Allocation::OnDemand)?),
    };
    *slot = Some((generation, Arc::clone(&runtime)));
    Ok(runtime)
}
