//! `Schedule`: the pauses between attempts on a held lock, core's backoff
//! (5 ms growing to 250 ms) within a timeout, for the package's sync and
//! asyncio waits alike.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lockfile_host::{Backoff, Wait};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The pauses of one wait.
#[pyclass(frozen, module = "labm8_lockfile._native")]
#[derive(Debug)]
pub struct Schedule {
    wait: Wait,
    backoff: Mutex<Backoff>,
}

#[pymethods]
impl Schedule {
    /// `timeout`: seconds, `None` for ever, 0 for no wait.
    #[new]
    fn new(timeout: Option<f64>) -> PyResult<Self> {
        let wait = match timeout {
            None => Wait::Forever,
            Some(0.0) => Wait::No,
            Some(t) if t > 0.0 => {
                // Beyond what a Duration holds is for ever, in practice.
                Duration::try_from_secs_f64(t).map_or(Wait::Forever, Wait::For)
            }
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "timeout={t}: give None (wait for ever), 0 (do not wait) \
                     or a positive number of seconds"
                )))
            }
        };
        Ok(Schedule {
            wait,
            backoff: Mutex::new(Backoff::default()),
        })
    }

    /// Whether this schedule waits at all.
    #[getter]
    fn waits(&self) -> bool {
        self.wait != Wait::No
    }

    /// Seconds to pause before the next attempt, having waited `waited`
    /// seconds so far; `None` when the wait is over.
    fn pause(&self, waited: f64) -> Option<f64> {
        let waited = Duration::try_from_secs_f64(waited.max(0.0)).unwrap_or(Duration::MAX);
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        self.wait
            .pause(waited, &mut backoff)
            .map(|d| d.as_secs_f64())
    }
}
