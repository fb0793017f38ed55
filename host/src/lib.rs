//! labm8's `LockFile`, run as a sandboxed WebAssembly component.
//!
//! The lock logic is a WASI 0.2 component that sees only the directory of
//! the lock it manages; this crate embeds it with wasmtime and answers its
//! questions about processes. A [`Runtime`] loads the (precompiled)
//! component once; each [`LockFile`] gets its own small sandbox.
//!
//! ```no_run
//! use lockfile_host::{Error, Runtime};
//!
//! # fn main() -> Result<(), Error> {
//! let runtime = Runtime::new()?;
//! let mut lock = runtime.open("/tmp/nightly-job.lock")?;
//! match lock.lock(true, false) {
//!     Ok(_guard) => {
//!         // ... the critical section; released when `_guard` drops ...
//!     }
//!     Err(Error::UnableToAcquire(refusal)) => {
//!         eprintln!("busy: {refusal}"); // held by pid 4242 (alive) since ...
//!     }
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```

mod engine_config;
mod error;
pub mod process;
mod runtime;

use std::path::PathBuf;

pub use engine_config::{Allocation, DEFAULT_POOL};
pub use error::{Error, Refusal};
pub use lockfile_core::{display_time, rfc3339, Timestamp, Verdict};
pub use runtime::{LockFile, LockGuard, Runtime, PAUSE_VAR};

/// The library component (`labm8:lockfile/library`), as built.
pub const LIBRARY_COMPONENT: &str = concat!(env!("OUT_DIR"), "/lockfile.wasm");

/// The command component for the stock `wasmtime run`, as built.
pub const COMMAND_COMPONENT: &str = concat!(env!("OUT_DIR"), "/lockfile-command.wasm");

/// The owner recorded in a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owner's pid.
    pub pid: u32,
    /// When the lock was acquired.
    pub date: Timestamp,
    /// The host it was written on, if recorded.
    pub hostname: Option<String>,
}

/// How a lock stands, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The lock's path.
    pub path: PathBuf,
    /// The recorded owner; `None` when unlocked or malformed.
    pub owner: Option<Owner>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, as a sentence.
    pub reason: String,
}
