//! A handle's spare: publishing from one inode, never writing the published lock through it.

use super::*;

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
