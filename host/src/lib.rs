//! labm8's `LockFile`, run as a sandboxed WebAssembly component.
//!
//! The lock logic is a WASI 0.2 component that sees only the directory of
//! the lock it manages; this crate embeds it with wasmtime and answers its
//! questions about processes. A [`Runtime`] loads the (precompiled)
//! component once; each [`LockFile`] gets its own small sandbox.
//!
//! ```
//! use std::time::Duration;
//! use lockfile_host::{AcquireOptions, Error, LockError, Runtime, Verdict};
//!
//! # fn main() -> Result<(), Error> {
//! # let dir = tempfile::tempdir().expect("a temporary directory");
//! # let path = dir.path().join("nightly-job.lock");
//! let runtime = Runtime::new()?;
//! let mut lock = runtime.open(&path)?;
//! let options = AcquireOptions::default().replace_stale().wait_for(Duration::from_secs(5));
//! match lock.lock_with(options) {
//!     Ok(mut guard) => {
//!         // ... the critical section; released when `guard` drops ...
//!         assert_eq!(guard.lock_file().status()?.verdict, Verdict::OwnedBySelf);
//!     }
//!     Err(Error::Lock(LockError::UnableToAcquire(refusal))) => {
//!         eprintln!("busy: {refusal}"); // held by pid 4242 (alive) since ...
//!     }
//!     Err(e) => return Err(e),
//! }
//! assert!(!lock.is_locked()?);
//! # Ok(())
//! # }
//! ```

mod bindings;
mod code_memory;
mod convert;
mod engine_config;
mod error;
pub mod etcd;
pub mod files;
pub mod kv;
mod lock;
mod paths;
pub mod plugin;
pub mod process;
pub mod process_ctx;
mod runtime;
mod store;

// Build and test plumbing (the harness, the benchmarks and the `lockfile`
// binary use it), kept out of the documented API.
#[doc(hidden)]
pub use engine_config::{Allocation, DEFAULT_POOL};
pub use error::{Error, LockError};
pub use kv::{KvFor, KvLockFile};
pub use lock::{LockFile, LockGuard};
pub use lockfile_core::protocol::{Leftover, LeftoverKind};
#[doc(hidden)]
pub use lockfile_core::testing::PAUSE_VAR;
pub use lockfile_core::{
    display_time, rfc3339, AcquireOptions, Backoff, Cause, Mode, Owner, Refusal, Status, Timestamp,
    Verdict, Wait,
};
pub use process_ctx::ProcessCtx;
pub use runtime::{Listing, Runtime};

/// The library component (`labm8:lockfile/library`), as built.
pub const LIBRARY_COMPONENT: &str = concat!(env!("OUT_DIR"), "/lockfile.wasm");

/// The library component precompiled for this host by this crate's wasmtime
/// (the version pinned in its `Cargo.toml`, default code-generation
/// settings but for native unwind tables, which it leaves out and any
/// engine accepts), for a Rust host with its own `Linker` and the same
/// wasmtime: `Component::deserialize_file` loads it without compiling.
pub const PRECOMPILED_LIBRARY: &str = concat!(env!("OUT_DIR"), "/lockfile.cwasm");

// Build and test plumbing (the harness, the benchmarks and the `lockfile`
// binary use it), kept out of the documented API.
#[doc(hidden)]
/// The command component for the stock `wasmtime run`, as built.
pub const COMMAND_COMPONENT: &str = concat!(env!("OUT_DIR"), "/lockfile-command.wasm");

/// The library built as the `portable-library` world (its file operations
/// made of WASI's own calls, no `files` import) composed with a `process`
/// provider built from WASI alone (a preopened `/proc`): it exports `labm8:lockfile/lockfile` and imports
/// nothing but WASI, so any component runtime can run it, and a plugin can
/// be composed with it. It locks for the process running the runtime, or
/// for `LOCKFILE_PID` from its WASI environment.
pub const WASI_COMPONENT: &str = concat!(env!("OUT_DIR"), "/lockfile-wasi.wasm");

// Build and test plumbing (the harness, the benchmarks and the `lockfile`
// binary use it), kept out of the documented API.
#[doc(hidden)]
/// The example plugin (`examples/plugin`) composed with [`WASI_COMPONENT`]:
/// a WASI command that keeps a journal under a lock, for `wasmtime run`.
pub const PLUGIN_EXAMPLE_COMPONENT: &str =
    concat!(env!("OUT_DIR"), "/lockfile-plugin-example.wasm");

// Build and test plumbing (the harness, the benchmarks and the `lockfile`
// binary use it), kept out of the documented API.
#[doc(hidden)]
/// [`WASI_COMPONENT`] precompiled for this host, as [`PRECOMPILED_LIBRARY`].
pub const PRECOMPILED_WASI: &str = concat!(env!("OUT_DIR"), "/lockfile-wasi.cwasm");

// Build and test plumbing (the harness, the benchmarks and the `lockfile`
// binary use it), kept out of the documented API.
#[doc(hidden)]
/// The example plugin as built, importing `labm8:lockfile/lockfile` from its
/// host (not composed), precompiled as [`PRECOMPILED_LIBRARY`]: what an
/// application that runs plugins with [`plugin::add_to_linker`] loads.
pub const PRECOMPILED_PLUGIN_EXAMPLE: &str =
    concat!(env!("OUT_DIR"), "/lockfile-plugin-example.cwasm");

// Build and test plumbing (the harness, the benchmarks and the `lockfile`
// binary use it), kept out of the documented API.
#[doc(hidden)]
/// [`PLUGIN_EXAMPLE_COMPONENT`] (the example plugin composed with
/// [`WASI_COMPONENT`]) precompiled as [`PRECOMPILED_LIBRARY`].
pub const PRECOMPILED_PLUGIN_EXAMPLE_COMPOSED: &str =
    concat!(env!("OUT_DIR"), "/lockfile-plugin-example-composed.cwasm");
