//! Acquiring: a fresh publish, racers, takeovers of stale locks under claims, holders within one process, force.

use super::*;

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
