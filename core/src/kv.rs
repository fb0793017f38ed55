//! The lock over a key-value store with revisions and leases (etcd v3),
//! instead of a directory: one conditional write per step.
//!
//! The store does what `link` and claims do for files. Creating the key only
//! if it is absent has one winner; removing it only if its revision is still
//! the one judged never removes a successor's lock, so no claim is needed;
//! a lease is the holder's session, and the store deletes the key when it
//! runs out, so a holder on a host that died stops holding without anyone
//! judging it. The value is the lock file's record, labm8's `PID TIMESTAMP`
//! line first, so `etcdctl get` shows what a lock file would. The fencing
//! token is the key's create revision: the store's revision counter grows
//! with every write to any key, so tokens increase across every acquisition
//! of every lock in the cluster. (docs/PROTOCOL.md, "Over etcd".)
//!
//! The judgement is the file protocol's, with one difference: a record from
//! another host is `foreign` (held) for as long as its key exists, whatever
//! its lease says, because the store expires it, not the clocks of hosts.

use std::time::Duration;

use crate::decide::{judge_with, with_holder, Judgement, Verdict};
use crate::format::{self, Record};
use crate::options::{lease_millis, Mode};
use crate::protocol::{Error, Owner, Refusal, Status, System};

/// A key as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its value.
    pub value: Vec<u8>,
    /// The store's revision when the key was created: the fencing token.
    pub create_revision: i64,
    /// The store's revision when the key was last written.
    pub mod_revision: i64,
    /// The lease it is attached to (0: none).
    pub lease: i64,
}

/// What the protocol needs from the store. Each call is one request (a
/// transaction where it has conditions); an `Err` is a transport or server
/// failure, in words for the user.
pub trait Store {
    /// The key, or `None`.
    fn get(&self, key: &str) -> Result<Option<Entry>, String>;
    /// Creates `key` with `value` under `lease` only if it does not exist:
    /// `Ok(revision)` of the creation, or `Err(entry)`, what is there.
    fn create(&self, key: &str, value: &[u8], lease: i64) -> Result<Result<i64, Entry>, String>;
    /// Deletes `key` only if its last write was at `mod_revision`: whether
    /// it did.
    fn delete_if(&self, key: &str, mod_revision: i64) -> Result<bool, String>;
    /// A new lease of `ttl`.
    fn grant(&self, ttl: Duration) -> Result<i64, String>;
    /// Renews `lease`: `false` when it no longer exists (it ran out).
    fn keep_alive(&self, lease: i64) -> Result<bool, String>;
    /// Ends `lease` (its keys go with it).
    fn revoke(&self, lease: i64) -> Result<(), String>;
    /// Every key starting with `prefix`, with its entry, in key order.
    fn list(&self, prefix: &str) -> Result<Vec<(String, Entry)>, String>;
    /// Blocks until `key` is written or deleted after `revision`, or
    /// `limit` passes: whether it changed. `None` where the store cannot
    /// watch (the caller pauses and looks again).
    fn wait_change(
        &self,
        _key: &str,
        _revision: i64,
        _limit: Duration,
    ) -> Option<Result<bool, String>> {
        None
    }
}

/// What an acquisition created: the key's revision and the lease it is
/// attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The store's revision of the create: the key's mod revision while
    /// nobody writes it.
    pub revision: i64,
    /// The lease the key was created under.
    pub lease: i64,
}

/// A key's entry and its value parsed as a record.
type Loaded = (Entry, Result<Record, format::FormatError>);

/// How often the lock may change hands under one operation before it
/// reports contention.
const ATTEMPTS: usize = 16;

/// A lock at a key: labm8's `LockFile` over a store.
pub struct KvLock<'a, S: Store, Y: System> {
    store: &'a S,
    key: &'a str,
    /// How the lock is named to people (`etcd://host:port/key`).
    path: &'a str,
    sys: &'a Y,
    ttl: Duration,
}

impl<S: Store, Y: System> std::fmt::Debug for KvLock<'_, S, Y> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvLock")
            .field("key", &self.key)
            .field("path", &self.path)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<'a, S: Store, Y: System> KvLock<'a, S, Y> {
    /// The lock at `key`, shown as `path`, held for `sys.current()` with a
    /// session of `ttl` (the store ends it when not renewed for that long).
    pub fn new(store: &'a S, key: &'a str, path: &'a str, sys: &'a Y, ttl: Duration) -> Self {
        KvLock {
            store,
            key,
            path,
            sys,
            ttl,
        }
    }

    fn io(&self, what: &str, e: String) -> Error {
        Error::Io {
            path: self.path.to_owned(),
            message: format!("cannot {what}: {e}"),
        }
    }

    /// What we write: a lock file's record (the command `run` started
    /// included), with our lease; the token is the key's revision.
    fn my_record(&self) -> Record {
        crate::protocol::own_record(self.sys, Some(lease_millis(self.ttl)), None)
    }

    /// The verdict on `record` for us: the file protocol's, without its
    /// clock-based lease rule (the store expires leases).
    fn judge(&self, record: &Record) -> Judgement {
        let judged = judge_with(
            record,
            &self.sys.current(),
            &self.sys.machine(),
            |pid| self.sys.query(pid),
            |ns| self.sys.pid_namespace_alive(ns),
        );
        with_holder(record, self.sys.holder(), judged)
    }

    /// What the key holds, parsed.
    fn load(&self) -> Result<Option<Loaded>, Error> {
        let entry = self
            .store
            .get(self.key)
            .map_err(|e| self.io("read the lock", e))?;
        Ok(entry.map(|e| {
            let record = format::parse(&e.value);
            (e, record)
        }))
    }

    fn owner(entry: &Entry, record: &Record) -> Owner {
        Owner {
            token: u64::try_from(entry.create_revision).ok(),
            expires: None,
            ..Owner::from(record)
        }
    }

    fn malformed(&self, e: &format::FormatError) -> Error {
        Error::Malformed {
            path: self.path.to_owned(),
            message: format!("{e}; it is left as it is (only force replaces or removes it)"),
        }
    }

    /// Takes the lock as `mode` allows: free, ours already (a no-op), stale
    /// with `ReplaceStale`, anything with `Force`.
    ///
    /// # Errors
    /// `UnableToAcquire` naming the owner; `Malformed` (unless forced);
    /// `Contended` when the key changed hands too often while we looked;
    /// `Io` when the store fails.
    pub fn acquire(&self, mode: Mode) -> Result<(), Error> {
        self.acquire_held(mode).map(|_| ())
    }

    /// As [`KvLock::acquire`], and what this acquisition created: the key's
    /// revision and our lease, for [`KvLock::release_held`]. `None` when
    /// the lock was ours already.
    ///
    /// # Errors
    /// As [`KvLock::acquire`].
    pub fn acquire_held(&self, mode: Mode) -> Result<Option<Held>, Error> {
        for _ in 0..ATTEMPTS {
            let lease = self
                .store
                .grant(self.ttl)
                .map_err(|e| self.io("start a lease", e))?;
            let value = format::serialize(&self.my_record());
            let existing = match self.store.create(self.key, value.as_bytes(), lease) {
                Ok(Ok(revision)) => return Ok(Some(Held { revision, lease })),
                Ok(Err(entry)) => entry,
                Err(e) => {
                    let _ = self.store.revoke(lease);
                    return Err(self.io("create the lock", e));
                }
            };
            // Under our own lease: our create landed and its answer was lost
            // to a client that sent it again. The key is ours; revoking
            // "the unused lease" would delete it.
            if existing.lease == lease {
                return Ok(Some(Held {
                    revision: existing.mod_revision,
                    lease,
                }));
            }
            // Not ours to create: this lease goes unused.
            let _ = self.store.revoke(lease);
            let record = match format::parse(&existing.value) {
                Ok(record) => record,
                Err(e) if mode != Mode::Force => return Err(self.malformed(&e)),
                Err(_) => {
                    self.remove_if(&existing)?;
                    continue;
                }
            };
            let judged = self.judge(&record);
            let replace = match (judged.verdict, mode) {
                (Verdict::OwnedBySelf, _) => return Ok(None),
                (_, Mode::Force) | (Verdict::Stale, Mode::ReplaceStale) => true,
                _ => false,
            };
            if !replace {
                return Err(Error::UnableToAcquire(Box::new(Refusal {
                    owner: Self::owner(&existing, &record),
                    ..Refusal::new(self.path, &record, judged)
                })));
            }
            // Only the record we judged goes: a successor's never does.
            self.remove_if(&existing)?;
        }
        Err(self.contended())
    }

    fn remove_if(&self, entry: &Entry) -> Result<bool, Error> {
        self.store
            .delete_if(self.key, entry.mod_revision)
            .map_err(|e| self.io("remove the lock", e))
    }

    fn contended(&self) -> Error {
        Error::Contended {
            path: self.path.to_owned(),
            message: format!("the lock changed hands {ATTEMPTS} times while we looked; try again"),
        }
    }

    /// Releases the lock: a no-op when there is none; the owner's own, or
    /// anyone's with `force`.
    ///
    /// # Errors
    /// `UnableToRelease` naming another owner; `Malformed` (unless forced);
    /// `Io` when the store fails.
    pub fn release(&self, force: bool) -> Result<(), Error> {
        for _ in 0..ATTEMPTS {
            let Some((entry, record)) = self.load()? else {
                return Ok(());
            };
            match &record {
                Err(e) if !force => return Err(self.malformed(e)),
                Ok(record) if !force => {
                    let judged = self.judge(record);
                    if judged.verdict != Verdict::OwnedBySelf {
                        return Err(Error::UnableToRelease(Box::new(Refusal {
                            owner: Self::owner(&entry, record),
                            ..Refusal::new(self.path, record, judged)
                        })));
                    }
                }
                _ => {}
            }
            // The lease is left to run out: whoever granted it may have
            // attached other keys to it (an application's session), which
            // a revoke would delete. `release_held` revokes the lease its
            // own acquisition granted.
            if self.remove_if(&entry)? {
                return Ok(());
            }
        }
        Err(self.contended())
    }

    /// Releases what [`KvLock::acquire_held`] created: the key is deleted
    /// only if it is still at that revision (then it is the record we
    /// wrote, untouched), and its lease revoked; two requests where
    /// [`KvLock::release`] makes three. Anything else (the key changed,
    /// taken over or forced) goes through `release`, which judges it.
    ///
    /// # Errors
    /// As [`KvLock::release`].
    pub fn release_held(&self, held: Held, force: bool) -> Result<(), Error> {
        if self
            .store
            .delete_if(self.key, held.revision)
            .map_err(|e| self.io("remove the lock", e))?
        {
            let _ = self.store.revoke(held.lease);
            return Ok(());
        }
        self.release(force)
    }

    /// Renews our lease: the lock is still ours for another `ttl`.
    ///
    /// # Errors
    /// `Lost` when the key is gone, not ours, or its lease ran out; `Io`
    /// when the store fails.
    pub fn refresh(&self) -> Result<(), Error> {
        let lost = |message: &str| Error::Lost {
            path: self.path.to_owned(),
            message: message.into(),
        };
        let Some((entry, Ok(record))) = self.load()? else {
            return Err(lost(
                "the lock is gone (its lease ran out, or it was released or forced)",
            ));
        };
        if self.judge(&record).verdict != Verdict::OwnedBySelf {
            return Err(lost("the lock is another owner's now"));
        }
        if entry.lease == 0 {
            return Err(lost(
                "the key was rewritten without a lease: nothing ends it, and it is not ours to renew",
            ));
        }
        let alive = self
            .store
            .keep_alive(entry.lease)
            .map_err(|e| self.io("renew the lease", e))?;
        if alive {
            Ok(())
        } else {
            Err(lost("its lease ran out"))
        }
    }

    /// How the lock stands for us; the owner's token is the key's create
    /// revision.
    ///
    /// # Errors
    /// `Io` when the store fails.
    pub fn status(&self) -> Result<Status, Error> {
        Ok(self.status_of(self.load()?))
    }

    fn status_of(&self, loaded: Option<Loaded>) -> Status {
        let path = self.path.to_owned();
        match loaded {
            None => Status {
                path,
                owner: None,
                verdict: Verdict::Unlocked,
                cause: crate::Cause::NoLockFile,
                reason: "the key does not exist".into(),
            },
            Some((_, Err(e))) => Status {
                path,
                owner: None,
                verdict: Verdict::Malformed,
                cause: crate::Cause::Unparsable,
                reason: e.to_string(),
            },
            Some((entry, Ok(record))) => {
                let judged = self.judge(&record);
                Status {
                    path,
                    owner: Some(Self::owner(&entry, &record)),
                    verdict: judged.verdict,
                    cause: judged.cause,
                    reason: judged.reason,
                }
            }
        }
    }
}

/// Every lock under the keys of `store` starting with `prefix`, as `sys`
/// sees them, each named `name_prefix` followed by its key.
///
/// # Errors
/// `Io` (naming `name_prefix` and the prefix) when the store fails.
pub fn survey<S: Store, Y: System>(
    store: &S,
    prefix: &str,
    name_prefix: &str,
    sys: &Y,
) -> Result<Vec<Status>, Error> {
    let entries = store.list(prefix).map_err(|e| Error::Io {
        path: format!("{name_prefix}{prefix}"),
        message: format!("cannot list the locks: {e}"),
    })?;
    Ok(entries
        .into_iter()
        .map(|(key, entry)| {
            let name = format!("{name_prefix}{key}");
            let record = format::parse(&entry.value);
            KvLock::new(store, &key, &name, sys, Duration::ZERO).status_of(Some((entry, record)))
        })
        .collect())
}
