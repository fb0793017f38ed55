//! The protocol on a real directory, natively, with a process table given as
//! data: every branch of acquire, takeover, release and sweep.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs;
use std::io;

use lockfile_core::format::{self, Record};
use lockfile_core::protocol::{Dir, Error, Kind, Lock, Spare, System};
use lockfile_core::std_dir::StdDir;
use lockfile_core::{Cause, Identity, Liveness, Machine, ProcessInfo, Timestamp, Verdict};

const ME: u32 = 100;
const RUNNER: u32 = 101;

/// Checkpoint names and what to do at the first of them reached.
type Hook = (Vec<String>, Box<dyn FnMut()>);

struct Sys {
    table: RefCell<HashMap<u32, ProcessInfo>>,
    /// The process running the protocol: RUNNER (acting for ME, as the CLI
    /// does), or ME itself (a library handle).
    runner: Cell<Identity>,
    counter: Cell<u64>,
    /// Runs at a named checkpoint: lets a test act in the middle of an operation.
    hook: RefCell<Option<Hook>>,
    /// The holder tag within ME (a plugin of an application), if any.
    holder: Cell<Option<u64>>,
}

impl Sys {
    fn new() -> Self {
        let sys = Sys {
            table: RefCell::new(HashMap::new()),
            runner: Cell::new(Identity {
                pid: RUNNER,
                start_ticks: Some(8),
            }),
            counter: Cell::new(1),
            hook: RefCell::new(None),
            holder: Cell::new(None),
        };
        sys.set(ME, Liveness::Alive, Some(7));
        sys.set(RUNNER, Liveness::Alive, Some(8));
        sys
    }

    fn set(&self, pid: u32, liveness: Liveness, start_ticks: Option<u64>) {
        self.table.borrow_mut().insert(
            pid,
            ProcessInfo {
                liveness,
                start_ticks,
                start_time: None,
            },
        );
    }

    /// The protocol runs in ME itself, as a library handle does.
    fn run_as_owner(&self) {
        self.runner.set(self.current());
    }

    fn off(&self) {
        *self.hook.borrow_mut() = None;
    }

    fn on(&self, checkpoint: &str, f: impl FnMut() + 'static) {
        self.on_any(&[checkpoint], f);
    }

    fn on_any(&self, checkpoints: &[&str], f: impl FnMut() + 'static) {
        let names = checkpoints.iter().map(|c| (*c).to_owned()).collect();
        *self.hook.borrow_mut() = Some((names, Box::new(f)));
    }
}

impl System for Sys {
    fn current(&self) -> Identity {
        Identity {
            pid: ME,
            start_ticks: Some(7),
        }
    }
    fn runner(&self) -> Identity {
        self.runner.get()
    }
    fn machine(&self) -> Machine {
        Machine {
            hostname: Some("here".into()),
            boot_id: Some("boot".into()),
            pid_namespace: Some(1),
        }
    }
    fn query(&self, pid: u32) -> ProcessInfo {
        self.table
            .borrow()
            .get(&pid)
            .copied()
            .unwrap_or(ProcessInfo {
                liveness: Liveness::Dead,
                start_ticks: None,
                start_time: None,
            })
    }
    fn now(&self) -> Timestamp {
        Timestamp::new(1_800_000_000, 0)
    }
    fn random(&self) -> u64 {
        let n = self.counter.get();
        self.counter.set(n + 1);
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn holder(&self) -> Option<u64> {
        self.holder.get()
    }
    fn checkpoint(&self, name: &str) {
        let mut hook = self.hook.borrow_mut();
        if let Some((at, f)) = hook.as_mut() {
            if at.iter().any(|a| a == name) {
                f();
            }
        }
    }
}

/// A real temporary directory, a process table, and a spare for one lock.
struct Fixture {
    tmp: tempfile::TempDir,
    dir: StdDir,
    sys: Sys,
    spare: Spare,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = StdDir::new(tmp.path());
        Fixture {
            tmp,
            dir,
            sys: Sys::new(),
            spare: Spare::default(),
        }
    }

    fn path(&self) -> &std::path::Path {
        self.tmp.path()
    }

    /// `x.lock`, as a one-shot user opens it.
    fn lock(&self) -> Lock<'_, StdDir, Sys> {
        Lock::new(&self.dir, "x.lock", "/d/x.lock", &self.sys)
    }

    /// `x.lock` through a handle that keeps a spare once it cycles.
    fn spared(&self) -> Lock<'_, StdDir, Sys> {
        self.lock().with_spare(&self.spare)
    }
}

fn record(pid: u32, ticks: Option<u64>, nonce: &str) -> String {
    format::serialize(&Record {
        pid,
        timestamp: Timestamp::new(1_799_999_000, 0),
        hostname: Some("here".into()),
        boot_id: Some("boot".into()),
        start_ticks: ticks,
        pid_namespace: Some(1),
        nonce: Some(nonce.into()),
        ..Record::default()
    })
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn owner(dir: &std::path::Path) -> u32 {
    format::parse(&fs::read(dir.join("x.lock")).expect("lock"))
        .expect("parses")
        .pid
}

#[test]
fn fresh_acquire_publishes_a_complete_record_and_no_temp() {
    let f = Fixture::new();
    let lock = f.lock();
    // At the moment of publishing, the lock is absent and the temp is complete.
    let path = f.path().to_path_buf();
    f.sys.on("before-publish", move || {
        assert!(!path.join("x.lock").exists());
        let temps: Vec<_> = names(&path);
        assert_eq!(temps.len(), 1);
        assert!(
            temps[0].starts_with(&format!(".x.lock.{RUNNER}.")),
            "{temps:?}"
        );
        let r = format::parse(&fs::read(path.join(&temps[0])).expect("temp")).expect("complete");
        assert_eq!(r.pid, ME);
    });
    lock.acquire(false, false).expect("acquire");
    // The hook is about the acquire's publish. The release below acts for
    // ME from RUNNER, so it publishes a claim of its own first.
    f.sys.off();
    assert_eq!(names(f.path()), vec!["x.lock"]);
    let r = format::parse(&fs::read(f.path().join("x.lock")).expect("lock")).expect("parse");
    assert_eq!((r.pid, r.start_ticks), (ME, Some(7)));
    assert_eq!(r.hostname.as_deref(), Some("here"));
    assert_eq!(lock.status().expect("status").verdict, Verdict::OwnedBySelf);
    lock.release(false).expect("release");
    assert!(names(f.path()).is_empty());
}

#[test]
fn a_racer_that_publishes_first_wins() {
    let f = Fixture::new();
    f.sys.set(300, Liveness::Alive, Some(3));
    let path = f.path().to_path_buf();
    f.sys.on("before-publish", move || {
        fs::write(path.join("x.lock"), record(300, Some(3), "other")).expect("racer");
    });
    let lock = f.lock();
    match lock.acquire(false, false) {
        Err(Error::UnableToAcquire(r)) => assert_eq!(r.owner.pid, 300),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(names(f.path()), vec!["x.lock"], "our temp is gone");
}

#[test]
fn stale_takeover_needs_replace_stale_and_cleans_up() {
    let f = Fixture::new();
    fs::write(f.path().join("x.lock"), record(200, Some(1), "dead")).expect("plant");
    let lock = f.lock();
    match lock.acquire(false, false) {
        Err(Error::UnableToAcquire(r)) => assert_eq!(r.verdict, Verdict::Stale),
        other => panic!("expected a refusal, got {other:?}"),
    }
    lock.acquire(true, false).expect("takeover");
    assert_eq!(owner(f.path()), ME);
    assert_eq!(names(f.path()), vec!["x.lock"]);
}

#[test]
fn a_live_claimer_blocks_and_a_dead_one_is_superseded() {
    let f = Fixture::new();
    let stale = record(200, Some(1), "dead");
    fs::write(f.path().join("x.lock"), &stale).expect("plant");
    let claim = format!(
        ".x.lock.break.{:016x}",
        format::fingerprint(stale.as_bytes())
    );
    fs::write(f.path().join(&claim), record(400, Some(4), "claimer")).expect("claim");
    f.sys.set(400, Liveness::Alive, Some(4));
    let lock = f.lock();
    match lock.acquire(true, false) {
        Err(Error::UnableToAcquire(r)) => {
            assert_eq!(r.owner.pid, 400);
            assert!(
                r.reason.contains("replacing the stale lock"),
                "{}",
                r.reason
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        fs::read_to_string(f.path().join("x.lock")).expect("lock"),
        stale
    );
    // The claimer dies mid-takeover: its claim is claimed in turn.
    f.sys.set(400, Liveness::Dead, None);
    lock.acquire(true, false)
        .expect("takeover over an abandoned claim");
    assert_eq!(owner(f.path()), ME);
    assert_eq!(names(f.path()), vec!["x.lock"], "both claims removed");
}

#[test]
fn a_lock_replaced_after_our_claim_is_left_alone() {
    let f = Fixture::new();
    f.sys.set(500, Liveness::Alive, Some(5));
    fs::write(f.path().join("x.lock"), record(200, Some(1), "dead")).expect("plant");
    // Someone (with force) takes the lock while we hold the claim.
    let path = f.path().to_path_buf();
    let fresh = record(500, Some(5), "fresh");
    let planted = fresh.clone();
    f.sys.on("after-claim", move || {
        fs::write(path.join("x.lock"), &planted).expect("replace");
    });
    let lock = f.lock();
    match lock.acquire(true, false) {
        Err(Error::UnableToAcquire(r)) => assert_eq!(r.owner.pid, 500),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        fs::read_to_string(f.path().join("x.lock")).expect("lock"),
        fresh
    );
    assert_eq!(names(f.path()), vec!["x.lock"], "our claim is withdrawn");
}

#[test]
fn sweep_removes_inert_claims_and_dead_temps_only() {
    let f = Fixture::new();
    f.sys.set(600, Liveness::Alive, Some(6));
    fs::write(f.path().join("x.lock"), record(200, Some(1), "dead")).expect("plant");
    let junk = [
        ".x.lock.break.00000000000000aa",       // target gone: inert
        ".x.lock.4194303.00000000000000bb.tmp", // dead runner
    ];
    let keep = [
        ".x.lock.600.00000000000000cc.tmp", // live runner
        ".y.lock.break.00000000000000dd",   // another lock's
        "unrelated",
    ];
    for n in junk.iter().chain(&keep) {
        fs::write(f.path().join(n), record(600, Some(6), n)).expect("plant");
    }
    // Written on another host: its runner's pid means nothing here.
    let elsewhere = ".x.lock.4194302.00000000000000ee.tmp";
    let mut foreign = format::parse(record(600, Some(6), "far").as_bytes()).expect("record");
    foreign.hostname = Some("elsewhere".into());
    fs::write(f.path().join(elsewhere), format::serialize(&foreign)).expect("plant");
    f.lock().acquire(true, false).expect("takeover");
    let mut expected: Vec<String> = keep.iter().map(|s| (*s).to_owned()).collect();
    expected.push("x.lock".into());
    expected.push(elsewhere.into());
    expected.sort();
    assert_eq!(names(f.path()), expected);
}

#[test]
fn a_release_for_another_process_sweeps_only_after_stepping_over_an_abandoned_claim() {
    let f = Fixture::new();
    // ME's lock, released by RUNNER on ME's behalf (the CLI's `release`).
    let mine = record(ME, Some(7), "mine");
    let dead_temp = ".x.lock.4194303.00000000000000bb.tmp";
    fs::write(f.path().join(dead_temp), record(4_194_303, Some(1), "t")).expect("plant");

    // No sign of a crash: the directory is not listed, the leftover stays
    // (a sweep costs a system call per entry under WASI).
    fs::write(f.path().join("x.lock"), &mine).expect("plant");
    f.lock().release(false).expect("release for ME");
    assert_eq!(names(f.path()), vec![dead_temp.to_owned()]);

    // A releaser died holding its claim on ME's lock: the next release
    // steps over that claim, removes it, and sweeps what the crash left.
    fs::write(f.path().join("x.lock"), &mine).expect("plant");
    let abandoned = format!(
        ".x.lock.break.{:016x}",
        format::fingerprint(mine.as_bytes())
    );
    fs::write(f.path().join(&abandoned), record(4_194_303, Some(1), "c")).expect("claim");
    f.lock()
        .release(false)
        .expect("release over the abandoned claim");
    assert_eq!(
        names(f.path()),
        Vec::<String>::new(),
        "claim and temp swept"
    );
}

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

#[test]
fn holders_within_one_process_exclude_each_other() {
    let f = Fixture::new();
    f.sys.run_as_owner();
    let lock = f.lock();
    // Plugin A (tag 0xa) takes the lock: the record names ME and the tag.
    f.sys.holder.set(Some(0xa));
    lock.acquire(false, false).expect("A acquires");
    let text = fs::read_to_string(f.path().join("x.lock")).expect("lock");
    assert!(text.contains("holder=000000000000000a"), "{text}");
    assert_eq!(lock.status().expect("status").verdict, Verdict::OwnedBySelf);
    // Plugin B (tag 0xb) of the same process: held, not ours, not stale.
    f.sys.holder.set(Some(0xb));
    let status = lock.status().expect("status");
    assert_eq!(
        (status.verdict, status.cause),
        (Verdict::Held, Cause::OtherHolder)
    );
    assert!(
        status.reason.contains("holder 000000000000000a"),
        "{}",
        status.reason
    );
    match lock.acquire(true, false) {
        Err(Error::UnableToAcquire(r)) => assert_eq!(r.cause, Cause::OtherHolder),
        other => panic!("B must be refused, got {other:?}"),
    }
    assert!(matches!(
        lock.release(false),
        Err(Error::UnableToRelease(_))
    ));
    // The process as a whole (no tag) does not own a plugin's lock either.
    f.sys.holder.set(None);
    assert!(matches!(
        lock.acquire(false, false),
        Err(Error::UnableToAcquire(_))
    ));
    assert!(fs::read_to_string(f.path().join("x.lock"))
        .expect("kept")
        .contains("holder=000000000000000a"));
    // A releases; then B takes it, and the process-wide handle is refused.
    f.sys.holder.set(Some(0xa));
    lock.release(false).expect("A releases");
    f.sys.holder.set(Some(0xb));
    lock.acquire(false, false).expect("B acquires");
    f.sys.holder.set(None);
    assert_eq!(lock.status().expect("status").cause, Cause::OtherHolder);
}

#[test]
fn force_replaces_malformed_and_live_locks_atomically() {
    let f = Fixture::new();
    fs::write(f.path().join("x.lock"), "\0\0\0").expect("plant");
    let lock = f.lock();
    assert!(matches!(
        lock.acquire(true, false),
        Err(Error::Malformed { .. })
    ));
    lock.acquire(false, true).expect("force");
    assert_eq!(owner(f.path()), ME);
    assert_eq!(names(f.path()), vec!["x.lock"]);
}

fn spares(dir: &std::path::Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with(&format!(".x.lock.{RUNNER}.")) && n.ends_with(".tmp"))
        .collect()
}

fn ino(path: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).expect("metadata");
    (m.ino(), m.nlink())
}

#[test]
fn a_cycling_handle_publishes_from_one_spare_inode() {
    let f = Fixture::new();
    let lock = f.spared();

    // One acquire and release keeps nothing: one-shot users leave no files.
    lock.acquire(false, false).expect("acquire");
    assert_eq!(names(f.path()), vec!["x.lock"]);
    lock.release(false).expect("release");
    assert!(names(f.path()).is_empty());
    assert_eq!(f.spare.name(), None);

    // From the second cycle on, the lock is the spare's inode, linked twice.
    lock.acquire(false, false).expect("acquire 2");
    let kept = spares(f.path());
    assert_eq!(kept.len(), 1, "{:?}", names(f.path()));
    assert_eq!(f.spare.name().as_deref(), Some(kept[0].as_str()));
    let (inode, links) = ino(&f.path().join("x.lock"));
    assert_eq!(links, 2);
    assert_eq!(ino(&f.path().join(&kept[0])), (inode, 2));
    let first = fs::read(f.path().join("x.lock")).expect("lock");
    lock.release(false).expect("release 2");
    assert_eq!(names(f.path()), kept, "release unlinks the lock only");
    assert_eq!(ino(&f.path().join(&kept[0])), (inode, 1));

    // The next cycle rewrites the same inode with a new record.
    lock.acquire(false, false).expect("acquire 3");
    assert_eq!(ino(&f.path().join("x.lock")), (inode, 2));
    let second = fs::read(f.path().join("x.lock")).expect("lock");
    assert_ne!(first, second, "a fresh nonce each time");
    let r = format::parse(&second).expect("complete record");
    assert_eq!((r.pid, r.start_ticks), (ME, Some(7)));
    lock.release(false).expect("release 3");

    f.spare.discard(&f.dir);
    assert!(names(f.path()).is_empty());
}

#[test]
fn acquiring_again_while_held_never_writes_the_published_lock() {
    let f = Fixture::new();
    let lock = f.spared();
    lock.acquire(false, false).expect("acquire");
    lock.release(false).expect("release");
    lock.acquire(false, false).expect("acquire 2");
    let held = fs::read(f.path().join("x.lock")).expect("lock");
    let (inode, _) = ino(&f.path().join("x.lock"));

    // The spare is the held lock now: re-acquiring must not rewrite it.
    lock.acquire(false, false).expect("re-entrant acquire");
    assert_eq!(fs::read(f.path().join("x.lock")).expect("lock"), held);
    assert_eq!(
        ino(&f.path().join("x.lock")),
        (inode, 1),
        "spare name dropped"
    );
    let kept = spares(f.path());
    assert_eq!(kept.len(), 1, "a fresh spare: {:?}", names(f.path()));
    assert_ne!(ino(&f.path().join(&kept[0])).0, inode);
    lock.release(false).expect("release");
    assert_eq!(names(f.path()), kept);
}

#[test]
fn a_lock_overwritten_in_place_is_never_clobbered_through_the_spare() {
    // labm8 writes a forced lock in place (open, truncate, write), into the
    // inode our spare shares with the lock we hold.
    let f = Fixture::new();
    f.sys.set(300, Liveness::Alive, Some(3));
    let lock = f.spared();
    lock.acquire(false, false).expect("acquire");
    lock.release(false).expect("release");
    lock.acquire(false, false).expect("acquire 2");
    fs::write(f.path().join("x.lock"), "300 1799999000.0\n").expect("labm8 force");

    match lock.release(false) {
        Err(Error::UnableToRelease(r)) => assert_eq!(r.owner.pid, 300),
        other => panic!("expected a refusal, got {other:?}"),
    }
    match lock.acquire(false, false) {
        Err(Error::UnableToAcquire(r)) => assert_eq!(r.owner.pid, 300),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        fs::read_to_string(f.path().join("x.lock")).expect("lock"),
        "300 1799999000.0\n",
        "their lock is intact"
    );
}

#[test]
fn a_shorter_record_leaves_no_tail_in_the_spare() {
    let f = Fixture::new();
    let lock = f.spared();
    lock.acquire(false, false).expect("acquire");
    lock.release(false).expect("release");
    lock.acquire(false, false).expect("acquire 2");
    lock.release(false).expect("release 2");
    let name = f.spare.name().expect("a spare");
    fs::write(f.path().join(&name), vec![b'x'; 600]).expect("grow the spare");
    lock.acquire(false, false).expect("acquire 3");
    let bytes = fs::read(f.path().join("x.lock")).expect("lock");
    assert!(bytes.len() < 600, "truncated to the record");
    assert_eq!(format::parse(&bytes).expect("parses").pid, ME);
}

/// Cycles a handle twice so that it keeps a spare from its next acquire on.
fn cycling<'a>(lock: &Lock<'a, StdDir, Sys>) {
    lock.acquire(false, false).expect("acquire");
    lock.release(false).expect("release");
}

#[test]
fn a_handle_that_starts_keeping_a_spare_sweeps_dead_and_recycled_spares() {
    let f = Fixture::new();
    // A handle that keeps a spare is a library handle, running in its owner
    // (a release for another process sweeps only after a crash, below).
    f.sys.run_as_owner();
    f.sys.set(600, Liveness::Alive, Some(6));
    f.sys.set(650, Liveness::Alive, Some(99)); // pid 650 now runs another process
    let dead = ".x.lock.4194303.00000000000000bb.tmp";
    let recycled = ".x.lock.650.00000000000000cc.tmp";
    let live = ".x.lock.600.00000000000000dd.tmp";
    fs::write(f.path().join(dead), record(4_194_303, Some(1), "a")).expect("plant");
    fs::write(f.path().join(recycled), record(650, Some(5), "b")).expect("plant");
    fs::write(f.path().join(live), record(600, Some(6), "c")).expect("plant");

    let lock = f.spared();
    cycling(&lock);
    assert!(names(f.path()).contains(&dead.to_owned()), "no sweep yet");
    lock.acquire(false, false)
        .expect("acquire with a new spare");
    let mine = f.spare.name().expect("a spare");
    let mut expected = vec![live.to_owned(), mine, "x.lock".to_owned()];
    expected.sort();
    assert_eq!(names(f.path()), expected);
}

#[test]
fn a_spare_removed_before_the_link_falls_back_to_a_fresh_one() {
    let f = Fixture::new();
    let lock = f.spared();
    cycling(&lock);
    cycling(&lock);
    let old = f.spare.name().expect("a spare");
    // A sweeper that cannot see our pid removes our temporary files between
    // writing and linking, twice in a row.
    let path = f.path().to_path_buf();
    let removed = std::rc::Rc::new(Cell::new(0));
    let count = removed.clone();
    f.sys.on("before-publish", move || {
        if count.get() < 2 {
            count.set(count.get() + 1);
            for name in spares(&path) {
                fs::remove_file(path.join(name)).expect("remove");
            }
        }
    });
    lock.acquire(false, false)
        .expect("acquire despite the sweeper");
    assert_eq!(removed.get(), 2);
    assert_eq!(owner(f.path()), ME);
    let new = f.spare.name().expect("a new spare");
    assert_ne!(new, old);
    assert_eq!(ino(&f.path().join(&new)).1, 2, "the new spare is the lock");
}

#[test]
fn a_spare_kept_for_another_lock_is_not_published() {
    let f = Fixture::new();
    cycling(&f.spared());
    let x = f.spared();
    x.acquire(false, false).expect("acquire x");
    x.release(false).expect("release x");
    let x_spare = f.spare.name().expect("x's spare");
    let y = Lock::new(&f.dir, "y.lock", "/d/y.lock", &f.sys).with_spare(&f.spare);
    y.acquire(false, false).expect("acquire y");
    assert!(!f.path().join(&x_spare).exists(), "x's spare is discarded");
    let y_spare = f.spare.name().expect("y's spare");
    assert!(y_spare.starts_with(".y.lock."), "{y_spare}");
    let y_record = format::parse(&fs::read(f.path().join("y.lock")).expect("y")).expect("y");
    assert_eq!(y_record.pid, ME);
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

/// What a network file system does to the calls of one lock's directory.
#[derive(Default)]
struct Faults {
    /// The next this many reads of `x.lock` fail with this error, as NFS
    /// reports a file unlinked (and perhaps replaced) after we found it.
    failing_reads: Cell<u32>,
    read_error: Cell<Option<i32>>,
    /// Links that succeed but report failure (a lost reply, retransmitted).
    lost_link_reply: Cell<Option<io::ErrorKind>>,
    /// The next this many links fail, linking nothing, with this errno (a
    /// server that lost track of the request).
    failing_links: Cell<u32>,
    link_error: Cell<Option<i32>>,
    /// Rewrites that ignore link counts (a stale attribute cache says 1).
    stale_link_counts: Cell<bool>,
}

/// StdDir with [`Faults`].
struct Nfs<'a> {
    dir: &'a StdDir,
    root: std::path::PathBuf,
    faults: Faults,
}

impl Dir for Nfs<'_> {
    fn kind(&self, name: &str) -> io::Result<Option<Kind>> {
        self.dir.kind(name)
    }
    fn read(&self, name: &str, limit: usize) -> io::Result<Vec<u8>> {
        if name == "x.lock" && self.faults.failing_reads.get() > 0 {
            self.faults
                .failing_reads
                .set(self.faults.failing_reads.get() - 1);
            let errno = self.faults.read_error.get().expect("an errno");
            return Err(if errno == 0 {
                io::Error::other(lockfile_core::protocol::HostIoError("I/O error".into()))
            } else {
                io::Error::from_raw_os_error(errno)
            });
        }
        self.dir.read(name, limit)
    }
    fn create(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.dir.create(name, data)
    }
    fn rewrite(&self, name: &str, data: &[u8]) -> io::Result<bool> {
        if self.faults.stale_link_counts.get() {
            // As if the link count read 1: write whatever the file is.
            fs::write(self.root.join(name), data)?;
            return Ok(true);
        }
        self.dir.rewrite(name, data)
    }
    fn link(&self, existing: &str, new: &str) -> io::Result<()> {
        if self.faults.failing_links.get() > 0 {
            self.faults
                .failing_links
                .set(self.faults.failing_links.get() - 1);
            let errno = self.faults.link_error.get().expect("an errno");
            return Err(io::Error::from_raw_os_error(errno));
        }
        let result = self.dir.link(existing, new);
        match (result, self.faults.lost_link_reply.get()) {
            (Ok(()), Some(kind)) => Err(io::Error::from(kind)),
            (result, _) => result,
        }
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.dir.rename(from, to)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.dir.remove(name)
    }
    fn names(&self) -> io::Result<Vec<String>> {
        self.dir.names()
    }
}

impl Fixture {
    fn nfs(&self) -> Nfs<'_> {
        Nfs {
            dir: &self.dir,
            root: self.tmp.path().to_path_buf(),
            faults: Faults::default(),
        }
    }
}

#[test]
fn a_lock_that_changes_between_finding_and_reading_it_is_looked_at_again() {
    let f = Fixture::new();
    let nfs = f.nfs();
    f.sys.set(700, Liveness::Alive, Some(9));
    fs::write(f.path().join("x.lock"), record(700, Some(9), "theirs")).expect("plant");
    let lock = Lock::new(&nfs, "x.lock", "/d/x.lock", &f.sys);
    // ESTALE (kernel NFS clients), EIO and EFAULT (userspace clients), and
    // WASI's generic `io`: each a few times, then the read works.
    for errno in [116, 5, 14, 0] {
        nfs.faults.read_error.set(Some(errno));
        nfs.faults.failing_reads.set(3);
        let status = lock.status().expect("looked again");
        assert_eq!(status.verdict, Verdict::Held, "errno {errno}");
        match lock.acquire(true, false) {
            Err(Error::UnableToAcquire(r)) => assert_eq!(r.owner.pid, 700),
            other => panic!("errno {errno}: expected a refusal, got {other:?}"),
        }
    }
    // A read that keeps failing is reported, after a bounded number of looks.
    nfs.faults.read_error.set(Some(5));
    nfs.faults.failing_reads.set(1000);
    match lock.status() {
        Err(Error::Io { message, .. }) => assert!(message.contains("cannot read"), "{message}"),
        other => panic!("expected the I/O error, got {other:?}"),
    }
    assert!(nfs.faults.failing_reads.get() > 900, "bounded");
}

#[test]
fn a_link_that_succeeded_but_reported_failure_is_a_win() {
    for kind in [io::ErrorKind::AlreadyExists, io::ErrorKind::Other] {
        let f = Fixture::new();
        f.sys.run_as_owner();
        let nfs = f.nfs();
        nfs.faults.lost_link_reply.set(Some(kind));
        let lock = Lock::new(&nfs, "x.lock", "/d/x.lock", &f.sys);
        lock.acquire(false, false)
            .unwrap_or_else(|e| panic!("{kind:?}: the lost reply is our win, got {e}"));
        assert_eq!(lock.status().expect("status").verdict, Verdict::OwnedBySelf);
        assert_eq!(names(f.path()), ["x.lock"], "{kind:?}: no leftovers");
        // A link that really failed is still a refusal.
        nfs.faults.lost_link_reply.set(None);
        lock.release(false).expect("release");
        f.sys.set(700, Liveness::Alive, Some(9));
        fs::write(f.path().join("x.lock"), record(700, Some(9), "theirs")).expect("plant");
        assert!(matches!(
            lock.acquire(false, false),
            Err(Error::UnableToAcquire(_))
        ));
        // A takeover whose claim's link reply is lost: the claim is ours,
        // so the takeover goes on (rather than waiting on our own claim).
        f.sys.set(700, Liveness::Dead, None);
        nfs.faults.lost_link_reply.set(Some(kind));
        lock.acquire(true, false)
            .unwrap_or_else(|e| panic!("{kind:?}: takeover under lost replies, got {e}"));
        assert_eq!(owner(f.path()), ME);
        assert_eq!(names(f.path()), ["x.lock"], "{kind:?}: no leftovers");
    }
}

/// NFS may answer a `link` with EIO or ESTALE and link nothing (seen once in
/// 400 runs of the two-host rig): the acquisition looks again and retries,
/// rather than fail; a link that keeps failing so is reported, bounded.
#[test]
fn a_link_that_failed_with_eio_or_estale_is_retried() {
    for errno in [5, 116] {
        for spare in [false, true] {
            let f = Fixture::new();
            f.sys.run_as_owner();
            let nfs = f.nfs();
            let kept = Spare::default();
            let lock = Lock::new(&nfs, "x.lock", "/d/x.lock", &f.sys);
            let lock = if spare { lock.with_spare(&kept) } else { lock };
            if spare {
                // Cycle once, so that the next publish links the spare.
                lock.acquire(false, false).expect("acquire");
                lock.release(false).expect("release");
            }
            nfs.faults.link_error.set(Some(errno));
            nfs.faults.failing_links.set(2);
            lock.acquire(false, false)
                .unwrap_or_else(|e| panic!("errno {errno}, spare {spare}: {e}"));
            assert_eq!(lock.status().expect("status").verdict, Verdict::OwnedBySelf);
            lock.release(false).expect("release");
            // A takeover's claim and publish under the same replies.
            f.sys.set(700, Liveness::Dead, None);
            fs::write(f.path().join("x.lock"), record(700, None, "stale")).expect("plant");
            nfs.faults.failing_links.set(2);
            lock.acquire(true, false)
                .unwrap_or_else(|e| panic!("errno {errno}: takeover: {e}"));
            assert_eq!(owner(f.path()), ME);
            lock.release(false).expect("release");
            drop(lock);
            kept.discard(&nfs);
            assert_eq!(
                names(f.path()),
                Vec::<String>::new(),
                "errno {errno}, spare {spare}: leftovers"
            );
            // A link that never works is an error, not a loop.
            let lock = Lock::new(&nfs, "x.lock", "/d/x.lock", &f.sys);
            nfs.faults.failing_links.set(u32::MAX);
            assert!(lock.acquire(false, false).is_err(), "errno {errno}");
            assert!(nfs.faults.failing_links.get() > u32::MAX - 100, "bounded");
            nfs.faults.failing_links.set(0);
        }
    }
}

#[test]
fn a_published_spare_is_never_rewritten_even_when_link_counts_lie() {
    let f = Fixture::new();
    f.sys.run_as_owner();
    let nfs = f.nfs();
    let spare = Spare::default();
    let lock = Lock::new(&nfs, "x.lock", "/d/x.lock", &f.sys).with_spare(&spare);
    // Cycle so that the lock is published from the spare.
    lock.acquire(false, false).expect("acquire");
    lock.release(false).expect("release");
    lock.acquire(false, false).expect("acquire from the spare");
    let published = fs::read(f.path().join("x.lock")).expect("lock");
    let inode = ino(&f.path().join("x.lock")).0;
    // The attribute cache now says the spare has one link: acquiring again
    // while holding must not write the published lock through it.
    nfs.faults.stale_link_counts.set(true);
    lock.acquire(false, false).expect("acquire again: a no-op");
    assert_eq!(fs::read(f.path().join("x.lock")).expect("lock"), published);
    assert_eq!(ino(&f.path().join("x.lock")).0, inode);
    // Nor after another process removed our lock (we did not release it).
    fs::remove_file(f.path().join("x.lock")).expect("removed by someone else");
    lock.acquire(false, false).expect("acquire");
    let fresh = ino(&f.path().join("x.lock")).0;
    assert_ne!(fresh, inode, "published from a fresh file, not the spare");
    lock.release(false).expect("release");
    spare.discard(&nfs);
}

/// A record from host `there` with a lease, its file modified `age_ms` ago.
fn plant_leased(f: &Fixture, lease_ms: u64, age_ms: u64) {
    let path = f.path().join("x.lock");
    let text = format::serialize(&Record {
        pid: 700,
        timestamp: Timestamp::new(1_799_999_000, 0),
        hostname: Some("there".into()),
        nonce: Some("theirs".into()),
        lease_ms: Some(lease_ms),
        ..Record::default()
    });
    fs::write(&path, text).expect("plant");
    set_age(f, age_ms);
}

/// Sets the lock file's modification time to `age_ms` before the fixture's now.
fn set_age(f: &Fixture, age_ms: u64) {
    let now = f.sys.now();
    let then = std::time::UNIX_EPOCH + std::time::Duration::new(now.seconds, now.nanos)
        - std::time::Duration::from_millis(age_ms);
    fs::File::open(f.path().join("x.lock"))
        .expect("open")
        .set_modified(then)
        .expect("set mtime");
}

#[test]
fn a_foreign_lock_is_stale_once_its_lease_ran_out_by_more_than_the_skew() {
    let f = Fixture::new();
    let lock = f.lock();
    // Within the lease, and within the lease plus the skew allowance: foreign.
    for age in [0, 9_000, 12_900] {
        plant_leased(&f, 10_000, age);
        let status = lock.status().expect("status");
        assert_eq!(
            status.verdict,
            Verdict::Foreign,
            "age {age}: {}",
            status.reason
        );
        assert!(status.reason.contains("lease of 10 s"), "{}", status.reason);
        assert!(matches!(
            lock.acquire(true, false),
            Err(Error::UnableToAcquire(_))
        ));
    }
    // Past it: stale, and replace_stale takes it over.
    plant_leased(&f, 10_000, 13_500);
    let status = lock.status().expect("status");
    assert_eq!(
        (status.verdict, status.cause),
        (Verdict::Stale, Cause::LeaseExpired),
        "{}",
        status.reason
    );
    assert!(status.reason.contains("ran out"), "{}", status.reason);
    assert!(matches!(
        lock.acquire(false, false),
        Err(Error::UnableToAcquire(_))
    ));
    lock.acquire(true, false).expect("takeover");
    assert_eq!(owner(f.path()), ME);
    // Without a lease a foreign lock never goes stale, however old.
    let f = Fixture::new();
    plant_leased(&f, 10_000, 0);
    let text = fs::read_to_string(f.path().join("x.lock")).expect("lock");
    fs::write(
        f.path().join("x.lock"),
        text.replace("lease_ms=10000\n", ""),
    )
    .expect("rewrite");
    set_age(&f, 86_400_000);
    assert_eq!(f.lock().status().expect("status").verdict, Verdict::Foreign);
}

#[test]
fn a_lease_does_not_change_how_our_own_hosts_locks_are_judged() {
    let f = Fixture::new();
    f.sys.set(700, Liveness::Alive, Some(9));
    let text = format::serialize(&Record {
        lease_ms: Some(1_000),
        ..format::parse(record(700, Some(9), "theirs").as_bytes()).expect("record")
    });
    fs::write(f.path().join("x.lock"), text).expect("plant");
    set_age(&f, 3_600_000);
    // Our host: judged by the owner's pid, which runs.
    assert_eq!(f.lock().status().expect("status").verdict, Verdict::Held);
}

#[test]
fn refresh_renews_only_our_own_unexpired_lease() {
    let f = Fixture::new();
    f.sys.run_as_owner();
    let lock = f.lock().with_lease(Some(10_000));
    assert!(
        matches!(lock.refresh(), Err(Error::Lost { .. })),
        "unlocked"
    );
    lock.acquire(false, false).expect("acquire");
    let text = fs::read_to_string(f.path().join("x.lock")).expect("lock");
    assert!(text.contains("lease_ms=10000"), "{text}");
    set_age(&f, 5_000);
    lock.refresh().expect("refresh");
    let age = std::time::SystemTime::now()
        .duration_since(
            fs::metadata(f.path().join("x.lock"))
                .expect("meta")
                .modified()
                .expect("mtime"),
        )
        .unwrap_or_default();
    assert!(age.as_secs() < 60, "touched: {age:?}");
    // A lease that already ran out (beyond the 1 s timestamp granularity)
    // is not revived.
    set_age(&f, 11_500);
    match lock.refresh() {
        Err(Error::Lost { message, .. }) => assert!(message.contains("ran out"), "{message}"),
        other => panic!("expected a lost lease, got {other:?}"),
    }
    // Another owner's lock: lost, and left untouched.
    f.sys.set(700, Liveness::Alive, Some(9));
    fs::write(f.path().join("x.lock"), record(700, Some(9), "theirs")).expect("plant");
    set_age(&f, 1_000);
    let before = fs::metadata(f.path().join("x.lock"))
        .expect("meta")
        .modified()
        .expect("mtime");
    assert!(matches!(lock.refresh(), Err(Error::Lost { .. })));
    let after = fs::metadata(f.path().join("x.lock"))
        .expect("meta")
        .modified()
        .expect("mtime");
    assert_eq!(before, after);
}

#[test]
fn a_leased_owner_paused_before_its_unlink_never_removes_a_takeovers_lock() {
    let f = Fixture::new();
    f.sys.run_as_owner();
    let lock = f.lock().with_lease(Some(1_000));
    lock.acquire(false, false).expect("acquire");
    // Paused after judging its lock its own, the owner's lease ran out and
    // another host took the lock over (a rename of its record over ours).
    let takeover = format::serialize(&Record {
        pid: 900,
        timestamp: Timestamp::new(1_800_000_100, 0),
        hostname: Some("there".into()),
        nonce: Some("takeover".into()),
        lease_ms: Some(1_000),
        ..Record::default()
    });
    let dir = f.path().to_path_buf();
    let planted = takeover.clone();
    let once = Cell::new(false);
    f.sys.on_any(&["before-remove", "after-judge"], move || {
        if !once.replace(true) {
            fs::write(dir.join("x.lock.new"), &planted).expect("write");
            fs::rename(dir.join("x.lock.new"), dir.join("x.lock")).expect("takeover");
        }
    });
    let released = lock.release(false);
    f.sys.off();
    assert_eq!(
        fs::read_to_string(f.path().join("x.lock")).expect("the takeover's lock survives"),
        takeover
    );
    assert!(
        matches!(released, Err(Error::UnableToRelease(_))),
        "{released:?}"
    );
}

fn token_of(dir: &std::path::Path) -> Option<u64> {
    format::parse(&fs::read(dir.join("x.lock")).expect("lock"))
        .expect("parses")
        .token
}

#[test]
fn tokens_grow_by_one_across_releases_takeovers_and_force() {
    let f = Fixture::new();
    f.sys.run_as_owner();
    let spare = Spare::default();
    let lock = f.lock().with_spare(&spare).with_tokens(true);
    for expected in 1..=3 {
        lock.acquire(false, false).expect("acquire");
        assert_eq!(token_of(f.path()), Some(expected));
        assert_eq!(lock.token().expect("token"), Some(expected));
        // Acquiring again while holding issues nothing new.
        lock.acquire(false, false).expect("again");
        assert_eq!(token_of(f.path()), Some(expected));
        lock.release(false).expect("release");
    }
    assert_eq!(
        fs::read_to_string(f.path().join(".x.lock.token")).expect("token file"),
        "3\n"
    );
    // A holder that crashed after publishing token 9 but before recording
    // it: the takeover continues from the record, not from the file.
    f.sys.set(700, Liveness::Dead, None);
    let crashed = format::serialize(&Record {
        token: Some(9),
        ..format::parse(record(700, Some(1), "crashed").as_bytes()).expect("record")
    });
    fs::write(f.path().join("x.lock"), crashed).expect("plant");
    lock.acquire(true, false).expect("takeover");
    assert_eq!(token_of(f.path()), Some(10));
    // Force continues from the replaced record too.
    f.sys.set(800, Liveness::Alive, Some(3));
    let live = format::serialize(&Record {
        token: Some(20),
        ..format::parse(record(800, Some(3), "live").as_bytes()).expect("record")
    });
    fs::write(f.path().join("x.lock"), live).expect("plant");
    lock.acquire(false, true).expect("force");
    assert_eq!(token_of(f.path()), Some(21));
    lock.release(false).expect("release");
    spare.discard(&f.dir);
    // Without a token asked for, the sequence still goes on.
    let plain = f.lock();
    plain.acquire(false, false).expect("acquire");
    assert_eq!(token_of(f.path()), Some(22));
    plain.release(false).expect("release");
    // And a lock that never had one gets none.
    fs::remove_file(f.path().join(".x.lock.token")).expect("no sequence");
    plain.acquire(false, false).expect("acquire");
    assert_eq!(token_of(f.path()), None);
}

#[test]
fn a_token_read_before_another_acquisition_is_reissued() {
    let f = Fixture::new();
    f.sys.run_as_owner();
    let lock = f.lock().with_tokens(true);
    // Between our reading the floor (0, so token 1) and our publish, another
    // process acquired with token 1 and released.
    let dir = f.path().to_path_buf();
    let once = Cell::new(false);
    f.sys.on("before-publish", move || {
        if !once.replace(true) {
            fs::write(dir.join(".x.lock.token"), "1\n").expect("token file");
        }
    });
    lock.acquire(false, false).expect("acquire");
    f.sys.off();
    assert_eq!(token_of(f.path()), Some(2));
    assert_eq!(
        fs::read_to_string(f.path().join(".x.lock.token")).expect("token file"),
        "2\n"
    );
    assert_eq!(names(f.path()), [".x.lock.token", "x.lock"]);
}

#[test]
fn a_garbage_token_file_is_an_error_and_nothing_is_written() {
    let f = Fixture::new();
    f.sys.run_as_owner();
    fs::write(f.path().join(".x.lock.token"), "garbage").expect("plant");
    match f.lock().with_tokens(true).acquire(false, false) {
        Err(Error::Malformed { path, .. }) => assert!(path.ends_with(".x.lock.token"), "{path}"),
        other => panic!("expected a malformed token file, got {other:?}"),
    }
    assert_eq!(names(f.path()), [".x.lock.token"]);
}

#[test]
fn a_fifo_as_the_token_file_is_an_error_that_never_blocks() {
    let f = Fixture::new();
    f.sys.run_as_owner();
    let fifo = f.path().join(".x.lock.token");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    match f.lock().with_tokens(true).acquire(false, false) {
        Err(Error::NotAFile { path, .. }) => assert!(path.ends_with(".x.lock.token"), "{path}"),
        other => panic!("expected not-a-file, got {other:?}"),
    }
    assert!(!f.path().join("x.lock").exists());
}

#[test]
fn a_leased_claim_abandoned_by_a_crashed_host_is_stepped_over_once_it_expires() {
    let f = Fixture::new();
    f.sys.run_as_owner();
    // A stale lock of a dead local process...
    f.sys.set(700, Liveness::Dead, None);
    let stale = record(700, Some(1), "stale");
    fs::write(f.path().join("x.lock"), &stale).expect("plant");
    // ... that a breaker on host `there` claimed, with a lease, and crashed.
    let claim = f.path().join(format!(
        ".x.lock.break.{:016x}",
        format::fingerprint(stale.as_bytes())
    ));
    let claimer = format::serialize(&Record {
        pid: 900,
        timestamp: Timestamp::new(1_799_999_000, 0),
        hostname: Some("there".into()),
        nonce: Some("claim".into()),
        lease_ms: Some(1_000),
        ..Record::default()
    });
    fs::write(&claim, claimer).expect("plant claim");
    let now = f.sys.now();
    let at = |seconds_ago: u64| {
        std::time::UNIX_EPOCH + std::time::Duration::new(now.seconds - seconds_ago, 0)
    };
    fs::File::open(&claim)
        .expect("claim")
        .set_modified(at(0))
        .expect("mtime");
    let lock = f.lock().with_lease(Some(1_000));
    // While the claim's lease runs, the takeover waits on it...
    assert!(matches!(
        lock.acquire(true, false),
        Err(Error::UnableToAcquire(_))
    ));
    // ... and once it has run out, steps over it.
    fs::File::open(&claim)
        .expect("claim")
        .set_modified(at(60))
        .expect("mtime");
    lock.acquire(true, false).expect("takeover");
    assert_eq!(owner(f.path()), ME);
}

/// `list` and `clean`: every lock of a directory with its verdict, files
/// that only look like locks reported with why, private files judged as a
/// sweep judges them, and a directory sweep that removes exactly those.
#[test]
fn a_survey_finds_every_lock_and_judges_private_files_as_a_sweep_does() {
    use lockfile_core::protocol::{survey, sweep_dir, LeftoverKind};
    let f = Fixture::new();
    let p = f.path();
    f.sys.set(600, Liveness::Alive, Some(6));
    fs::write(p.join("live.lock"), record(600, Some(6), "live")).expect("plant");
    fs::write(p.join("stale.lock"), record(200, Some(1), "dead")).expect("plant");
    // labm8's own form, under a name that does not say "lock".
    fs::write(p.join("job.pid"), "600 1799999000.5\n").expect("plant");
    fs::write(p.join("garbage.lock"), "not a lock\n").expect("plant");
    fs::write(p.join("notes.txt"), "not a lock either\n").expect("plant");
    std::os::unix::fs::symlink("live.lock", p.join("link.lock")).expect("symlink");
    fs::create_dir(p.join("dir.lock")).expect("dir");
    let fifo = std::ffi::CString::new(p.join("fifo.lock").to_string_lossy().as_bytes()).expect("c");
    // SAFETY: a valid C string; mkfifo only creates a name.
    assert_eq!(unsafe { libc_mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let gone = [
        ".stale.lock.4194303.00000000000000bb.tmp", // dead writer
        ".absent.lock.break.00000000000000aa",      // its lock is gone
    ];
    let kept = [
        ".live.lock.600.00000000000000cc.tmp", // live writer
        ".live.lock.token",                    // a sequence: never swept
    ];
    for n in gone.iter().chain(&kept) {
        fs::write(p.join(n), record(600, Some(6), n)).expect("plant");
    }
    fs::write(p.join(".live.lock.token"), "7\n").expect("plant");

    let s = survey(&f.dir, "/d", &f.sys).expect("survey");
    let verdicts: Vec<(String, Verdict)> = s
        .locks
        .iter()
        .map(|l| (l.path.clone(), l.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("/d/garbage.lock".to_owned(), Verdict::Malformed),
            ("/d/job.pid".to_owned(), Verdict::Held),
            ("/d/live.lock".to_owned(), Verdict::Held),
            ("/d/stale.lock".to_owned(), Verdict::Stale),
        ]
    );
    let unreadable: Vec<String> = s.unreadable.iter().map(ToString::to_string).collect();
    assert_eq!(unreadable.len(), 3, "{unreadable:?}");
    for (what, name) in [
        ("directory", "dir.lock"),
        ("FIFO", "fifo.lock"),
        ("symbolic link", "link.lock"),
    ] {
        assert!(
            unreadable
                .iter()
                .any(|u| u.contains(name) && u.contains(what)),
            "{name}: {unreadable:?}"
        );
    }
    let judged: Vec<(&str, &str, LeftoverKind, bool)> = s
        .leftovers
        .iter()
        .map(|l| (l.name.as_str(), l.lock.as_str(), l.kind, l.gone))
        .collect();
    assert_eq!(
        judged,
        [
            (gone[1], "absent.lock", LeftoverKind::Claim, true),
            (kept[0], "live.lock", LeftoverKind::Temporary, false),
            (kept[1], "live.lock", LeftoverKind::Token, false),
            (gone[0], "stale.lock", LeftoverKind::Temporary, true),
        ]
    );

    let removed: Vec<String> = sweep_dir(&f.dir, "/d", &f.sys)
        .expect("sweep")
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(removed, [gone[1], gone[0]]);
    for n in kept {
        assert!(p.join(n).exists(), "{n} kept");
    }
    assert!(
        p.join("stale.lock").exists(),
        "a sweep never removes a lock"
    );
}

extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
}
