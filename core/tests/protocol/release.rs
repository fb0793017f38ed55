//! Releasing: only the record the owner judged, for itself or another process; reading the lock back (torn reads, contention limits).

use super::*;

#[test]
fn release_refuses_others_and_force_removes_anything_regular() {
    let f = Fixture::new();
    f.sys.set(700, Liveness::Alive, Some(9));
    let theirs = record(700, Some(9), "theirs");
    fs::write(f.path().join("x.lock"), &theirs).expect("plant");
    let lock = f.lock();
    match lock.release(false) {
        Err(Error::UnableToRelease(r)) => assert_eq!(r.owner.pid, 700),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        fs::read_to_string(f.path().join("x.lock")).expect("kept"),
        theirs
    );
    // Our pid but an earlier process (different start time): not ours.
    fs::write(f.path().join("x.lock"), record(ME, Some(6), "earlier")).expect("plant");
    assert!(matches!(
        lock.release(false),
        Err(Error::UnableToRelease(_))
    ));
    fs::write(f.path().join("x.lock"), "garbage").expect("plant");
    assert!(matches!(lock.release(false), Err(Error::Malformed { .. })));
    lock.release(true).expect("force");
    assert!(names(f.path()).is_empty());
}

/// A real directory whose first read of the lock returns a torn record, as
/// a reader racing a rewrite of the spare it had opened would see.
struct TornOnce {
    inner: StdDir,
    torn: Cell<bool>,
}

impl Dir for TornOnce {
    fn kind(&self, name: &str) -> std::io::Result<Option<lockfile_core::protocol::Kind>> {
        self.inner.kind(name)
    }
    fn read(&self, name: &str, limit: usize) -> std::io::Result<Vec<u8>> {
        let mut bytes = self.inner.read(name, limit)?;
        if name == "x.lock" && !self.torn.replace(true) {
            bytes.truncate(3);
        }
        Ok(bytes)
    }
    fn create(&self, name: &str, data: &[u8]) -> std::io::Result<()> {
        self.inner.create(name, data)
    }
    fn rewrite(&self, name: &str, data: &[u8]) -> std::io::Result<bool> {
        self.inner.rewrite(name, data)
    }
    fn link(&self, existing: &str, new: &str) -> std::io::Result<()> {
        self.inner.link(existing, new)
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, name: &str) -> std::io::Result<()> {
        self.inner.remove(name)
    }
    fn names(&self) -> std::io::Result<Vec<String>> {
        self.inner.names()
    }
}

/// A directory that records which of its calls the protocol makes.
struct Counting {
    inner: StdDir,
    calls: RefCell<Vec<&'static str>>,
}

impl Counting {
    fn took(&self) -> Vec<&'static str> {
        self.calls.take()
    }
    fn note(&self, call: &'static str) {
        self.calls.borrow_mut().push(call);
    }
}

impl Dir for Counting {
    fn kind(&self, name: &str) -> io::Result<Option<Kind>> {
        self.note("kind");
        self.inner.kind(name)
    }
    fn read(&self, name: &str, limit: usize) -> io::Result<Vec<u8>> {
        self.note("read");
        self.inner.read(name, limit)
    }
    fn create(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.note("create");
        self.inner.create(name, data)
    }
    fn rewrite(&self, name: &str, data: &[u8]) -> io::Result<bool> {
        self.note("rewrite");
        self.inner.rewrite(name, data)
    }
    fn link(&self, existing: &str, new: &str) -> io::Result<()> {
        self.note("link");
        self.inner.link(existing, new)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.note("rename");
        self.inner.rename(from, to)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.note("remove");
        self.inner.remove(name)
    }
    fn names(&self) -> io::Result<Vec<String>> {
        self.note("names");
        self.inner.names()
    }
}

#[test]
fn an_owners_release_compares_its_own_record_and_refuses_anything_else() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = Counting {
        inner: StdDir::new(tmp.path()),
        calls: RefCell::new(Vec::new()),
    };
    let sys = Sys::new();
    sys.run_as_owner();
    sys.set(700, Liveness::Alive, Some(9));
    let spare = Spare::default();
    let lock = Lock::new(&dir, "x.lock", "/d/x.lock", &sys).with_spare(&spare);
    for _ in 0..2 {
        lock.acquire(false, false).expect("acquire");
        lock.release(false).expect("release");
    }
    dir.took();
    // Warm: the spare is rewritten and linked, and, the lock now ours, the
    // token file looked for (a sequence must go on); the release looks at
    // the file's kind and length, reads it, finds exactly the record it
    // published, and unlinks it.
    lock.acquire(false, false).expect("acquire from the spare");
    assert_eq!(dir.took(), ["rewrite", "link", "kind"]);
    lock.release(false).expect("release");
    assert_eq!(dir.took(), ["kind", "read", "remove"]);
    assert!(!tmp.path().join("x.lock").exists());

    // Another process replaced our lock (by `force`): other bytes, so the
    // release takes the full look and refuses.
    lock.acquire(false, false).expect("acquire");
    let theirs = record(700, Some(9), "theirs");
    fs::write(tmp.path().join("theirs.tmp"), &theirs).expect("plant");
    fs::rename(tmp.path().join("theirs.tmp"), tmp.path().join("x.lock")).expect("force");
    match lock.release(false) {
        Err(Error::UnableToRelease(r)) => assert_eq!(r.owner.pid, 700),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        fs::read_to_string(tmp.path().join("x.lock")).expect("kept"),
        theirs
    );
    lock.release(true).expect("force");

    // Someone removed our live lock and put a FIFO in its place: the kind is
    // looked at before any open, so the release reports it and never blocks.
    lock.acquire(false, false).expect("acquire");
    fs::remove_file(tmp.path().join("x.lock")).expect("removed by hand");
    let made = std::process::Command::new("mkfifo")
        .arg(tmp.path().join("x.lock"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    dir.took();
    assert!(matches!(lock.release(false), Err(Error::NotAFile { .. })));
    assert!(!dir.took().contains(&"read"), "a FIFO is never opened");
    fs::remove_file(tmp.path().join("x.lock")).expect("clear");

    // A leased lock never takes the shortcut: it is released under a claim.
    let leased = Lock::new(&dir, "x.lock", "/d/x.lock", &sys)
        .with_spare(&spare)
        .with_lease(Some(60_000));
    leased.acquire(false, false).expect("acquire leased");
    dir.took();
    leased.release(false).expect("release leased");
    assert!(dir.took().contains(&"create"), "released under a claim");
    spare.discard(&dir);
}

#[test]
fn a_spare_shared_by_two_holders_never_lets_one_release_the_others_lock() {
    // `with_spare` asks for one Spare per lock, not per holder: two holders
    // of one process that share it must still exclude each other.
    let f = Fixture::new();
    f.sys.run_as_owner();
    f.sys.holder.set(Some(0xa));
    let a = f.spared();
    a.acquire(false, false).expect("holder a acquires");
    f.sys.holder.set(Some(0xb));
    let b = f.spared();
    assert!(matches!(
        b.acquire(false, false),
        Err(Error::UnableToAcquire(_))
    ));
    assert!(matches!(b.release(false), Err(Error::UnableToRelease(_))));
    assert!(f.path().join("x.lock").exists(), "a's lock is intact");
    f.sys.holder.set(Some(0xa));
    a.release(false).expect("a releases its own");
}

#[test]
fn a_write_into_the_lock_after_the_owners_read_back_leaves_no_tail_in_the_next() {
    // A labm8 writer that opened `x.lock` (O_TRUNC) before the owner's
    // release unlinks it writes into the spare afterwards; the next publish
    // looks at the spare's size and truncates the longer file.
    let f = Fixture::new();
    f.sys.run_as_owner();
    let lock = f.spared();
    cycling(&lock);
    lock.acquire(false, false).expect("acquire from the spare");
    let path = f.path().join("x.lock");
    let writer = std::rc::Rc::new(RefCell::new(None::<fs::File>));
    let held = writer.clone();
    f.sys.on("before-remove", move || {
        *held.borrow_mut() = Some(fs::File::create(&path).expect("labm8 opens with O_TRUNC"));
    });
    lock.release(false).expect("release");
    let long = format!("4242 1799999000.0 {}\n", "h".repeat(300));
    use std::io::Write as _;
    writer
        .borrow_mut()
        .take()
        .expect("opened")
        .write_all(long.as_bytes())
        .expect("labm8 writes late");
    lock.acquire(false, false).expect("acquire");
    let text = fs::read(f.path().join("x.lock")).expect("lock");
    let r = format::parse(&text).expect("a complete record");
    assert_eq!(r.pid, ME);
    assert!(!text.windows(3).any(|w| w == b"hhh"), "no tail of theirs");
    lock.release(false).expect("release");
}

#[test]
fn a_torn_read_is_read_again_before_it_counts_as_malformed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = TornOnce {
        inner: StdDir::new(tmp.path()),
        torn: Cell::new(false),
    };
    let sys = Sys::new();
    sys.set(300, Liveness::Alive, Some(3));
    fs::write(tmp.path().join("x.lock"), record(300, Some(3), "held")).expect("plant");
    let lock = Lock::new(&dir, "x.lock", "/d/x.lock", &sys);
    let status = lock.status().expect("status");
    assert!(dir.torn.get(), "the first read was torn");
    assert_eq!(status.verdict, Verdict::Held);
    assert_eq!(status.owner.map(|o| o.pid), Some(300));

    // A file that stays malformed is still reported as such.
    fs::write(tmp.path().join("x.lock"), "garbage\n").expect("plant");
    assert_eq!(lock.status().expect("status").verdict, Verdict::Malformed);
}

#[test]
fn too_many_abandoned_claims_are_a_contention_error_naming_the_files() {
    let f = Fixture::new();
    let mut target = record(200, Some(1), "stale");
    fs::write(f.path().join("x.lock"), &target).expect("plant");
    // 33 breakers that each crashed holding a claim on the one before.
    for i in 0..33 {
        let claim = format!(
            ".x.lock.break.{:016x}",
            format::fingerprint(target.as_bytes())
        );
        target = record(4_000_000 + i, Some(1), &format!("c{i}"));
        fs::write(f.path().join(claim), &target).expect("plant claim");
    }
    match f.lock().acquire(true, false) {
        Err(Error::Contended { message, .. }) => {
            assert!(message.contains("abandoned takeover claims"), "{message}");
            assert!(message.contains(".x.lock.break."), "{message}");
        }
        other => panic!("expected a contention error, got {other:?}"),
    }
}
