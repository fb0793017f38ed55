//! The lockfile component: labm8's `LockFile` over WASI.
//!
//! The lock logic lives in `lockfile-core`; this crate only adapts it: the
//! bindings (`bindings`), the host's `process` interface (`system.rs`) and
//! its `files` (`host_files`); WASI directories are `lockfile_core::wasi_dir`.
//! With the `portable` feature it is the `portable-library` world instead:
//! no `files` import, the same operations made of WASI's own calls; with
//! `kv`, the `coordinated-library` world: also locks kept in the host's
//! key-value store (`kv_lock`).
//!
//! It exists only for `wasm32-wasip2` (lockfile-host's build script builds
//! it); on any other target it compiles to nothing.
#![cfg(target_os = "wasi")]

mod bindings {
    // The library, whose whole-file calls are its host's `files`.
    #[cfg(not(any(feature = "portable", feature = "kv")))]
    wit_bindgen::generate!({
        world: "library",
        path: "../wit",
        // WASI's own types, from the `wasi` crate the rest of the guest uses.
        with: {
            "wasi:clocks/wall-clock@0.2.4": wasi::clocks::wall_clock,
            "wasi:filesystem/types@0.2.4": wasi::filesystem::types,
            "wasi:io/error@0.2.4": wasi::io::error,
            "wasi:io/poll@0.2.4": wasi::io::poll,
            "wasi:io/streams@0.2.4": wasi::io::streams,
        },
    });

    // The same, and locks kept in the host's key-value store: what
    // lockfile-host embeds.
    #[cfg(all(feature = "kv", not(feature = "portable")))]
    wit_bindgen::generate!({
        world: "coordinated-library",
        path: "../wit",
        // WASI's own types, from the `wasi` crate the rest of the guest uses.
        with: {
            "wasi:clocks/wall-clock@0.2.4": wasi::clocks::wall_clock,
            "wasi:filesystem/types@0.2.4": wasi::filesystem::types,
            "wasi:io/error@0.2.4": wasi::io::error,
            "wasi:io/poll@0.2.4": wasi::io::poll,
            "wasi:io/streams@0.2.4": wasi::io::streams,
        },
    });

    // The same library for runtimes without a native `files`, which makes
    // those calls of WASI's own (`lockfile-wasi.wasm`).
    #[cfg(feature = "portable")]
    wit_bindgen::generate!({
        world: "portable-library",
        path: "../wit",
        with: { "wasi:clocks/wall-clock@0.2.4": wasi::clocks::wall_clock },
    });

    use super::Component;
    export!(Component);
}
mod convert;
#[cfg(all(feature = "kv", not(feature = "portable")))]
mod kv_lock;
mod system;

use std::cell::OnceCell;

use bindings::exports::labm8::lockfile::lockfile::{
    self as wit, Guest, GuestLockFile, Owner, Status,
};
use lockfile_core::protocol::Spare;
use lockfile_core::{protocol, Lock, Timestamp, Verdict};
use wasi::clocks::wall_clock::Datetime;

use crate::system::HostSystem;
use lockfile_core::wasi_dir::{resolve_dir_with, resolve_with};

/// The lock's directory, whose whole-file reads and rewrites are the host's.
#[cfg(not(feature = "portable"))]
type WasiDir = lockfile_core::wasi_dir::WasiDir<host_files::HostFiles>;
#[cfg(not(feature = "portable"))]
const FILES: host_files::HostFiles = host_files::HostFiles;

/// The lock's directory, whose whole-file reads and rewrites are WASI calls.
#[cfg(feature = "portable")]
type WasiDir = lockfile_core::wasi_dir::WasiDir;
#[cfg(feature = "portable")]
const FILES: lockfile_core::wasi_dir::Plain = lockfile_core::wasi_dir::Plain;

#[cfg(not(feature = "portable"))]
mod host_files {
    use lockfile_core::wasi_dir::{Files, Plain};
    use wasi::filesystem::types::{Descriptor, ErrorCode};

    use crate::bindings::labm8::lockfile::files;

    /// `files` as the host provides it: one crossing for what WASI does in
    /// three or four (see the interface). Where the host has no native form
    /// (`unsupported`: `lockfile_host` off Unix), WASI's own calls.
    #[derive(Debug)]
    pub(super) struct HostFiles;

    impl Files for HostFiles {
        fn read(&self, dir: &Descriptor, name: &str, limit: u64) -> Result<Vec<u8>, ErrorCode> {
            match files::read(dir, name, limit) {
                Err(ErrorCode::Unsupported) => Plain.read(dir, name, limit),
                done => done,
            }
        }

        fn rewrite(&self, dir: &Descriptor, name: &str, data: &[u8]) -> Result<bool, ErrorCode> {
            match files::rewrite(dir, name, data) {
                Err(ErrorCode::Unsupported) => Plain.rewrite(dir, name, data),
                done => done,
            }
        }

        fn link_probe(
            &self,
            dir: &Descriptor,
            existing: &str,
            new: &str,
            probe: &str,
        ) -> Result<Option<bool>, ErrorCode> {
            match files::link_and_probe(dir, existing, new, probe) {
                Err(ErrorCode::Unsupported) => Plain.link_probe(dir, existing, new, probe),
                done => done,
            }
        }
    }
}

/// The component.
struct Component;

#[cfg(all(feature = "kv", not(feature = "portable")))]
impl bindings::exports::labm8::lockfile::kv_lockfile::Guest for Component {
    type KvLock = kv_lock::KvLockHandle;

    fn list_locks(prefix: String, name_prefix: String) -> Result<Vec<Status>, wit::Error> {
        kv_lock::list_locks(&prefix, &name_prefix)
    }
}

impl Guest for Component {
    type LockFile = LockFile;

    fn list_locks(dir: String) -> Result<wit::Listing, wit::Error> {
        let d = resolve_dir_with(&dir, FILES).map_err(wit::Error::from)?;
        let found = protocol::survey(&d, &dir, &HostSystem::default()).map_err(wit::Error::from)?;
        Ok(wit::Listing {
            locks: found.locks.into_iter().map(Status::from).collect(),
            unreadable: found.unreadable.into_iter().map(wit::Error::from).collect(),
            leftovers: found
                .leftovers
                .into_iter()
                .map(wit::Leftover::from)
                .collect(),
        })
    }

    fn sweep_leftovers(dir: String) -> Result<Vec<wit::Leftover>, wit::Error> {
        let d = resolve_dir_with(&dir, FILES).map_err(wit::Error::from)?;
        let removed =
            protocol::sweep_dir(&d, &dir, &HostSystem::default()).map_err(wit::Error::from)?;
        Ok(removed.into_iter().map(wit::Leftover::from).collect())
    }
}

/// A lock named by a path; its directory is opened on first use.
struct LockFile {
    path: String,
    dir: OnceCell<(WasiDir, String)>,
    /// Kept once the handle cycles; removed when the handle is dropped.
    spare: Spare,
    /// Who we are and where: asked of the host once per handle, not per
    /// operation (a host fixes them when it opens the lock).
    sys: HostSystem,
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if let Some((dir, _)) = self.dir.get() {
            self.spare.discard(dir);
        }
    }
}

impl LockFile {
    /// Runs `f` on the lock, resolving the path first (once).
    fn with<T>(
        &self,
        f: impl FnOnce(&Lock<'_, WasiDir, HostSystem>) -> Result<T, protocol::Error>,
    ) -> Result<T, wit::Error> {
        self.with_options(None, false, f)
    }

    /// As [`LockFile::with`], taking locks with a lease of `lease_ms`, and
    /// issuing fencing tokens with `tokens`.
    fn with_options<T>(
        &self,
        lease_ms: Option<u64>,
        tokens: bool,
        f: impl FnOnce(&Lock<'_, WasiDir, HostSystem>) -> Result<T, protocol::Error>,
    ) -> Result<T, wit::Error> {
        if self.dir.get().is_none() {
            let resolved = resolve_with(&self.path, FILES).map_err(wit::Error::from)?;
            let _ = self.dir.set(resolved);
        }
        let Some((dir, name)) = self.dir.get() else {
            return Err(wit::Error::from(protocol::Error::Unreachable {
                path: self.path.clone(),
                message: "the directory could not be opened".into(),
            }));
        };
        f(&Lock::new(dir, name, &self.path, &self.sys)
            .with_spare(&self.spare)
            .with_lease(lease_ms)
            .with_tokens(tokens))
        .map_err(wit::Error::from)
    }

    fn once<T>(
        path: &str,
        f: impl FnOnce(&Lock<'_, WasiDir, HostSystem>) -> Result<T, protocol::Error>,
    ) -> Result<T, wit::Error> {
        LockFile::new(path.to_owned()).with(f)
    }
}

impl GuestLockFile for LockFile {
    fn new(path: String) -> Self {
        Self {
            path,
            dir: OnceCell::new(),
            spare: Spare::default(),
            sys: HostSystem::default(),
        }
    }

    fn path(&self) -> String {
        self.path.clone()
    }

    fn acquire(&self, replace_stale: bool, force: bool) -> Result<(), wit::Error> {
        self.with(|lock| lock.acquire(replace_stale, force))
    }

    fn acquire_with(&self, options: wit::AcquireOptions) -> Result<(), wit::Error> {
        let (replace_stale, force) = match options.mode {
            wit::Mode::Free => (false, false),
            wit::Mode::ReplaceStale => (true, false),
            wit::Mode::Force => (false, true),
        };
        self.with_options(options.lease_ms, options.token, |lock| {
            lock.acquire(replace_stale, force)
        })
    }

    fn token(&self) -> Result<Option<u64>, wit::Error> {
        self.with(|lock| lock.token())
    }

    fn refresh(&self) -> Result<(), wit::Error> {
        self.with(|lock| lock.refresh())
    }

    fn release(&self, force: bool) -> Result<(), wit::Error> {
        self.with(|lock| lock.release(force))
    }

    fn pid(&self) -> Result<Option<u32>, wit::Error> {
        self.with(|lock| Ok(lock.owner()?.map(|r| r.pid)))
    }

    fn date(&self) -> Result<Option<Datetime>, wit::Error> {
        self.with(|lock| Ok(lock.owner()?.map(|r| convert::to_datetime(r.timestamp))))
    }

    fn is_locked(&self) -> Result<bool, wit::Error> {
        self.with(|lock| Ok(matches!(lock.load()?, protocol::State::Present { .. })))
    }

    fn owned_by_self(&self) -> Result<bool, wit::Error> {
        self.with(|lock| {
            let status = lock.status()?;
            if status.verdict == Verdict::Malformed {
                // Ownership of an unreadable file is unknowable: say so, as labm8 would raise.
                lock.owner()?;
            }
            Ok(status.verdict == Verdict::OwnedBySelf)
        })
    }

    fn status(&self) -> Result<Status, wit::Error> {
        self.with(|lock| Ok(lock.status()?.into()))
    }

    fn read(path: String) -> Result<Option<Owner>, wit::Error> {
        Self::once(&path, |lock| {
            Ok(lock
                .owner()?
                .as_ref()
                .map(|r| Owner::from(&lockfile_core::Owner::from(r))))
        })
    }

    fn write(path: String, pid: u32, timestamp: Datetime) -> Result<(), wit::Error> {
        let ts = Timestamp::new(timestamp.seconds, timestamp.nanoseconds);
        Self::once(&path, |lock| lock.write(pid, ts))
    }
}
