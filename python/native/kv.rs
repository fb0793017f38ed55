//! Locks kept in etcd (`etcd://HOST:PORT/KEY`, `etcds://` for TLS): the
//! connections of this process, one per cluster, made on first use and
//! again in a `fork` child (a connection is a thread of the parent's,
//! which the child does not have).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lockfile_host::etcd::{EtcdOptions, EtcdStore};
use lockfile_host::kv::{unusable, KvAddress, SharedStore, ENDPOINTS_VAR};
use lockfile_host::Error;

use crate::fork;

/// How long connecting to etcd, and each request, may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The connections, with the generation (see [`fork`]) that made them.
static STORES: Mutex<Vec<(u64, Vec<String>, SharedStore)>> = Mutex::new(Vec::new());

/// The address `path` is, when it names a lock in etcd.
pub fn address(path: &str) -> Option<Result<KvAddress, Error>> {
    let defaults = std::env::var(ENDPOINTS_VAR).ok();
    KvAddress::parse(path, defaults.as_deref())
}

/// The connection to `address`'s cluster. Call it inside the gate.
///
/// # Errors
/// [`lockfile_host::LockError::Io`] when TLS or credentials are
/// misconfigured, or no member can be reached.
pub fn store(address: &KvAddress, name: &str) -> Result<SharedStore, Error> {
    let generation = fork::generation();
    let mut stores = STORES.lock().unwrap_or_else(PoisonError::into_inner);
    stores.retain(|(made_in, _, _)| *made_in == generation);
    if let Some((_, _, store)) = stores.iter().find(|(_, e, _)| *e == address.endpoints) {
        return Ok(Arc::clone(store));
    }
    let options = EtcdOptions::from_env(address.tls, TIMEOUT).map_err(|e| unusable(name, e))?;
    let store: SharedStore = Arc::new(
        EtcdStore::connect_with(&address.endpoints, &options).map_err(|e| unusable(name, e))?,
    );
    stores.push((generation, address.endpoints.clone(), Arc::clone(&store)));
    Ok(store)
}
