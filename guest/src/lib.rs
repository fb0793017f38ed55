//! The lockfile component: labm8's `LockFile` over WASI.
//!
//! The lock logic lives in `lockfile-core`; this crate only adapts it: the
//! bindings (`bindings`), the host's `process` interface (`system.rs`) and
//! its `files` (`host_files`); WASI directories are `lockfile_core::wasi_dir`.
//! With the `portable` feature it is the `portable-library` world instead:
//! no `files` import, the same operations made of WASI's own calls.
//!
//! It exists only for `wasm32-wasip2` (lockfile-host's build script builds
//! it); on any other target it compiles to nothing.
#![cfg(target_os = "wasi")]

mod bindings {
    // The library, whose whole-file calls are its host's `files`.
    #[cfg(not(feature = "portable"))]
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
mod system;

use std::cell::OnceCell;

use bindings::exports::labm8::lockfile::lockfile::{
    self as wit, Guest, GuestLockFile, Owner, Refusal, Status,
};
use lockfile_core::protocol::Spare;
use lockfile_core::{protocol, Cause, Lock, Timestamp, Verdict};
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

impl Guest for Component {
    type LockFile = LockFile;

    fn list_locks(dir: String) -> Result<wit::Listing, wit::Error> {
        let d = resolve_dir_with(&dir, FILES).map_err(to_wit_error)?;
        let found = protocol::survey(&d, &dir, &HostSystem::default()).map_err(to_wit_error)?;
        Ok(wit::Listing {
            locks: found.locks.into_iter().map(to_status).collect(),
            unreadable: found.unreadable.into_iter().map(to_wit_error).collect(),
            leftovers: found.leftovers.into_iter().map(to_leftover).collect(),
        })
    }

    fn sweep_leftovers(dir: String) -> Result<Vec<wit::Leftover>, wit::Error> {
        let d = resolve_dir_with(&dir, FILES).map_err(to_wit_error)?;
        let removed =
            protocol::sweep_dir(&d, &dir, &HostSystem::default()).map_err(to_wit_error)?;
        Ok(removed.into_iter().map(to_leftover).collect())
    }
}

fn to_leftover(l: protocol::Leftover) -> wit::Leftover {
    wit::Leftover {
        name: l.name,
        lock: l.lock,
        kind: match l.kind {
            protocol::LeftoverKind::Temporary => wit::LeftoverKind::Temporary,
            protocol::LeftoverKind::Claim => wit::LeftoverKind::Claim,
            protocol::LeftoverKind::Token => wit::LeftoverKind::Token,
        },
        pid: l.pid,
        gone: l.gone,
    }
}

fn to_status(status: lockfile_core::Status) -> Status {
    Status {
        owner: status.owner.as_ref().map(to_owner),
        path: status.path,
        verdict: to_verdict(status.verdict),
        cause: to_cause(status.cause),
        reason: status.reason,
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
            let resolved = resolve_with(&self.path, FILES).map_err(to_wit_error)?;
            let _ = self.dir.set(resolved);
        }
        let Some((dir, name)) = self.dir.get() else {
            return Err(to_wit_error(protocol::Error::Unreachable {
                path: self.path.clone(),
                message: "the directory could not be opened".into(),
            }));
        };
        f(&Lock::new(dir, name, &self.path, &self.sys)
            .with_spare(&self.spare)
            .with_lease(lease_ms)
            .with_tokens(tokens))
        .map_err(to_wit_error)
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
        self.with(|lock| Ok(lock.owner()?.map(|r| to_datetime(r.timestamp))))
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
        self.with(|lock| Ok(to_status(lock.status()?)))
    }

    fn read(path: String) -> Result<Option<Owner>, wit::Error> {
        Self::once(&path, |lock| {
            Ok(lock
                .owner()?
                .as_ref()
                .map(|r| to_owner(&lockfile_core::Owner::from(r))))
        })
    }

    fn write(path: String, pid: u32, timestamp: Datetime) -> Result<(), wit::Error> {
        let ts = Timestamp::new(timestamp.seconds, timestamp.nanoseconds);
        Self::once(&path, |lock| lock.write(pid, ts))
    }
}

fn to_datetime(t: Timestamp) -> Datetime {
    Datetime {
        seconds: t.seconds,
        nanoseconds: t.nanos,
    }
}

fn to_owner(o: &lockfile_core::Owner) -> Owner {
    Owner {
        pid: o.pid,
        date: to_datetime(o.date),
        hostname: o.hostname.clone(),
        token: o.token,
        lease_ms: o.lease_ms,
        expires: o.expires.map(to_datetime),
    }
}

fn to_cause(c: Cause) -> wit::Cause {
    match c {
        Cause::NoLockFile => wit::Cause::NoLockFile,
        Cause::Unparsable => wit::Cause::Unparsable,
        Cause::Ours => wit::Cause::Ours,
        Cause::Running => wit::Cause::Running,
        Cause::RunningUnverified => wit::Cause::RunningUnverified,
        Cause::UnknownLiveness => wit::Cause::UnknownLiveness,
        Cause::CompanionRunning => wit::Cause::CompanionRunning,
        Cause::CompanionUnknown => wit::Cause::CompanionUnknown,
        Cause::BeingReplaced => wit::Cause::BeingReplaced,
        Cause::Dead => wit::Cause::Dead,
        Cause::Recycled => wit::Cause::Recycled,
        Cause::StartedAfter => wit::Cause::StartedAfter,
        Cause::LeaseExpired => wit::Cause::LeaseExpired,
        Cause::OtherHolder => wit::Cause::OtherHolder,
        Cause::OurPidReused => wit::Cause::OurPidReused,
        Cause::PreviousBoot => wit::Cause::PreviousBoot,
        Cause::NamespaceEnded => wit::Cause::NamespaceEnded,
        Cause::OtherHost => wit::Cause::OtherHost,
        Cause::OtherNamespace => wit::Cause::OtherNamespace,
    }
}

fn to_verdict(v: Verdict) -> wit::Verdict {
    match v {
        Verdict::Unlocked => wit::Verdict::Unlocked,
        Verdict::OwnedBySelf => wit::Verdict::OwnedBySelf,
        Verdict::Held => wit::Verdict::Held,
        Verdict::Stale => wit::Verdict::Stale,
        Verdict::Foreign => wit::Verdict::Foreign,
        Verdict::Malformed => wit::Verdict::Malformed,
    }
}

fn to_refusal(r: protocol::Refusal) -> Refusal {
    Refusal {
        owner: to_owner(&r.owner),
        path: r.path,
        verdict: to_verdict(r.verdict),
        cause: to_cause(r.cause),
        reason: r.reason,
    }
}

fn to_wit_error(e: protocol::Error) -> wit::Error {
    use protocol::Error as E;
    let failure = |path, message| wit::Failure { path, message };
    match e {
        E::UnableToAcquire(r) => wit::Error::UnableToAcquire(to_refusal(*r)),
        E::UnableToRelease(r) => wit::Error::UnableToRelease(to_refusal(*r)),
        E::Malformed { path, message } => wit::Error::Malformed(failure(path, message)),
        E::NotAFile { path, message } => wit::Error::NotAFile(failure(path, message)),
        E::Unreachable { path, message } => wit::Error::Unreachable(failure(path, message)),
        E::Denied { path, message } => wit::Error::Denied(failure(path, message)),
        E::InvalidIdentity { path, message } => wit::Error::InvalidIdentity(failure(path, message)),
        E::Contended { path, message } => wit::Error::Contended(failure(path, message)),
        E::Lost { path, message } => wit::Error::Lost(failure(path, message)),
        E::Io { path, message } => wit::Error::Io(failure(path, message)),
    }
}
