//! Leases: judged across hosts by the file system's clock, refreshed only by their owner, and claims that expire with them.

use super::*;

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
