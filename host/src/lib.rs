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
pub mod process_ctx;
mod runtime;

pub use engine_config::{Allocation, DEFAULT_POOL};
pub use error::Error;
pub use lockfile_core::testing::PAUSE_VAR;
pub use lockfile_core::{
    display_time, rfc3339, AcquireOptions, Cause, Mode, Owner, Refusal, Status, Timestamp, Verdict,
    Wait,
};
pub use process_ctx::ProcessCtx;
pub use runtime::{LockFile, LockGuard, Runtime};

/// The library component (`labm8:lockfile/library`), as built.
pub const LIBRARY_COMPONENT: &str = concat!(env!("OUT_DIR"), "/lockfile.wasm");

/// The library component precompiled for this host by this crate's wasmtime
/// (the version pinned in its `Cargo.toml`, default code-generation
/// settings), for a Rust host with its own `Linker` and the same wasmtime:
/// `Component::deserialize_file` loads it without compiling.
pub const PRECOMPILED_LIBRARY: &str = concat!(env!("OUT_DIR"), "/lockfile.cwasm");

/// The command component for the stock `wasmtime run`, as built.
pub const COMMAND_COMPONENT: &str = concat!(env!("OUT_DIR"), "/lockfile-command.wasm");
