//! `kv-lockfile`: the lock at a key of the store the host provides (`kv`),
//! run by `lockfile_core::kv`. This module only adapts types.

use std::cell::Cell;
use std::time::Duration;

use lockfile_core::kv::{Entry, Held, KvLock, Store};
use lockfile_core::Mode;

use crate::bindings::exports::labm8::lockfile::kv_lockfile::{self as wit, GuestKvLock};
use crate::bindings::labm8::lockfile::kv as host;
use crate::system::HostSystem;

/// The host's store, one request per call.
struct HostStore;

fn entry(e: host::Entry) -> Entry {
    Entry {
        value: e.value,
        create_revision: e.create_revision,
        mod_revision: e.mod_revision,
        lease: e.lease,
    }
}

impl Store for HostStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, String> {
        host::get(key).map(|found| found.map(entry))
    }

    fn create(&self, key: &str, value: &[u8], lease: i64) -> Result<Result<i64, Entry>, String> {
        host::create(key, value, lease).map(|created| created.map_err(entry))
    }

    fn delete_if(&self, key: &str, mod_revision: i64) -> Result<bool, String> {
        host::delete_if(key, mod_revision)
    }

    fn grant(&self, ttl: Duration) -> Result<i64, String> {
        host::grant(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
    }

    fn keep_alive(&self, lease: i64) -> Result<bool, String> {
        host::keep_alive(lease)
    }

    fn revoke(&self, lease: i64) -> Result<(), String> {
        host::revoke(lease)
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Entry)>, String> {
        host::list(prefix).map(|found| found.into_iter().map(|(k, e)| (k, entry(e))).collect())
    }
}

/// `list-locks`: every lock under a prefix, judged here.
pub(crate) fn list_locks(prefix: &str, name_prefix: &str) -> Result<Vec<wit::Status>, wit::Error> {
    lockfile_core::kv::survey(&HostStore, prefix, name_prefix, &HostSystem::default())
        .map(|found| found.into_iter().map(wit::Status::from).collect())
        .map_err(wit::Error::from)
}

/// A lock at a key; who we are is asked of the host once per handle.
pub(crate) struct KvLockHandle {
    key: String,
    name: String,
    sys: HostSystem,
    /// What this handle's last acquisition created, until released: the
    /// release then deletes exactly that revision (one request fewer).
    held: Cell<Option<Held>>,
}

impl KvLockHandle {
    /// The lock, taking leases of `ttl` (only `acquire` takes one).
    fn lock(&self, ttl: Duration) -> KvLock<'_, HostStore, HostSystem> {
        KvLock::new(&HostStore, &self.key, &self.name, &self.sys, ttl)
    }
}

impl GuestKvLock for KvLockHandle {
    fn new(key: String, name: String) -> Self {
        Self {
            key,
            name,
            sys: HostSystem::default(),
            held: Cell::new(None),
        }
    }

    fn acquire(&self, mode: wit::Mode, ttl_ms: u64) -> Result<(), wit::Error> {
        let mode = match mode {
            wit::Mode::Free => Mode::Free,
            wit::Mode::ReplaceStale => Mode::ReplaceStale,
            wit::Mode::Force => Mode::Force,
        };
        let created = self
            .lock(Duration::from_millis(ttl_ms))
            .acquire_held(mode)
            .map_err(wit::Error::from)?;
        if created.is_some() {
            self.held.set(created);
        }
        Ok(())
    }

    fn release(&self, force: bool) -> Result<(), wit::Error> {
        self.lock(Duration::ZERO)
            .release(force)
            .map_err(wit::Error::from)
    }

    fn refresh(&self) -> Result<(), wit::Error> {
        self.lock(Duration::ZERO)
            .refresh()
            .map_err(wit::Error::from)
    }

    fn status(&self) -> Result<wit::Status, wit::Error> {
        Ok(self.lock(Duration::ZERO).status()?.into())
    }
}
