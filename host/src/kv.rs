//! Locks kept in a key-value store (etcd) instead of a directory: the
//! `kv` import the component's `kv-lockfile` runs over, where a lock's
//! address is parsed, and the handle, [`KvLockFile`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lockfile_core::kv::Store as KvStore;
pub use lockfile_core::kv::{Entry, Store};
use lockfile_core::{AcquireOptions, Identity, Mode, Status, Verdict};
use wasmtime::component::{HasData, Linker, ResourceAny};
use wasmtime::Store as Sandbox;

use crate::bindings::coordinated::exports::labm8::lockfile::lockfile as lib;
use crate::bindings::coordinated::labm8::lockfile::kv as wit;
use crate::bindings::coordinated::CoordinatedLibrary as Library;
use crate::error::{Error, LockError};
use crate::process;
use crate::runtime::Runtime;
use crate::store::{for_call, HostState};

/// A store the component may keep locks in: etcd's ([`crate::etcd::EtcdStore`]), or
/// any other with revisions and leases.
pub type SharedStore = Arc<dyn KvStore + Send + Sync>;

/// What a sandbox's `kv` calls go to: none for a lock file's sandbox.
#[derive(Clone, Default)]
pub(crate) struct KvCtx {
    pub(crate) store: Option<SharedStore>,
}

impl KvCtx {
    pub(crate) fn new(store: SharedStore) -> Self {
        KvCtx { store: Some(store) }
    }

    fn store(&self) -> Result<&SharedStore, String> {
        self.store
            .as_ref()
            .ok_or_else(|| "no key-value store was opened for this lock".to_owned())
    }
}

fn to_wit(e: Entry) -> wit::Entry {
    wit::Entry {
        value: e.value,
        create_revision: e.create_revision,
        mod_revision: e.mod_revision,
        lease: e.lease,
    }
}

impl wit::Host for KvCtx {
    fn get(&mut self, key: String) -> Result<Option<wit::Entry>, String> {
        Ok(self.store()?.get(&key)?.map(to_wit))
    }

    fn create(
        &mut self,
        key: String,
        value: Vec<u8>,
        lease: i64,
    ) -> Result<Result<i64, wit::Entry>, String> {
        Ok(self.store()?.create(&key, &value, lease)?.map_err(to_wit))
    }

    fn delete_if(&mut self, key: String, mod_revision: i64) -> Result<bool, String> {
        self.store()?.delete_if(&key, mod_revision)
    }

    fn grant(&mut self, ttl_ms: u64) -> Result<i64, String> {
        self.store()?.grant(Duration::from_millis(ttl_ms))
    }

    fn keep_alive(&mut self, lease: i64) -> Result<bool, String> {
        self.store()?.keep_alive(lease)
    }

    fn revoke(&mut self, lease: i64) -> Result<(), String> {
        self.store()?.revoke(lease)
    }

    fn list(&mut self, prefix: String) -> Result<Vec<(String, wit::Entry)>, String> {
        Ok(self
            .store()?
            .list(&prefix)?
            .into_iter()
            .map(|(k, e)| (k, to_wit(e)))
            .collect())
    }
}

struct HasKv;

impl HasData for HasKv {
    type Data<'a> = &'a mut KvCtx;
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<HostState, HasKv>(linker, |s| &mut s.kv)
}

/// Where a lock in etcd is: `etcd://HOST:PORT[,HOST:PORT...]/KEY`, or
/// `etcd:///KEY` with the endpoints of `LOCKFILE_ETCD_ENDPOINTS`;
/// `etcds://` for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvAddress {
    /// `HOST:PORT` of each member to try.
    pub endpoints: Vec<String>,
    /// The key (the address's path without its first `/`).
    pub key: String,
    /// Whether the members speak TLS (`etcds://`).
    pub tls: bool,
}

/// The scheme of a lock kept in etcd.
pub const ETCD_SCHEME: &str = "etcd://";

/// The scheme of a lock kept in etcd over TLS.
pub const ETCDS_SCHEME: &str = "etcds://";

/// The variable naming the default endpoints, for `etcd:///KEY`.
pub const ENDPOINTS_VAR: &str = "LOCKFILE_ETCD_ENDPOINTS";

impl KvAddress {
    /// Parses `address` when it is an etcd address (`None` when it is a
    /// path), taking `default_endpoints` for `etcd:///KEY`.
    ///
    /// # Errors
    /// [`LockError::Unreachable`] when it names no key or no endpoint.
    pub fn parse(address: &str, default_endpoints: Option<&str>) -> Option<Result<Self, Error>> {
        let (rest, tls) = match address.strip_prefix(ETCD_SCHEME) {
            Some(rest) => (rest, false),
            None => (address.strip_prefix(ETCDS_SCHEME)?, true),
        };
        let bad = |why: &str| Some(Err(Error::unreachable(Path::new(address), why)));
        let Some((authority, key)) = rest.split_once('/') else {
            return bad("give etcd://HOST:PORT/KEY (no key after the endpoints)");
        };
        if key.is_empty() {
            return bad("give etcd://HOST:PORT/KEY (the key is empty)");
        }
        let endpoints = match (authority, default_endpoints) {
            ("", Some(default)) => default,
            ("", None) => {
                return bad(&format!(
                    "etcd:///KEY takes its endpoints from {ENDPOINTS_VAR}, which is not set"
                ))
            }
            (given, _) => given,
        };
        let endpoints: Vec<String> = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        if endpoints.is_empty() {
            return bad("no endpoint (give HOST:PORT)");
        }
        if let Some(bad_one) = endpoints.iter().find(|e| !valid_endpoint(e)) {
            return bad(&format!("`{bad_one}` is not an endpoint: give HOST:PORT"));
        }
        Some(Ok(KvAddress {
            endpoints,
            key: key.to_owned(),
            tls,
        }))
    }
}

/// `HOST:PORT` with a port number.
fn valid_endpoint(e: &str) -> bool {
    e.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
    })
}

/// A lock at a key of a store, run by the component in a sandbox that sees
/// no file at all, only the store.
pub struct KvLockFile {
    pub(crate) store: Sandbox<HostState>,
    pub(crate) lib: Library,
    pub(crate) resource: ResourceAny,
    pub(crate) name: String,
    pub(crate) key: String,
}

impl std::fmt::Debug for KvLockFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvLockFile")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The session of a lock kept in etcd when none is given: long enough to
/// ride out a leader election, short enough that a crashed host's lock goes
/// soon.
pub const DEFAULT_KV_LEASE: Duration = Duration::from_secs(15);

impl KvLockFile {
    /// The address it was opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn call<T>(
        &mut self,
        f: impl FnOnce(
            &Library,
            &mut Sandbox<HostState>,
            ResourceAny,
        ) -> wasmtime::Result<Result<T, lib::Error>>,
    ) -> Result<T, Error> {
        let _runtime = for_call(self.store.data());
        f(&self.lib, &mut self.store, self.resource)
            .map_err(|e| Error::runtime("the component trapped", e))?
            .map_err(|e| Error::Lock(LockError::from(e)))
    }

    /// Takes the lock as `options` say, under a lease of `options.lease`
    /// ([`DEFAULT_KV_LEASE`] without one): the store deletes the key when
    /// the lease is not renewed ([`KvLockFile::refresh`]) for that long. One
    /// attempt: `options.wait` is the caller's.
    ///
    /// # Errors
    /// As [`crate::LockFile::acquire_with`].
    pub fn acquire_with(&mut self, options: AcquireOptions) -> Result<(), Error> {
        let mode = match options.mode {
            Mode::Free => lib::Mode::Free,
            Mode::ReplaceStale => lib::Mode::ReplaceStale,
            Mode::Force => lib::Mode::Force,
        };
        let ttl = options.lease.unwrap_or(DEFAULT_KV_LEASE);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.call(|lib, store, r| {
            lib.labm8_lockfile_kv_lockfile()
                .kv_lock()
                .call_acquire(store, r, mode, ttl_ms)
        })
    }

    /// Releases the lock (and its lease): a no-op when there is none.
    ///
    /// # Errors
    /// As [`crate::LockFile::release`].
    pub fn release(&mut self, force: bool) -> Result<(), Error> {
        self.call(|lib, store, r| {
            lib.labm8_lockfile_kv_lockfile()
                .kv_lock()
                .call_release(store, r, force)
        })
    }

    /// Renews the lease.
    ///
    /// # Errors
    /// [`LockError::Lost`] when the key is gone or not ours.
    pub fn refresh(&mut self) -> Result<(), Error> {
        self.call(|lib, store, r| {
            lib.labm8_lockfile_kv_lockfile()
                .kv_lock()
                .call_refresh(store, r)
        })
    }

    /// How the lock stands; its owner's token is the key's create revision.
    ///
    /// # Errors
    /// [`LockError::Io`] when the store fails.
    pub fn status(&mut self) -> Result<Status, Error> {
        self.call(|lib, store, r| {
            lib.labm8_lockfile_kv_lockfile()
                .kv_lock()
                .call_status(store, r)
        })
        .map(Status::from)
    }

    /// Waits up to `limit` for the key to change (released, expired,
    /// taken over), on a watch where the store has one: whether it changed
    /// (or is free now). Where the store cannot watch, pauses a quarter
    /// second and says `false`. Not lock logic: the next `acquire` judges.
    ///
    /// # Errors
    /// [`LockError::Io`] when the store fails.
    pub fn wait_for_change(&mut self, limit: Duration) -> Result<bool, Error> {
        let Some(store) = self.store.data().kv.store.clone() else {
            return Err(unusable(&self.name, "no key-value store was opened"));
        };
        let io = |e: String| unusable(&self.name, format!("cannot watch the lock: {e}"));
        let revision = match store.get(&self.key).map_err(io)? {
            Some(entry) => entry.mod_revision,
            None => return Ok(true),
        };
        match store.wait_change(&self.key, revision, limit) {
            Some(changed) => changed.map_err(io),
            None => {
                std::thread::sleep(limit.min(Duration::from_millis(250)));
                Ok(false)
            }
        }
    }

    /// The fencing token of our acquisition: the key's create revision,
    /// which grows with every write to the cluster. `None` when the lock
    /// is not ours.
    ///
    /// # Errors
    /// As [`KvLockFile::status`].
    pub fn token(&mut self) -> Result<Option<u64>, Error> {
        let status = self.status()?;
        Ok(match status.verdict {
            Verdict::OwnedBySelf => status.owner.and_then(|o| o.token),
            _ => None,
        })
    }
}

impl Drop for KvLockFile {
    /// Lets the component drop its handle; the lock stays (as a lock
    /// file's does): its lease ends it unless it is renewed.
    fn drop(&mut self) {
        let _runtime = for_call(self.store.data());
        let _ = self.resource.resource_drop(&mut self.store);
    }
}

/// Whom a lock in a store is opened for (a lock file's `open_as`,
/// `inspect_as` and `open_with_companion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvFor {
    /// This process.
    This,
    /// Process `pid` (it must run).
    Pid(u32),
    /// Process `pid`'s point of view, only to look (it may have ended).
    Inspect(u32),
    /// This process and `pid`, a process it started (as `lockfile run`).
    Companion(u32),
}

impl Runtime {
    /// Opens the lock at `key` of `store`, named `name` in messages (its
    /// address, `etcd://HOST:PORT/KEY`), for `whom`. The sandbox sees no
    /// file, only the store.
    ///
    /// # Errors
    /// [`Error::NoSuchProcess`] when the process to act for is not running;
    /// [`Error::Runtime`] when the component cannot be instantiated.
    pub fn open_kv(
        &self,
        store: SharedStore,
        name: &str,
        key: &str,
        whom: KvFor,
    ) -> Result<KvLockFile, Error> {
        let running = |pid: u32| {
            let info = process::query(pid);
            if info.liveness == process::Liveness::Dead {
                return Err(Error::NoSuchProcess(pid));
            }
            Ok(Identity {
                pid,
                start_ticks: info.start_ticks,
            })
        };
        let (acting, companion) = match whom {
            KvFor::This => (self.runner(), None),
            KvFor::Pid(pid) => (running(pid)?, None),
            KvFor::Inspect(pid) => (
                Identity {
                    pid,
                    start_ticks: process::query(pid).start_ticks,
                },
                None,
            ),
            KvFor::Companion(pid) => (self.runner(), Some(running(pid)?)),
        };
        let (mut store, lib) = self.kv_sandbox(acting, companion, KvCtx::new(store))?;
        let _runtime = for_call(store.data());
        let resource = lib
            .labm8_lockfile_kv_lockfile()
            .kv_lock()
            .call_constructor(&mut store, key, name)
            .map_err(|e| Error::runtime("the component trapped", e))?;
        Ok(KvLockFile {
            store,
            lib,
            resource,
            name: name.to_owned(),
            key: key.to_owned(),
        })
    }
}

impl Runtime {
    /// Every lock in `store` under the keys starting with `prefix`, as
    /// `pid` (default: this process) sees it; each named `name_prefix`
    /// followed by its key (`etcd://HOST:PORT/` and the key, say).
    ///
    /// # Errors
    /// [`LockError::Io`] when the store fails.
    pub fn list_kv(
        &self,
        store: SharedStore,
        name_prefix: &str,
        prefix: &str,
        pid: Option<u32>,
    ) -> Result<Vec<Status>, Error> {
        let acting = match pid {
            Some(pid) => Identity {
                pid,
                start_ticks: process::query(pid).start_ticks,
            },
            None => self.runner(),
        };
        let (mut sandbox, lib) = self.kv_sandbox(acting, None, KvCtx::new(store))?;
        let _runtime = for_call(sandbox.data());
        lib.labm8_lockfile_kv_lockfile()
            .call_list_locks(&mut sandbox, prefix, name_prefix)
            .map_err(|e| Error::runtime("the component trapped", e))?
            .map(|found| found.into_iter().map(Status::from).collect())
            .map_err(|e| Error::Lock(LockError::from(e)))
    }
}

/// A lock error for an address that cannot be used (the store cannot be
/// reached, say): nothing was written.
pub fn unusable(address: &str, message: impl Into<String>) -> Error {
    Error::Lock(LockError::Io {
        path: address.to_owned(),
        message: message.into(),
    })
}
