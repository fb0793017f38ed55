//! Interleavings and faults found by an adversarial review of claims that
//! expire with a lease, the check that a claim still stands, tokens with
//! every lease, and links answered with EIO: each test reproduces what went
//! wrong and checks what happens now. Threads stand for hosts; a hook at the
//! protocol's checkpoints pauses them.
#![allow(missing_docs, clippy::unwrap_used)]
use std::cell::{Cell, RefCell};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use lockfile_core::format::{self, Record};
use lockfile_core::protocol::{Dir, Error, Kind, Lock, System};
use lockfile_core::std_dir::StdDir;
use lockfile_core::{Identity, Liveness, Machine, ProcessInfo, Timestamp, Verdict};

type Hook = Box<dyn FnMut(&str) + Send>;

struct Sys {
    host: &'static str,
    pid: u32,
    /// Seconds added to the real clock.
    skew: Cell<u64>,
    counter: Cell<u64>,
    hook: RefCell<Option<Hook>>,
    dead: Vec<u32>,
}

impl Sys {
    fn new(host: &'static str, pid: u32) -> Self {
        Sys {
            host,
            pid,
            skew: Cell::new(0),
            counter: Cell::new(pid as u64 * 1000),
            hook: RefCell::new(None),
            dead: vec![],
        }
    }
}

impl System for Sys {
    fn current(&self) -> Identity {
        Identity {
            pid: self.pid,
            start_ticks: Some(7),
        }
    }
    fn runner(&self) -> Identity {
        self.current()
    }
    fn machine(&self) -> Machine {
        Machine {
            hostname: Some(self.host.into()),
            boot_id: Some(format!("boot-{}", self.host)),
            pid_namespace: Some(1),
        }
    }
    fn query(&self, pid: u32) -> ProcessInfo {
        let liveness = if self.dead.contains(&pid) {
            Liveness::Dead
        } else if pid == self.pid {
            Liveness::Alive
        } else {
            Liveness::Dead
        };
        ProcessInfo {
            liveness,
            start_ticks: if pid == self.pid { Some(7) } else { None },
            start_time: None,
        }
    }
    fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        Timestamp::new(d.as_secs() + self.skew.get(), d.subsec_nanos())
    }
    fn random(&self) -> u64 {
        let n = self.counter.get();
        self.counter.set(n + 1);
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn checkpoint(&self, name: &str) {
        if let Some(h) = self.hook.borrow_mut().as_mut() {
            h(name)
        }
    }
}

fn leased_record(host: &str, pid: u32, nonce: &str, lease: u64) -> String {
    format::serialize(&Record {
        pid,
        timestamp: Timestamp::new(1_796_000_000, 0),
        hostname: Some(host.into()),
        boot_id: Some(format!("boot-{host}")),
        start_ticks: Some(1),
        pid_namespace: Some(1),
        nonce: Some(nonce.into()),
        lease_ms: Some(lease),
        ..Record::default()
    })
}

fn age(path: &Path, secs: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    fs::File::open(path).unwrap().set_modified(t).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn lock_record(dir: &Path) -> Record {
    format::parse(&fs::read(dir.join("x.lock")).unwrap()).unwrap()
}

/// Finding: a claim that another host has already stepped over (claimed in
/// turn) still "stands" by `claim_stands` until the stepper's settle removes
/// it; a claimer waking inside the stepper's takeover acts anyway.
fn stepped_over_claim(
    a_leased: bool,
) -> (Result<(), Error>, Result<(), Error>, Record, Vec<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let root: PathBuf = tmp.path().to_path_buf();
    // A stale leased lock of host h0 (expired long ago).
    fs::write(root.join("x.lock"), leased_record("h0", 700, "stale", 1000)).unwrap();
    age(&root.join("x.lock"), 600);
    let (a_claimed_tx, a_claimed_rx) = mpsc::channel::<()>();
    let (go_a_tx, go_a_rx) = mpsc::channel::<()>();
    let (b_checked_tx, b_checked_rx) = mpsc::channel::<()>();
    let (go_b_tx, go_b_rx) = mpsc::channel::<()>();
    let (ra, rb) = std::thread::scope(|s| {
        let ra_root = root.clone();
        let a = s.spawn(move || {
            let dir = StdDir::new(&ra_root);
            let sys = Sys::new("ha", 100);
            let mut once = false;
            *sys.hook.borrow_mut() = Some(Box::new(move |name: &str| {
                if name == "after-claim" && !once {
                    once = true;
                    a_claimed_tx.send(()).unwrap();
                    go_a_rx.recv().unwrap(); // paused past the lease
                }
            }));
            let lock =
                Lock::new(&dir, "x.lock", "/d/x.lock", &sys).with_lease(a_leased.then_some(1000));
            lock.acquire(true, false)
        });
        a_claimed_rx.recv().unwrap();
        let rb_root = root.clone();
        let b = s.spawn(move || {
            let dir = StdDir::new(&rb_root);
            let sys = Sys::new("hb", 200);
            sys.skew.set(10); // 10 s later: A's claim (lease 1 s) has expired
            let mut once = false;
            *sys.hook.borrow_mut() = Some(Box::new(move |name: &str| {
                if name == "after-claim-check" && !once {
                    once = true;
                    b_checked_tx.send(()).unwrap();
                    go_b_rx.recv().unwrap();
                }
            }));
            let lock = Lock::new(&dir, "x.lock", "/d/x.lock", &sys).with_lease(Some(1000));
            lock.acquire(true, false)
        });
        // B has claimed A's claim, verified its chain and checked its claim.
        b_checked_rx.recv().unwrap();
        eprintln!("while B is mid-takeover: {:?}", names(&root));
        // A wakes now: its claim file is still there.
        go_a_tx.send(()).unwrap();
        let ra = a.join().unwrap();
        go_b_tx.send(()).unwrap();
        let rb = b.join().unwrap();
        (ra, rb)
    });
    (ra, rb, lock_record(&root), names(&root))
}

/// A directory with the faults a network file system shows, each off until
/// a test sets it.
struct Faulty {
    dir: StdDir,
    /// The next this many reads of claim files fail with EIO.
    fail_claim_reads: Cell<u32>,
    /// Creating a file fails with ENOSPC once the lock exists.
    fail_creates_after_lock: Cell<bool>,
    /// The next this many links happen yet answer EIO, and the look that
    /// follows (a read of a name containing `read_match`) fails with ESTALE.
    linked_but_eio: std::sync::Arc<std::sync::atomic::AtomicU32>,
    fail_reads: Cell<u32>,
    read_match: &'static str,
    /// Every link fails with EIO, linking nothing.
    always_eio: Cell<bool>,
}

impl Faulty {
    fn new(tmp: &Path) -> Self {
        Faulty {
            dir: StdDir::new(tmp),
            fail_claim_reads: Cell::new(0),
            fail_creates_after_lock: Cell::new(false),
            linked_but_eio: std::sync::Arc::default(),
            fail_reads: Cell::new(0),
            read_match: "x.lock",
            always_eio: Cell::new(false),
        }
    }
}

fn take(counter: &Cell<u32>) -> bool {
    let left = counter.get();
    counter.set(left.saturating_sub(1));
    left > 0
}

impl Dir for Faulty {
    fn kind(&self, n: &str) -> io::Result<Option<Kind>> {
        self.dir.kind(n)
    }
    fn read(&self, n: &str, l: usize) -> io::Result<Vec<u8>> {
        if n.contains(".break.") && take(&self.fail_claim_reads) {
            return Err(io::Error::from_raw_os_error(5));
        }
        if n.contains(self.read_match) && take(&self.fail_reads) {
            return Err(io::Error::from_raw_os_error(116));
        }
        self.dir.read(n, l)
    }
    fn read_modified(&self, n: &str, l: usize) -> io::Result<(Vec<u8>, Option<Timestamp>)> {
        self.dir.read_modified(n, l)
    }
    fn touch(&self, n: &str) -> io::Result<()> {
        self.dir.touch(n)
    }
    fn create(&self, n: &str, d: &[u8]) -> io::Result<()> {
        if self.fail_creates_after_lock.get() && self.dir.kind("x.lock")?.is_some() {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.dir.create(n, d)
    }
    fn link(&self, a: &str, b: &str) -> io::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.always_eio.get() {
            return Err(io::Error::from_raw_os_error(5));
        }
        let r = self.dir.link(a, b);
        if r.is_ok() && self.linked_but_eio.load(SeqCst) > 0 {
            self.linked_but_eio.fetch_sub(1, SeqCst);
            self.fail_reads.set(1);
            return Err(io::Error::from_raw_os_error(5));
        }
        r
    }
    fn rename(&self, a: &str, b: &str) -> io::Result<()> {
        self.dir.rename(a, b)
    }
    fn remove(&self, n: &str) -> io::Result<()> {
        self.dir.remove(n)
    }
    fn names(&self) -> io::Result<Vec<String>> {
        self.dir.names()
    }
}

/// A claimer paused past the lease its claim carries wakes while another
/// host, having claimed that claim, is mid-takeover: the claim file is still
/// there (it is removed only when the other host settles), so the claim
/// "stood", and both renamed. A claim of our claim now means stepped over.
#[test]
fn a_claimer_waking_inside_anothers_step_over_does_not_act() {
    for a_leased in [true, false] {
        let (ra, rb, rec, left) = stepped_over_claim(a_leased);
        assert!(
            !(ra.is_ok() && rb.is_ok()),
            "A leased {a_leased}: both acquired: A {ra:?}, B {rb:?}"
        );
        assert!(rb.is_ok(), "A leased {a_leased}: B {rb:?}");
        assert_eq!(rec.pid, 200, "B holds the lock");
        assert_eq!(
            rec.token,
            Some(1),
            "B's takeover of a leased lock has a token"
        );
        assert_eq!(left, [".x.lock.token", "x.lock"], "A leased {a_leased}");
    }
}

fn flaky(tmp: &Path, fail_claim_reads: u32, fail_creates_after_lock: bool) -> Faulty {
    let d = Faulty::new(tmp);
    d.fail_claim_reads.set(fail_claim_reads);
    d.fail_creates_after_lock.set(fail_creates_after_lock);
    d
}

/// One transient EIO reading our own claim was taken as "stepped over": the
/// claim leaked, and our own live claim then refused us (and every process
/// of this host) for our lifetime. Now the read is retried.
#[test]
fn a_transient_error_reading_our_claim_neither_leaks_it_nor_wedges_the_lock() {
    // Releasing our own leased lock (always under a claim).
    let tmp = tempfile::tempdir().unwrap();
    let d = flaky(tmp.path(), 0, false);
    let sys = Sys::new("ha", 100);
    let lock = Lock::new(&d, "x.lock", "/d/x.lock", &sys).with_lease(Some(10_000));
    lock.acquire(false, false).unwrap();
    d.fail_claim_reads.set(1);
    lock.release(false).unwrap();
    assert_eq!(names(tmp.path()), [".x.lock.token"]);
    // Taking over a stale lock of this host.
    let tmp = tempfile::tempdir().unwrap();
    let d = flaky(tmp.path(), 1, false);
    fs::write(
        tmp.path().join("x.lock"),
        leased_record("ha", 700, "dead", 1000).replace("lease_ms=1000\n", ""),
    )
    .unwrap();
    let sys = Sys::new("ha", 100);
    Lock::new(&d, "x.lock", "/d/x.lock", &sys)
        .acquire(true, false)
        .unwrap();
    assert_eq!(lock_record(tmp.path()).pid, 100);
    assert_eq!(names(tmp.path()), ["x.lock"], "no claim left");
}

/// The same error in the claim of a token's re-issue reported `Lost` while
/// the lock stayed ours, with a token already issued, and a leaked claim.
#[test]
fn a_transient_error_in_a_reissue_does_not_report_a_held_lock_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let d = flaky(tmp.path(), 0, false);
    let sys = Sys::new("ha", 100);
    let root = tmp.path().to_path_buf();
    let mut once = false;
    *sys.hook.borrow_mut() = Some(Box::new(move |name: &str| {
        if name == "before-publish" && !once {
            once = true;
            // Another acquisition issued token 1 and released meanwhile.
            fs::write(root.join(".x.lock.token"), "1\n").unwrap();
        }
    }));
    let lock = Lock::new(&d, "x.lock", "/d/x.lock", &sys).with_lease(Some(10_000));
    d.fail_claim_reads.set(1);
    lock.acquire(false, false).unwrap();
    assert_eq!(lock_record(tmp.path()).token, Some(2));
    assert_eq!(
        fs::read_to_string(tmp.path().join(".x.lock.token")).unwrap(),
        "2\n"
    );
    assert_eq!(names(tmp.path()), [".x.lock.token", "x.lock"]);
}

/// On a full disk the token cannot be recorded, nor the claim created that
/// withdrawing a leased lock needs: the lock stays held, and the error says
/// so rather than only why the acquisition failed.
#[test]
fn a_withdrawal_that_fails_says_the_lock_is_still_held() {
    let tmp = tempfile::tempdir().unwrap();
    let d = flaky(tmp.path(), 0, true);
    let sys = Sys::new("ha", 100);
    let lock = Lock::new(&d, "x.lock", "/d/x.lock", &sys).with_lease(Some(10_000));
    match lock.acquire(false, false) {
        Err(Error::Io { message, .. }) => assert!(message.contains("still held"), "{message}"),
        other => panic!("expected an I/O error saying the lock is still held, got {other:?}"),
    }
    assert_eq!(lock.status().unwrap().verdict, Verdict::OwnedBySelf);
}

fn link_eio(tmp: &Path, read_match: &'static str) -> Faulty {
    Faulty {
        read_match,
        ..Faulty::new(tmp)
    }
}

/// A link that happened but answered EIO, and a look that failed too: the
/// acquisition found its own record later and returned without recording
/// its token, so the next acquisition was issued the same token.
#[test]
fn a_link_that_happened_but_answered_eio_still_records_its_token() {
    let tmp = tempfile::tempdir().unwrap();
    let d = link_eio(tmp.path(), "x.lock");
    d.linked_but_eio
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let sys = Sys::new("ha", 100);
    let lock = Lock::new(&d, "x.lock", "/d/x.lock", &sys).with_lease(Some(10_000));
    lock.acquire(false, false).unwrap();
    assert_eq!(lock_record(tmp.path()).token, Some(1));
    lock.release(false).unwrap();
    let other_sys = Sys::new("ha", 300);
    let other_dir = StdDir::new(tmp.path());
    let other = Lock::new(&other_dir, "x.lock", "/d/x.lock", &other_sys).with_lease(Some(10_000));
    other.acquire(false, false).unwrap();
    assert_eq!(
        lock_record(tmp.path()).token,
        Some(2),
        "token 1 issued twice"
    );
}

/// The same for a claim: it was found "held by ourselves", and leaked.
#[test]
fn a_claim_link_that_happened_but_answered_eio_is_our_claim() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("x.lock"),
        leased_record("ha", 700, "dead", 1000).replace("lease_ms=1000\n", ""),
    )
    .unwrap();
    let d = link_eio(tmp.path(), ".break.");
    let sys = Sys::new("ha", 100);
    let armed = std::sync::Arc::clone(&d.linked_but_eio);
    let mut publishes = 0;
    *sys.hook.borrow_mut() = Some(Box::new(move |name: &str| {
        // The claim's publish is the second (the first is the fast path's).
        if name == "before-publish" {
            publishes += 1;
            if publishes == 2 {
                armed.store(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }));
    Lock::new(&d, "x.lock", "/d/x.lock", &sys)
        .acquire(true, false)
        .unwrap();
    assert_eq!(lock_record(tmp.path()).pid, 100);
    assert_eq!(names(tmp.path()), ["x.lock"], "no claim left");
}

/// A link that always answers EIO is reported as the I/O error it is, not
/// as contention (which `--wait` would retry for ever).
#[test]
fn a_link_that_always_answers_eio_is_reported_as_an_io_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = link_eio(tmp.path(), "-");
    d.always_eio.set(true);
    let sys = Sys::new("ha", 100);
    match Lock::new(&d, "x.lock", "/d/x.lock", &sys).acquire(false, false) {
        Err(Error::Io { message, .. }) => assert!(message.contains("link"), "{message}"),
        other => panic!("expected the link's I/O error, got {other:?}"),
    }
}

/// Our own leased lock whose lease ran out: `status` said `owned-by-self`
/// while `refresh` said lost, and acquiring again was a no-op that left the
/// lock free for any other host to take. Now `status` says the lease ran
/// out, and acquiring again takes the lock anew, with a new token.
#[test]
fn our_own_expired_lease_is_reported_and_acquiring_again_takes_it_anew() {
    let tmp = tempfile::tempdir().unwrap();
    let d = StdDir::new(tmp.path());
    let sys = Sys::new("ha", 100);
    let lock = Lock::new(&d, "x.lock", "/d/x.lock", &sys).with_lease(Some(1000));
    lock.acquire(false, false).unwrap();
    let first = lock_record(tmp.path())
        .token
        .expect("a leased lock has a token");
    let fresh = lock.status().unwrap();
    assert_eq!(fresh.verdict, Verdict::OwnedBySelf);
    let owner = fresh.owner.expect("an owner");
    assert_eq!(owner.lease_ms, Some(1000));
    let expires = owner.expires.expect("a leased lock expires");
    assert!(millis(expires) - millis(sys.now()) <= 1000);

    age(&tmp.path().join("x.lock"), 10);
    let old = lock.status().unwrap();
    assert_eq!(old.verdict, Verdict::OwnedBySelf);
    assert_eq!(
        old.cause,
        lockfile_core::Cause::LeaseExpired,
        "{}",
        old.reason
    );
    assert!(old.reason.contains("ran out"), "{}", old.reason);
    assert!(matches!(lock.refresh(), Err(Error::Lost { .. })));

    lock.acquire(false, false).unwrap();
    let again = lock_record(tmp.path());
    assert_eq!(again.pid, 100);
    assert_eq!(again.token, Some(first + 1), "taken anew, with a new token");
    lock.refresh().expect("the new lease is ours");
    assert_eq!(lock.status().unwrap().cause, lockfile_core::Cause::Ours);
}

fn millis(t: Timestamp) -> i128 {
    i128::from(t.seconds) * 1000 + i128::from(t.nanos / 1_000_000)
}

/// A directory that, once armed, runs `then` (once) just before the first
/// look at a claim name that does not exist: the moment a claimer checks
/// whether its claim was claimed in turn.
struct Interposed<F: FnMut()> {
    dir: StdDir,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    then: RefCell<Option<F>>,
}

impl<F: FnMut()> Interposed<F> {
    fn interpose(&self, n: &str) {
        if self.armed.load(std::sync::atomic::Ordering::SeqCst)
            && n.contains(".break.")
            && !self.dir.path().join(n).exists()
        {
            if let Some(mut f) = self.then.borrow_mut().take() {
                f();
            }
        }
    }
}

impl<F: FnMut()> Dir for Interposed<F> {
    fn kind(&self, n: &str) -> io::Result<Option<Kind>> {
        self.interpose(n);
        self.dir.kind(n)
    }
    fn read(&self, n: &str, l: usize) -> io::Result<Vec<u8>> {
        self.interpose(n);
        self.dir.read(n, l)
    }
    fn read_modified(&self, n: &str, l: usize) -> io::Result<(Vec<u8>, Option<Timestamp>)> {
        self.interpose(n);
        self.dir.read_modified(n, l)
    }
    fn touch(&self, n: &str) -> io::Result<()> {
        self.dir.touch(n)
    }
    fn create(&self, n: &str, d: &[u8]) -> io::Result<()> {
        self.dir.create(n, d)
    }
    fn link(&self, a: &str, b: &str) -> io::Result<()> {
        self.dir.link(a, b)
    }
    fn rename(&self, a: &str, b: &str) -> io::Result<()> {
        self.dir.rename(a, b)
    }
    fn remove(&self, n: &str) -> io::Result<()> {
        self.dir.remove(n)
    }
    fn names(&self) -> io::Result<Vec<String>> {
        self.dir.names()
    }
}

/// Found by the simulator: a claimer checking that its claim stands read
/// its own claim (still there), then looked for a claim on it; another host
/// stepped over it in between, acted, and removed both claims, so the look
/// found nothing and the claimer renamed over the new holder's lock. Now
/// the claim on our claim is looked for first (the stepper removes ours
/// before its own, so either look catches it).
#[test]
fn a_whole_step_over_between_the_checks_two_looks_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    fs::write(root.join("x.lock"), leased_record("h0", 700, "stale", 1000)).unwrap();
    age(&root.join("x.lock"), 600);
    let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let b_root = root.clone();
    let b_result = std::rc::Rc::new(RefCell::new(None));
    let b_out = b_result.clone();
    let dir = Interposed {
        dir: StdDir::new(&root),
        armed: armed.clone(),
        then: RefCell::new(Some(move || {
            // Host B, 10 s later: A's claim (lease 1 s) has run out.
            let r = std::thread::scope(|s| {
                s.spawn(|| {
                    let dir = StdDir::new(&b_root);
                    let sys = Sys::new("hb", 200);
                    sys.skew.set(10);
                    Lock::new(&dir, "x.lock", "/d/x.lock", &sys)
                        .with_lease(Some(1000))
                        .acquire(true, false)
                })
                .join()
                .unwrap()
            });
            *b_out.borrow_mut() = Some(r);
        })),
    };
    let sys = Sys::new("ha", 100);
    let arm = armed.clone();
    *sys.hook.borrow_mut() = Some(Box::new(move |name: &str| {
        if name == "before-publish" {
            arm.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }));
    let ra = Lock::new(&dir, "x.lock", "/d/x.lock", &sys)
        .with_lease(Some(1000))
        .acquire(true, false);
    let rb = b_result
        .borrow_mut()
        .take()
        .expect("B ran inside A's check");
    assert!(rb.is_ok(), "B stepped over A's expired claim: {rb:?}");
    assert!(
        !(ra.is_ok() && rb.is_ok()),
        "both acquired: A {ra:?}, B {rb:?}"
    );
    assert_eq!(lock_record(&root).pid, 200, "B's lock stands");
}
