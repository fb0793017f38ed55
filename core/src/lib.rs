//! The lock-file format and protocol in plain Rust.
//!
//! This crate is what the `lockfile` component runs, compiled to
//! `wasm32-wasip2`; the component only adapts WASI and the host's `process`
//! interface to the [`protocol::Dir`] and [`protocol::System`] traits. The
//! same code compiles natively, where `std_dir::StdDir` implements `Dir` over
//! `std::fs`: the unit tests and the native baseline benchmark use it. On
//! WASI, `wasi_dir::WasiDir` implements it over WASI descriptors, for the
//! library component and the command component alike.
//!
//! - [`mod@format`]: what a lock file says (labm8's `PID TIMESTAMP`, plus fields).
//! - [`decide`]: whether a recorded owner holds the lock.
//! - [`protocol`]: acquire, release and stale takeover.
//! - [`kv`]: the same lock over a key-value store with revisions and leases (etcd).
//! - [`io`]: the adapters: directories (`std_dir`, `wasi_dir`) and `/proc` (`proc_view`, `procfs`).

pub mod decide;
pub mod format;
pub mod io;
pub mod kv;
pub mod options;
pub mod paths;
pub mod plain;
pub mod protocol;
// Test plumbing (the harness pauses processes mid-protocol with it), kept out
// of the documented API.
#[doc(hidden)]
pub mod testing;

// The adapters keep their paths at the crate's root, where every front end
// imports them from.
#[cfg(unix)]
pub use io::std_dir;
#[cfg(target_os = "wasi")]
pub use io::wasi_dir;
pub use io::{proc_view, procfs};

pub use decide::{Cause, Identity, Judgement, Liveness, Machine, ProcessInfo, Verdict};
pub use format::{Record, Timestamp};
pub use options::{AcquireOptions, Backoff, Mode, Wait};
pub use protocol::{Dir, Error, Lock, Owner, Refusal, State, Status, System};

/// The most a `labm8:lockfile/files` read reads: what wasmtime-wasi reads in
/// one call, and a bound on what a read makes a host allocate. A lock
/// record is at most [`format::MAX_LEN`] bytes.
pub const FILES_READ_LIMIT: u64 = 64 * 1024;

/// A moment for people: `2026-11-29 10:02:11 UTC`.
pub fn display_time(t: Timestamp) -> String {
    i64::try_from(t.seconds)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, t.nanos))
        .map_or_else(
            || format!("Unix time {t}"),
            |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

/// A moment for programs: RFC 3339 in UTC, `2026-11-29T10:02:11.123456Z`.
pub fn rfc3339(t: Timestamp) -> Option<String> {
    let d = chrono::DateTime::from_timestamp(i64::try_from(t.seconds).ok()?, t.nanos)?;
    Some(d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}
