//! labm8's own test scenarios, through the Rust embedding API.

use std::fs;
use std::time::Duration;

use lockfile_host::{AcquireOptions, Cause, Error, LockError, Runtime, Timestamp, Verdict};

use crate::common::*;

fn runtime() -> Runtime {
    Runtime::new().expect("runtime loads")
}

#[test]
fn acquire_reacquire_release() {
    let dir = sandbox();
    let path = dir.path().join("LOCK");
    let rt = runtime();
    let mut lock = rt.open(&path).expect("open");
    assert!(!lock.is_locked().expect("is_locked"));
    assert_eq!(lock.pid().expect("pid"), None);
    lock.acquire(false, false).expect("acquire");
    assert!(lock.is_locked().expect("is_locked"));
    assert_eq!(lock.pid().expect("pid"), Some(std::process::id()));
    assert!(lock.owned_by_self().expect("owned"));
    let date = lock.date().expect("date").expect("a date");
    let first = fs::read(&path).expect("lock file");
    // Re-acquiring a lock we hold is a no-op: the file is not rewritten.
    lock.acquire(false, false).expect("re-acquire");
    assert_eq!(fs::read(&path).expect("lock file"), first);
    assert_eq!(lock.date().expect("date"), Some(date));
    lock.release(false).expect("release");
    assert!(!path.exists());
    // Releasing an unheld lock is a no-op.
    lock.release(false).expect("release again");
    assert_eq!(
        names(dir.path()),
        Vec::<String>::new(),
        "nothing left behind"
    );
}

#[test]
fn planted_dead_owner_needs_replace_stale() {
    let dir = sandbox();
    let path = dir.path().join("LOCK");
    let rt = runtime();
    rt.write(&path, DEAD_PID, Timestamp::new(1_700_000_000, 0))
        .expect("write");
    let (pid, date) = {
        let owner = rt.read(&path).expect("read").expect("an owner");
        (owner.pid, owner.date)
    };
    assert_eq!((pid, date), (DEAD_PID, Timestamp::new(1_700_000_000, 0)));
    let mut lock = rt.open(&path).expect("open");
    match lock.acquire(false, false) {
        Err(Error::Lock(LockError::UnableToAcquire(r))) => {
            assert_eq!(r.owner.pid, DEAD_PID);
            assert_eq!(r.verdict, Verdict::Stale);
            assert_eq!(r.path, path);
        }
        other => panic!("expected UnableToAcquire, got {other:?}"),
    }
    lock.acquire(true, false).expect("replace stale");
    assert_eq!(lock.pid().expect("pid"), Some(std::process::id()));
    lock.release(false).expect("release");
    assert_eq!(names(dir.path()), Vec::<String>::new());
}

#[test]
fn planted_live_owner_needs_force() {
    let dir = sandbox();
    let path = dir.path().join("LOCK");
    let owner = Sleeper::new();
    let rt = runtime();
    let now = Timestamp::parse(&format!("{:.6}", now_secs())).expect("now");
    rt.write(&path, owner.pid(), now).expect("write");
    let mut lock = rt.open(&path).expect("open");
    for replace_stale in [false, true] {
        match lock.acquire(replace_stale, false) {
            Err(Error::Lock(LockError::UnableToAcquire(r))) => {
                assert_eq!(r.owner.pid, owner.pid());
                assert_eq!(r.verdict, Verdict::Held);
            }
            other => panic!("expected UnableToAcquire, got {other:?}"),
        }
    }
    lock.acquire(false, true).expect("force");
    assert!(lock.owned_by_self().expect("owned"));
    lock.release(false).expect("release");
}

#[test]
fn release_by_non_owner_is_refused_and_changes_nothing() {
    let dir = sandbox();
    let path = dir.path().join("LOCK");
    let owner = Sleeper::new();
    let rt = runtime();
    let mut taken = rt.open_as(&path, owner.pid()).expect("open as the sleeper");
    taken
        .acquire(false, false)
        .expect("acquire for the sleeper");
    let before = fs::read(&path).expect("lock");
    let mut lock = rt.open(&path).expect("open");
    match lock.release(false) {
        Err(Error::Lock(LockError::UnableToRelease(r))) => assert_eq!(r.owner.pid, owner.pid()),
        other => panic!("expected UnableToRelease, got {other:?}"),
    }
    assert_eq!(fs::read(&path).expect("lock"), before, "unchanged");
    lock.release(true).expect("force release");
    assert!(!path.exists());
}

#[test]
fn guard_releases_on_drop() {
    let dir = sandbox();
    let path = dir.path().join("LOCK");
    let rt = runtime();
    let mut lock = rt.open(&path).expect("open");
    {
        let _guard = lock.lock(false, false).expect("lock");
        assert!(path.exists());
    }
    assert!(!path.exists(), "dropping the guard releases");
    let guard = lock.lock(false, false).expect("lock");
    guard.release().expect("explicit release");
    assert!(!path.exists());
}

#[test]
fn status_reports_verdicts() {
    let dir = sandbox();
    let path = dir.path().join("LOCK");
    let rt = runtime();
    let mut lock = rt.open(&path).expect("open");
    assert_eq!(lock.status().expect("status").verdict, Verdict::Unlocked);
    lock.acquire(false, false).expect("acquire");
    let s = lock.status().expect("status");
    assert_eq!(s.verdict, Verdict::OwnedBySelf);
    assert_eq!(s.owner.expect("owner").pid, std::process::id());
    fs::write(&path, "garbage").expect("plant");
    let s = lock.status().expect("status");
    assert_eq!(s.verdict, Verdict::Malformed);
    assert!(s.reason.contains("not a number"), "{}", s.reason);
}

#[test]
fn open_as_a_dead_process_is_refused() {
    let dir = sandbox();
    let rt = runtime();
    match rt.open_as(dir.path().join("LOCK"), DEAD_PID) {
        Err(Error::NoSuchProcess(pid)) => assert_eq!(pid, DEAD_PID),
        other => panic!("expected NoSuchProcess, got {other:?}"),
    }
}

#[test]
fn files_we_write_read_as_labm8_reads_them() {
    // labm8 0.1.2: `components = infile.read().split()`,
    // `int(components[0])`, `float(components[1])`.
    let dir = sandbox();
    let path = dir.path().join("LOCK");
    let rt = runtime();
    let mut lock = rt.open(&path).expect("open");
    lock.acquire(false, false).expect("acquire");
    let script =
        "import sys\nc = open(sys.argv[1]).read().split()\nprint(int(c[0]), repr(float(c[1])))";
    let out = std::process::Command::new("python3")
        .args(["-c", script, s(&path)])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut parts = text.split_whitespace();
    assert_eq!(parts.next(), Some(std::process::id().to_string().as_str()));
    let ts: f64 = parts.next().and_then(|t| t.parse().ok()).expect("float");
    let date = lock.date().expect("date").expect("some");
    assert!((ts - date.as_f64()).abs() < 1e-5, "{ts} vs {date}");
}

#[test]
fn the_precompiled_component_loads_in_both_allocation_modes() {
    // The host links no compiler, so loading at all proves it was precompiled.
    use lockfile_host::Allocation;
    for allocation in [Allocation::OnDemand, Allocation::Pooled(4)] {
        let rt = Runtime::with_allocation(allocation).expect("runtime");
        let dir = sandbox();
        let mut lock = rt.open(dir.path().join("LOCK")).expect("open");
        lock.acquire(false, false).expect("acquire");
        lock.release(false).expect("release");
    }
}

#[test]
fn command_runtimes_run_in_place_once_and_side_by_side() {
    // The first `for_command` runtime of a process runs the component's code
    // where it lies in the binary; wasmtime registers code by address, so a
    // second one at the same time must load a copy instead of colliding
    // (which would panic). Both work, concurrently, and after a drop.
    // The only test that makes command runtimes: the first of the process
    // is this one's.
    let dir = sandbox();
    let first = Runtime::for_command().expect("first command runtime");
    let second = Runtime::for_command().expect("second command runtime");
    // A failure to run in place falls back to a copy silently (it must not
    // stop the CLI), so the speed it buys is checked here.
    assert_eq!(first.runs_in_place(), cfg!(target_os = "linux"));
    assert!(!second.runs_in_place());
    let mut a = first.open(dir.path().join("A")).expect("open A");
    let mut b = second.open(dir.path().join("B")).expect("open B");
    a.acquire(false, false).expect("acquire A");
    b.acquire(false, false).expect("acquire B");
    let mut a2 = second.open(dir.path().join("A")).expect("open A again");
    assert!(a2.owned_by_self().expect("A seen from the second runtime"));
    a.release(false).expect("release A");
    b.release(false).expect("release B");
    drop((a, a2, b, first));
    let third = Runtime::for_command().expect("a command runtime after a drop");
    let mut c = third.open(dir.path().join("C")).expect("open C");
    c.acquire(false, false).expect("acquire C");
    c.release(false).expect("release C");
}

#[test]
fn a_full_pool_is_an_error_not_a_crash() {
    let rt = Runtime::with_allocation(lockfile_host::Allocation::Pooled(2)).expect("runtime");
    let dir = sandbox();
    let a = rt.open(dir.path().join("a")).expect("first");
    let b = rt.open(dir.path().join("b")).expect("second");
    let third = rt.open(dir.path().join("c"));
    assert!(matches!(third, Err(Error::Runtime { .. })), "{third:?}");
    drop((a, b));
    rt.open(dir.path().join("c")).expect("a slot is free again");
}

#[test]
fn a_limit_on_address_space_falls_back_to_on_demand_sandboxes() {
    // The default pool reserves TiBs of address space; under `ulimit -v`
    // (16 GiB here) `Runtime::new` must still work, without the pool.
    let dir = sandbox();
    let script = format!(
        "ulimit -v 16777216 && exec {} cycles {} 3",
        contend_bin().display(),
        s(dir.path())
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    expect_code(&out, 0);
    assert_eq!(
        fs::read_to_string(dir.path().join("counter")).expect("counter"),
        "3"
    );
}

#[test]
fn write_refuses_what_no_reader_could_read() {
    let dir = sandbox();
    let path = dir.path().join("LOCK");
    let rt = runtime();
    for (pid, ts) in [(12, 253_402_300_800), (u32::MAX, 1)] {
        let result = rt.write(&path, pid, Timestamp::new(ts, 0));
        assert!(
            matches!(result, Err(Error::Lock(LockError::Io { .. }))),
            "{pid} {ts}: {result:?}"
        );
        assert!(!path.exists());
    }
    // pid 0 is written, as labm8 writes it, and reads back as a lock held by
    // an owner whose liveness is unknown.
    rt.write(&path, 0, Timestamp::new(1, 0))
        .expect("pid 0 is written");
    let mut lock = rt.open(&path).expect("open");
    let status = lock.status().expect("status");
    assert_eq!(status.verdict, Verdict::Held);
    assert_eq!(status.cause, Cause::UnknownLiveness);
    assert!(lock.acquire(true, false).is_err());
    lock.acquire(false, true).expect("force takes it");
    assert!(lock.owned_by_self().expect("owned"));
}

/// A handle that cycles publishes from one retained file (the spare), never
/// writes the lock it holds, and removes the spare when dropped.
#[test]
fn a_cycling_handle_keeps_one_spare_and_drops_it() {
    use std::os::unix::fs::MetadataExt;
    let dir = sandbox();
    let path = dir.path().join("LOCK");
    let rt = runtime();
    let mut lock = rt.open(&path).expect("open");
    lock.acquire(false, false).expect("acquire");
    lock.release(false).expect("release");
    assert!(names(dir.path()).is_empty(), "one cycle keeps nothing");

    lock.acquire(false, false).expect("acquire 2");
    let spare: Vec<String> = names(dir.path())
        .into_iter()
        .filter(|n| n != "LOCK")
        .collect();
    assert_eq!(spare.len(), 1, "{:?}", names(dir.path()));
    assert!(spare[0].starts_with(".LOCK.") && spare[0].ends_with(".tmp"));
    let held = fs::metadata(&path).expect("lock");
    assert_eq!(held.nlink(), 2, "the lock is the spare's inode");
    let bytes = fs::read(&path).expect("lock");
    lock.acquire(false, false).expect("re-acquire while held");
    assert_eq!(
        fs::read(&path).expect("lock"),
        bytes,
        "a held lock is never rewritten"
    );
    lock.release(false).expect("release 2");

    let inode = fs::metadata(dir.path().join(&names(dir.path())[0]))
        .expect("spare")
        .ino();
    for _ in 0..3 {
        lock.acquire(false, false).expect("acquire again");
        assert_eq!(
            fs::metadata(&path).expect("lock").ino(),
            inode,
            "same inode"
        );
        assert_eq!(lock.pid().expect("pid"), Some(std::process::id()));
        lock.release(false).expect("release again");
    }
    assert_eq!(names(dir.path()).len(), 1, "only the spare");
    drop(lock);
    assert!(
        names(dir.path()).is_empty(),
        "dropping the handle removes the spare"
    );
}

/// Someone with write access to the directory replaces a cycling handle's
/// spare with a FIFO. Made of WASI's calls, the rewrite's open would wait
/// for a reader forever; the host's native `files` never waits, so the next
/// acquire drops the FIFO and publishes from a fresh file.
#[test]
fn a_fifo_in_place_of_the_spare_never_blocks_the_next_acquire() {
    let dir = sandbox();
    let path = dir.path().join("LOCK");
    let rt = runtime();
    let mut lock = rt.open(&path).expect("open");
    for _ in 0..2 {
        lock.acquire(false, false).expect("acquire");
        lock.release(false).expect("release");
    }
    let spare = match names(dir.path()).as_slice() {
        [spare] => dir.path().join(spare),
        other => panic!("expected one spare, found {other:?}"),
    };
    fs::remove_file(&spare).expect("remove the spare");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &spare,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .expect("mkfifo");
    // A blocked open must fail the test, not hang it: the acquire runs on a
    // thread of its own, with a deadline.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let acquired = lock.acquire(false, false).map(|()| lock.pid());
            let _ = done.send(acquired);
        });
        match finished.recv_timeout(Duration::from_secs(20)) {
            Ok(acquired) => {
                let pid = acquired.expect("acquire past the FIFO").expect("pid");
                assert_eq!(pid, Some(std::process::id()));
            }
            Err(_) => {
                // Unblock the open so the scope can end, then fail.
                let _ = fs::OpenOptions::new().read(true).open(&spare);
                panic!("the acquire blocked on a FIFO in place of its spare");
            }
        }
    });
    assert!(
        !spare.exists(),
        "the FIFO is dropped, not kept as the spare"
    );
    lock.release(false).expect("release");
}

#[test]
fn acquire_with_waits_with_backoff_until_the_holder_releases() {
    let dir = sandbox();
    let path = dir.path().join("w.lock");
    let holder = Sleeper::new();
    expect_code(
        &lockfile(&["acquire", "--pid", &holder.pid_str(), s(&path)]),
        0,
    );
    let rt = Runtime::new().expect("runtime");
    let mut lock = rt.open(&path).expect("open");
    // No wait: refused at once.
    match lock.acquire_with(AcquireOptions::default()) {
        Err(Error::Lock(LockError::UnableToAcquire(r))) => assert_eq!(r.owner.pid, holder.pid()),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A short wait runs out.
    let started = std::time::Instant::now();
    let out = lock.acquire_with(AcquireOptions::default().wait_for(Duration::from_millis(60)));
    assert!(
        matches!(out, Err(Error::Lock(LockError::UnableToAcquire(_)))),
        "{out:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(60));
    // A long one ends when the holder releases.
    let release = {
        let (pid, path) = (holder.pid_str(), path.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            lockfile(&["release", "--pid", &pid, s(&path)])
        })
    };
    let guard = lock
        .lock_with(AcquireOptions::default().wait_for(Duration::from_secs(30)))
        .expect("acquired once the holder released");
    expect_code(&release.join().expect("release thread"), 0);
    drop(guard);
    assert!(!path.exists(), "the guard released it");
}

/// The README's embedding program (host/examples/guard.rs) runs as shown.
#[test]
fn the_readme_embedding_example_runs() {
    let exe = std::env::current_exe().expect("test binary path");
    let examples = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target dir")
        .join("examples");
    let bin = examples.join("guard");
    assert!(
        bin.exists(),
        "`{}` is missing: run `cargo test` without target filters (it builds examples)",
        bin.display()
    );
    let dir = sandbox();
    let lock = dir.path().join("job.lock");
    let out = std::process::Command::new(&bin)
        .arg(&lock)
        .output()
        .expect("run the example");
    expect_code(&out, 0);
    assert!(stdout(&out).contains("owned-by-self"), "{}", stdout(&out));
    assert!(!lock.exists(), "released when the guard dropped");
}

/// A lock whose sequence another front end started (the CLI, with a
/// lease) gets a token from every later acquisition through the library,
/// asked for or not; the native host looks for the sequence in the same
/// call that publishes the lock.
#[test]
fn a_plain_acquisition_continues_a_sequence_the_cli_started() {
    let dir = sandbox();
    let lock_path = dir.path().join("seq.lock");
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    let out = lockfile(&[
        "acquire",
        "--pid",
        &pid,
        "--lease",
        "30",
        "--print-token",
        s(&lock_path),
    ]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out).trim(), "1");
    expect_code(&lockfile(&["release", "--pid", &pid, s(&lock_path)]), 0);

    let rt = runtime();
    let mut lock = rt.open(&lock_path).expect("open");
    for expected in 2..=4 {
        lock.acquire(false, false).expect("acquire");
        assert_eq!(lock.token().expect("token"), Some(expected));
        lock.release(false).expect("release");
    }
    let mut plain = rt.open(dir.path().join("plain.lock")).expect("open");
    plain.acquire(false, false).expect("acquire");
    assert_eq!(plain.token().expect("token"), None, "no sequence, no token");
}
