//! The lock over a key-value store (`lockfile_core::kv`), against an
//! in-memory store with etcd v3's semantics: one revision counter for the
//! whole store, create and mod revisions per key, leases whose end deletes
//! their keys, and conditional writes.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use lockfile_core::kv::{Entry, KvLock, Store};
use lockfile_core::protocol::{Error, System};
use lockfile_core::{Cause, Identity, Liveness, Machine, Mode, ProcessInfo, Timestamp, Verdict};

#[derive(Default)]
struct Mem {
    revision: Cell<i64>,
    keys: RefCell<BTreeMap<String, Entry>>,
    /// Live leases.
    leases: RefCell<Vec<i64>>,
    next_lease: Cell<i64>,
    /// Every request, for tests that count them.
    requests: Cell<u32>,
    /// When set, every request fails with this message.
    down: RefCell<Option<String>>,
    /// Written (unconditionally, as another client) just before the next
    /// conditional delete is evaluated: a racer that got there first.
    before_delete: RefCell<Option<Vec<u8>>>,
    /// When set, a create is applied and then sent again (a client that
    /// retries a request whose answer it lost): the caller sees the second
    /// answer, the key it created itself.
    retries_creates: Cell<bool>,
}

impl Mem {
    fn call(&self) -> Result<(), String> {
        self.requests.set(self.requests.get() + 1);
        match &*self.down.borrow() {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    fn bump(&self) -> i64 {
        self.revision.set(self.revision.get() + 1);
        self.revision.get()
    }

    /// The lease runs out: the store deletes its keys.
    fn expire(&self, lease: i64) {
        self.leases.borrow_mut().retain(|l| *l != lease);
        let gone: Vec<String> = self
            .keys
            .borrow()
            .iter()
            .filter(|(_, e)| e.lease == lease)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.keys.borrow_mut().remove(&key);
            self.bump();
        }
    }

    /// Writes `value` at `key` unconditionally (another client, or garbage).
    fn put(&self, key: &str, value: &[u8], lease: i64) {
        let revision = self.bump();
        let mut keys = self.keys.borrow_mut();
        let create_revision = keys.get(key).map_or(revision, |e| e.create_revision);
        keys.insert(
            key.into(),
            Entry {
                value: value.to_vec(),
                create_revision,
                mod_revision: revision,
                lease,
            },
        );
    }

    fn lease_of(&self, key: &str) -> i64 {
        self.keys.borrow()[key].lease
    }
}

impl Store for Mem {
    fn get(&self, key: &str) -> Result<Option<Entry>, String> {
        self.call()?;
        Ok(self.keys.borrow().get(key).cloned())
    }

    fn create(&self, key: &str, value: &[u8], lease: i64) -> Result<Result<i64, Entry>, String> {
        self.call()?;
        if self.retries_creates.get() && !self.keys.borrow().contains_key(key) {
            self.retries_creates.set(false);
            let _lost_answer = self.create(key, value, lease)?;
        }
        if let Some(e) = self.keys.borrow().get(key) {
            return Ok(Err(e.clone()));
        }
        if lease != 0 && !self.leases.borrow().contains(&lease) {
            return Err(format!("lease {lease} not found"));
        }
        self.put(key, value, lease);
        Ok(Ok(self.revision.get()))
    }

    fn delete_if(&self, key: &str, mod_revision: i64) -> Result<bool, String> {
        self.call()?;
        if let Some(value) = self.before_delete.borrow_mut().take() {
            self.put(key, &value, 0);
        }
        let matches = self
            .keys
            .borrow()
            .get(key)
            .is_some_and(|e| e.mod_revision == mod_revision);
        if matches {
            self.keys.borrow_mut().remove(key);
            self.bump();
        }
        Ok(matches)
    }

    fn grant(&self, _ttl: Duration) -> Result<i64, String> {
        self.call()?;
        self.next_lease.set(self.next_lease.get() + 1);
        let lease = 1000 + self.next_lease.get();
        self.leases.borrow_mut().push(lease);
        Ok(lease)
    }

    fn keep_alive(&self, lease: i64) -> Result<bool, String> {
        self.call()?;
        Ok(self.leases.borrow().contains(&lease))
    }

    fn revoke(&self, lease: i64) -> Result<(), String> {
        self.call()?;
        self.expire(lease);
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Entry)>, String> {
        self.call()?;
        Ok(self
            .keys
            .borrow()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect())
    }
}

/// A host: its processes, name and boot.
struct Host {
    name: &'static str,
    me: Cell<u32>,
    table: RefCell<HashMap<u32, Liveness>>,
}

impl Host {
    fn new(name: &'static str, me: u32) -> Self {
        let host = Host {
            name,
            me: Cell::new(me),
            table: RefCell::new(HashMap::new()),
        };
        host.table.borrow_mut().insert(me, Liveness::Alive);
        host
    }

    fn kill(&self, pid: u32) {
        self.table.borrow_mut().insert(pid, Liveness::Dead);
    }

    /// The same host, acting for another live process.
    fn act_for(&self, pid: u32) {
        self.table.borrow_mut().insert(pid, Liveness::Alive);
        self.me.set(pid);
    }
}

impl System for Host {
    fn current(&self) -> Identity {
        let pid = self.me.get();
        Identity {
            pid,
            start_ticks: Some(u64::from(pid) * 10),
        }
    }
    fn runner(&self) -> Identity {
        self.current()
    }
    fn machine(&self) -> Machine {
        Machine {
            hostname: Some(self.name.into()),
            boot_id: Some(format!("boot-{}", self.name)),
            pid_namespace: Some(4_026_531_836),
        }
    }
    fn query(&self, pid: u32) -> ProcessInfo {
        let liveness = self
            .table
            .borrow()
            .get(&pid)
            .copied()
            .unwrap_or(Liveness::Dead);
        ProcessInfo {
            liveness,
            start_ticks: (liveness == Liveness::Alive).then_some(u64::from(pid) * 10),
            start_time: None,
        }
    }
    fn now(&self) -> Timestamp {
        Timestamp::new(1_800_000_000, 0)
    }
    fn random(&self) -> u64 {
        u64::from(self.me.get()) << 20 | 7
    }
}

const KEY: &str = "jobs/nightly";
const PATH: &str = "etcd://127.0.0.1:2379/jobs/nightly";
const TTL: Duration = Duration::from_secs(10);

fn lock<'a>(store: &'a Mem, host: &'a Host) -> KvLock<'a, Mem, Host> {
    KvLock::new(store, KEY, PATH, host, TTL)
}

#[test]
fn one_acquirer_wins_and_the_value_is_a_lock_files_record() {
    let store = Mem::default();
    let a = Host::new("a", 100);
    let b = Host::new("b", 200);
    lock(&store, &a).acquire(Mode::Free).expect("free");
    let value = store.keys.borrow()[KEY].value.clone();
    let text = String::from_utf8(value).expect("utf-8");
    assert!(
        text.starts_with("100 1800000000"),
        "labm8's first line: {text}"
    );
    // Acquiring again is a no-op; another host is refused, the owner named.
    lock(&store, &a).acquire(Mode::Free).expect("ours already");
    match lock(&store, &b).acquire(Mode::ReplaceStale) {
        Err(Error::UnableToAcquire(r)) => {
            assert_eq!(r.owner.pid, 100);
            assert_eq!(r.verdict, Verdict::Foreign);
            assert_eq!(r.cause, Cause::OtherHost);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let status = lock(&store, &a).status().expect("status");
    assert_eq!(status.verdict, Verdict::OwnedBySelf);
    assert_eq!(
        status.owner.and_then(|o| o.token),
        Some(1),
        "the create revision"
    );
}

#[test]
fn another_hosts_lock_is_held_until_the_store_ends_its_lease() {
    let store = Mem::default();
    let a = Host::new("a", 100);
    let b = Host::new("b", 200);
    lock(&store, &a).acquire(Mode::Free).expect("a");
    // Host a dies: nothing judges it from b; its lease runs out in the store.
    a.kill(100);
    assert!(lock(&store, &b).acquire(Mode::ReplaceStale).is_err());
    store.expire(store.lease_of(KEY));
    assert_eq!(
        lock(&store, &b).status().expect("status").verdict,
        Verdict::Unlocked
    );
    lock(&store, &b)
        .acquire(Mode::Free)
        .expect("b after the lease ran out");
}

#[test]
fn on_the_holders_own_host_a_dead_holder_is_stale_at_once() {
    let store = Mem::default();
    let host = Host::new("a", 100);
    lock(&store, &host).acquire(Mode::Free).expect("100");
    let first = store.keys.borrow()[KEY].create_revision;
    host.kill(100);
    host.act_for(101);
    let l = lock(&store, &host);
    assert_eq!(l.status().expect("status").verdict, Verdict::Stale);
    assert!(matches!(
        l.acquire(Mode::Free),
        Err(Error::UnableToAcquire(_))
    ));
    l.acquire(Mode::ReplaceStale).expect("takeover");
    let entry = store.keys.borrow()[KEY].clone();
    assert!(String::from_utf8_lossy(&entry.value).starts_with("101 "));
    assert!(
        entry.create_revision > first,
        "a takeover issues a higher token"
    );
}

#[test]
fn tokens_increase_across_every_acquisition_of_every_key() {
    let store = Mem::default();
    let host = Host::new("a", 100);
    let other_key = KvLock::new(&store, "other", "etcd:///other", &host, TTL);
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let l = lock(&store, &host);
        l.acquire(Mode::Free).expect("acquire");
        tokens.push(l.status().expect("status").owner.and_then(|o| o.token));
        l.release(false).expect("release");
        other_key.acquire(Mode::Free).expect("other");
        tokens.push(
            other_key
                .status()
                .expect("status")
                .owner
                .and_then(|o| o.token),
        );
        other_key.release(false).expect("release other");
    }
    let tokens: Vec<u64> = tokens.into_iter().map(|t| t.expect("a token")).collect();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
}

#[test]
fn a_release_removes_only_the_record_it_judged() {
    let store = Mem::default();
    let host = Host::new("a", 100);
    let l = lock(&store, &host);
    l.acquire(Mode::Free).expect("acquire");
    // Another owner's lock is refused, and only force removes it.
    let b = Host::new("b", 200);
    match lock(&store, &b).release(false) {
        Err(Error::UnableToRelease(r)) => assert_eq!(r.owner.pid, 100),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(store.keys.borrow().contains_key(KEY));
    // A release deletes the key and leaves its lease to run out: it may
    // carry other keys (see a_release_never_revokes_a_lease_it_did_not_grant;
    // a handle's own acquisition is released with its lease, by
    // release_held).
    let lease = store.lease_of(KEY);
    l.release(false).expect("release");
    assert!(!store.keys.borrow().contains_key(KEY));
    assert!(store.leases.borrow().contains(&lease));
    l.release(false)
        .expect("releasing an unheld lock is a no-op");
    // A conditional delete never removes a successor's record: the holder
    // judged revision R; meanwhile the key was rewritten.
    l.acquire(Mode::Free).expect("again");
    let judged = store.keys.borrow()[KEY].mod_revision;
    store.put(KEY, b"200 1800000000.0\n", 0);
    assert!(!store.delete_if(KEY, judged).expect("delete_if"));
    assert!(store.keys.borrow().contains_key(KEY));
}

#[test]
fn garbage_at_the_key_is_an_error_and_left_unless_forced() {
    let store = Mem::default();
    let host = Host::new("a", 100);
    store.put(KEY, b"not a lock\n", 0);
    let l = lock(&store, &host);
    assert!(matches!(
        l.acquire(Mode::ReplaceStale),
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(l.release(false), Err(Error::Malformed { .. })));
    assert_eq!(store.keys.borrow()[KEY].value, b"not a lock\n");
    assert_eq!(l.status().expect("status").verdict, Verdict::Malformed);
    l.acquire(Mode::Force).expect("force");
    assert_eq!(l.status().expect("status").verdict, Verdict::OwnedBySelf);
    // No lease was left behind by the attempts that lost.
    assert_eq!(store.leases.borrow().len(), 1);
}

#[test]
fn refresh_renews_only_our_own_live_lease() {
    let store = Mem::default();
    let host = Host::new("a", 100);
    let l = lock(&store, &host);
    assert!(matches!(l.refresh(), Err(Error::Lost { .. })));
    l.acquire(Mode::Free).expect("acquire");
    l.refresh().expect("ours");
    // Forced away by another host: lost.
    let b = Host::new("b", 200);
    lock(&store, &b).acquire(Mode::Force).expect("force");
    assert!(matches!(l.refresh(), Err(Error::Lost { .. })));
    // b's lease runs out: the key goes with it.
    store.expire(store.lease_of(KEY));
    assert!(matches!(
        lock(&store, &b).refresh(),
        Err(Error::Lost { .. })
    ));
}

#[test]
fn a_store_that_fails_gives_an_io_error_naming_the_lock() {
    let store = Mem::default();
    let host = Host::new("a", 100);
    *store.down.borrow_mut() = Some("connection refused".into());
    match lock(&store, &host).acquire(Mode::Free) {
        Err(Error::Io { path, message }) => {
            assert_eq!(path, PATH);
            assert!(message.contains("connection refused"), "{message}");
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert!(store.keys.borrow().is_empty());
}

#[test]
fn a_takeover_never_removes_a_racers_fresh_lock() {
    let store = Mem::default();
    let host = Host::new("a", 100);
    lock(&store, &host).acquire(Mode::Free).expect("100");
    host.kill(100);
    // 300 runs on this host; it takes the stale lock over between our
    // judgement of 100's record and our conditional delete of it.
    host.table.borrow_mut().insert(300, Liveness::Alive);
    let racer = "300 1800000000.0\nhost=a\nboot=boot-a\nstart=3000\n";
    *store.before_delete.borrow_mut() = Some(racer.as_bytes().to_vec());
    host.act_for(101);
    match lock(&store, &host).acquire(Mode::ReplaceStale) {
        Err(Error::UnableToAcquire(r)) => assert_eq!(r.owner.pid, 300, "{r:?}"),
        other => panic!("expected the racer's lock to stand, got {other:?}"),
    }
    assert_eq!(store.keys.borrow()[KEY].value, racer.as_bytes());
}

/// A create that landed but whose answer was lost, sent again by a client
/// that retries: the second answer shows the key, under our own lease. That
/// is our acquisition: it must stand (revoking "the unused lease" would
/// delete the key we hold and still report success).
#[test]
fn a_create_retried_after_its_answer_was_lost_is_ours_and_stays() {
    let store = Mem::default();
    let host = Host::new("a", 100);
    store.retries_creates.set(true);
    lock(&store, &host).acquire(Mode::Free).expect("acquired");
    assert!(
        store.keys.borrow().contains_key(KEY),
        "acquire succeeded but the key is gone"
    );
    let status = lock(&store, &host).status().expect("status");
    assert_eq!(status.verdict, Verdict::OwnedBySelf);
    lock(&store, &host).refresh().expect("its lease lives");
}

/// A release of what this handle created deletes exactly that revision and
/// revokes its lease; once another owner forced the lock away, it deletes
/// nothing and says who holds it.
#[test]
fn releasing_what_we_created_removes_only_that_revision() {
    let store = Mem::default();
    let host = Host::new("a", 100);
    let held = lock(&store, &host)
        .acquire_held(Mode::Free)
        .expect("acquired")
        .expect("created");
    let lease = store.lease_of(KEY);
    let before = store.requests.get();
    lock(&store, &host)
        .release_held(held, false)
        .expect("released");
    assert!(store.keys.borrow().is_empty());
    assert!(
        !store.leases.borrow().contains(&lease),
        "the lease was revoked"
    );
    assert_eq!(store.requests.get() - before, 2, "a delete and a revoke");
    // Taken again, then forced away by another host.
    let held = lock(&store, &host)
        .acquire_held(Mode::Free)
        .expect("acquired")
        .expect("created");
    let other = Host::new("b", 200);
    lock(&store, &other).acquire(Mode::Force).expect("forced");
    match lock(&store, &host).release_held(held, false) {
        Err(Error::UnableToRelease(r)) => assert_eq!(r.owner.pid, 200),
        other => panic!("expected a refusal naming 200, got {other:?}"),
    }
    assert!(
        store.keys.borrow().contains_key(KEY),
        "the forcer's lock stays"
    );
}

/// A forced release deletes the lock key only: the lease it is attached to
/// may carry other keys of whoever granted it (an application's session),
/// and revoking it would delete them too.
#[test]
fn a_release_never_revokes_a_lease_it_did_not_grant() {
    let store = Mem::default();
    let lease = store.grant(TTL).expect("lease");
    store.put("app/session", b"important", lease);
    store.put(KEY, b"12345 1800000000.0\nhost=elsewhere\n", lease);
    let host = Host::new("a", 100);
    lock(&store, &host).release(true).expect("forced");
    assert!(!store.keys.borrow().contains_key(KEY));
    assert!(
        store.keys.borrow().contains_key("app/session"),
        "another key of that lease was deleted"
    );
}

/// Our record at the key, but without a lease (rewritten by someone):
/// `refresh` says the lock is lost, not an I/O error a refresher would
/// retry for ever.
#[test]
fn refresh_of_our_record_without_a_lease_says_lost() {
    let store = Mem::default();
    let host = Host::new("a", 100);
    lock(&store, &host).acquire(Mode::Free).expect("acquired");
    let value = store.keys.borrow()[KEY].value.clone();
    store.put(KEY, &value, 0);
    match lock(&store, &host).refresh() {
        Err(Error::Lost { .. }) => {}
        other => panic!("expected Lost, got {other:?}"),
    }
}
