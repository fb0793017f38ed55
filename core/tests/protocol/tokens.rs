//! Fencing tokens: the sequence across releases, takeovers and force, re-issue, and garbage token files.

use super::*;

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
