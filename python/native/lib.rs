//! `labm8_lockfile._native`: the lockfile component, embedded by the Rust
//! host library, for the `labm8_lockfile` Python package. The package's
//! API (labm8's `LockFile`, its exceptions, waits, asyncio) is Python, in
//! `python/src/labm8_lockfile/`; this module is what it calls: one call into
//! the sandbox per method, without the GIL, safe across threads and `fork`.

mod errors;
mod fork;
mod kv;
mod lock;
mod runtime;
mod wait;

use pyo3::prelude::*;

#[pymodule]
mod _native {
    #[pymodule_export]
    use super::errors::Failure;
    #[pymodule_export]
    use super::lock::{read, write, Lock};
    #[pymodule_export]
    use super::wait::Schedule;

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        super::fork::install().map_err(|e| {
            pyo3::exceptions::PyOSError::new_err(format!("cannot install the fork handlers: {e}"))
        })?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
