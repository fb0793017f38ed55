//! Leases: a lock from another host is foreign, never judged by its pid;
//! with a lease it becomes stale once not renewed for the lease plus 3 s.
//! "Another host" here is another UTS namespace with its own hostname
//! (`unshare -u`, root), on the same files; tests/harness/nfs.rs does the
//! same across a real NFS mount.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use lockfile_host::PAUSE_VAR;

use crate::common::*;

/// The lease the tests use, and how long after taking (or last renewing) a
/// lock it is surely stale: lease + 2 s skew allowance + 1 s timestamp granularity + margin.
const LEASE: &str = "1";
const EXPIRED: Duration = Duration::from_millis(4_600);

/// Runs `script` in a shell on host `elsewhere` (its own UTS namespace),
/// with `$L` the lockfile binary and `$P` the lock's path.
fn elsewhere(lock: &Path, script: &str) -> Output {
    require_root("`unshare -u` makes another host");
    Command::new("unshare")
        .args(["-u", "sh", "-c"])
        // Braces: `A && B & C` would run `A && B` in the background and C at
        // once, before the hostname is set (a race the faster start-up of
        // issue 14 lost under load, and the lock then looked local).
        .arg(format!("hostname elsewhere && {{ {script}; }}"))
        .env("L", lockfile_bin())
        .env("P", lock)
        .stdin(Stdio::null())
        .output()
        .expect("run unshare")
}

/// The lock's status as host `elsewhere` sees it.
fn status_elsewhere(lock: &Path) -> serde_json::Value {
    let out = elsewhere(lock, r#""$L" status --json --pid 1 "$P""#);
    expect_code(&out, 0);
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Host `elsewhere` takes the lock over for a process of its own.
fn takeover_elsewhere(lock: &Path) -> Output {
    elsewhere(
        lock,
        // The owner must not hold our output pipes open for a minute.
        r#"sleep 60 </dev/null >/dev/null 2>&1 & "$L" acquire --replace-stale --pid $! "$P""#,
    )
}

/// `lockfile run --lease LEASE LOCK -- sleep SECONDS`, returned once
/// COMMAND has started: only then is the lock wholly taken. The lock file
/// appears earlier, at publish, before its fencing token is issued, and a
/// `run` paused there (as one test does) is refused the lock on resuming
/// instead of losing it while COMMAND runs. COMMAND says it started and
/// execs `sleep`, keeping the pid the lock records.
fn run_leased(lock: &Path, seconds: &str) -> Child {
    let started = lock.with_extension("started");
    let child = Command::new(lockfile_bin())
        .args(["run", "--lease", LEASE, s(lock), "--", "sh", "-c"])
        .args([r#"touch "$0"; exec sleep "$1""#, s(&started), seconds])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lockfile run");
    wait_for_file(&started);
    child
}

/// The command `lockfile run` started, as its lock records it.
fn companion(lock: &Path) -> Option<u64> {
    std::fs::read_to_string(lock)
        .expect("lock")
        .lines()
        .find_map(|l| l.strip_prefix("companion="))
        .and_then(|v| v.parse().ok())
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig} {pid}");
}

#[test]
#[ignore = "needs root (`unshare -u` makes a second host): scripts/test runs it as root"]
fn a_leased_lock_is_foreign_elsewhere_until_its_lease_runs_out() {
    let _namespaces = creating_namespaces();
    let dir = sandbox();
    let lock = dir.path().join("job.lock");
    let owner = Sleeper::new();
    expect_code(
        &lockfile(&[
            "acquire",
            "--lease",
            LEASE,
            "--pid",
            &owner.pid_str(),
            s(&lock),
        ]),
        0,
    );
    let text = std::fs::read_to_string(&lock).expect("lock");
    assert!(text.contains("lease_ms=1000"), "{text}");
    let st = status_elsewhere(&lock);
    assert_eq!(st["verdict"], "foreign", "{st}");
    expect_code(&takeover_elsewhere(&lock), 1);
    // Renewed, it stays foreign past its first lease.
    sleep(Duration::from_millis(700));
    expect_code(
        &lockfile(&["refresh", "--pid", &owner.pid_str(), s(&lock)]),
        0,
    );
    sleep(Duration::from_millis(700));
    assert_eq!(status_elsewhere(&lock)["verdict"], "foreign");
    // Not renewed: stale elsewhere (never on its own host, where the owner runs).
    sleep(EXPIRED);
    let st = status_elsewhere(&lock);
    assert_eq!(st["verdict"], "stale", "{st}");
    assert_eq!(st["cause"], "lease-expired", "{st}");
    let out = lockfile(&["status", "--json", "--pid", "1", s(&lock)]);
    let here: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(here["verdict"], "held", "{here}");
    // A late refresh does not revive it; the other host takes it over.
    let out = lockfile(&["refresh", "--pid", &owner.pid_str(), s(&lock)]);
    expect_code(&out, 1);
    expect_stderr(&out, "lost the lock");
    expect_code(&takeover_elsewhere(&lock), 0);
    let st = status_json(&lock, &["--pid", "1"]);
    assert_eq!(st["hostname"], "elsewhere", "{st}");
    let out = lockfile(&["refresh", "--pid", &owner.pid_str(), s(&lock)]);
    expect_code(&out, 1);
    expect_stderr(&out, "now belongs to pid");
}

#[test]
#[ignore = "needs root (`unshare -u` makes a second host): scripts/test runs it as root"]
fn run_with_a_lease_keeps_the_lock_for_many_lease_periods() {
    let _namespaces = creating_namespaces();
    let dir = sandbox();
    let lock = dir.path().join("job.lock");
    let run = run_leased(&lock, "6");
    wait_for_file(&lock);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(5_000) {
        let st = status_elsewhere(&lock);
        assert_eq!(
            st["verdict"],
            "foreign",
            "after {:?}: {st}",
            start.elapsed()
        );
        sleep(Duration::from_millis(400));
    }
    expect_code(&takeover_elsewhere(&lock), 1);
    let out = run.wait_with_output_checked();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!lock.exists());
}

#[test]
#[ignore = "needs root (`unshare -u` makes a second host): scripts/test runs it as root"]
fn a_paused_holder_loses_its_lease_and_is_told_so() {
    let _namespaces = creating_namespaces();
    let dir = sandbox();
    let lock = dir.path().join("job.lock");
    let run = run_leased(&lock, "60");
    wait_for_file(&lock);
    let command = companion(&lock);
    signal(run.id(), "-STOP");
    sleep(EXPIRED);
    let st = status_elsewhere(&lock);
    assert_eq!(st["verdict"], "stale", "{st}");
    expect_code(&takeover_elsewhere(&lock), 0);
    signal(run.id(), "-CONT");
    // Its next renewal finds the lock gone to the other host: `run` sends
    // COMMAND (`sleep 60`) SIGTERM and exits 4 (`--on-lost term`, the
    // default), long before COMMAND would have ended.
    let resumed = Instant::now();
    let out = run.wait_with_output_checked();
    let err = stderr(&out);
    assert!(err.contains("lost the lock"), "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        resumed.elapsed() < Duration::from_secs(30),
        "COMMAND ran on for {:?}",
        resumed.elapsed()
    );
    if let Some(pid) = command {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || fs_state(pid).is_some_and(|s| s == 'Z'),
            "COMMAND {pid} still runs"
        );
    }
    // The other host's lock is left alone.
    assert_eq!(status_json(&lock, &["--pid", "1"])["hostname"], "elsewhere");
}

#[test]
#[ignore = "needs root (`unshare -u` makes a second host): scripts/test runs it as root"]
fn a_crashed_holders_leased_lock_is_taken_over_after_expiry() {
    let _namespaces = creating_namespaces();
    let dir = sandbox();
    let lock = dir.path().join("job.lock");
    let mut run = run_leased(&lock, "60");
    wait_for_file(&lock);
    let command = companion(&lock);
    let killed = Instant::now();
    signal(run.id(), "-KILL");
    if let Some(pid) = command {
        signal(u32::try_from(pid).expect("pid"), "-KILL");
    }
    let _ = run.wait();
    // Elsewhere it stays foreign (nobody there can see the holder died)...
    expect_code(&takeover_elsewhere(&lock), 1);
    // ... until the lease and the skew allowance have passed.
    sleep(EXPIRED.saturating_sub(killed.elapsed()));
    expect_code(&takeover_elsewhere(&lock), 0);
}

trait WaitChecked {
    fn wait_with_output_checked(self) -> Output;
}

impl WaitChecked for Child {
    /// Waits, bounded: a hung `lockfile run` fails the test instead of hanging it.
    fn wait_with_output_checked(mut self) -> Output {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "lockfile run did not finish");
            sleep(Duration::from_millis(50));
        }
        self.wait_with_output().expect("output")
    }
}

/// The state letter of process `pid` (`Z` for a zombie), if it exists.
fn fs_state(pid: u64) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn token(out: &Output) -> u64 {
    expect_code(out, 0);
    stdout(out).trim().parse().expect("a token on stdout")
}

#[test]
#[ignore = "needs root (`unshare -u` makes a second host): scripts/test runs it as root"]
fn fencing_tokens_grow_across_releases_takeovers_and_hosts() {
    let _namespaces = creating_namespaces();
    let dir = sandbox();
    let lock = dir.path().join("job.lock");
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    let first = token(&lockfile(&[
        "acquire",
        "--print-token",
        "--pid",
        &pid,
        s(&lock),
    ]));
    assert_eq!(first, 1);
    assert_eq!(status_json(&lock, &["--pid", &pid])["token"], 1);
    expect_code(&lockfile(&["release", "--pid", &pid, s(&lock)]), 0);
    // Another host, then `run`, which hands COMMAND its token.
    let out = elsewhere(
        &lock,
        r#"sleep 60 </dev/null >/dev/null 2>&1 & "$L" acquire --print-token --pid $! "$P" && "$L" release --force "$P""#,
    );
    assert_eq!(token(&out), 2);
    let out = lockfile(&[
        "run",
        "--token",
        s(&lock),
        "--",
        "sh",
        "-c",
        "echo $LOCKFILE_TOKEN",
    ]);
    assert_eq!(token(&out), 3);
    // A leased holder that stops renewing: the host that takes over gets a
    // higher token, so storage that saw it refuses the old holder's writes.
    let held = token(&lockfile(&[
        "acquire",
        "--lease",
        LEASE,
        "--print-token",
        "--pid",
        &pid,
        s(&lock),
    ]));
    assert_eq!(held, 4);
    sleep(EXPIRED);
    let out = elsewhere(
        &lock,
        r#"sleep 60 </dev/null >/dev/null 2>&1 & "$L" acquire --replace-stale --print-token --pid $! "$P""#,
    );
    assert_eq!(token(&out), 5);
    assert!(
        lockfile(&["release", "--pid", &pid, s(&lock)])
            .status
            .code()
            == Some(1)
    );
}

/// A token sequence at its end is an error, never a repeated token: the
/// acquisition that cannot have a fresh one publishes nothing.
#[test]
fn an_exhausted_token_sequence_refuses_instead_of_repeating_a_token() {
    let dir = sandbox();
    let lock = dir.path().join("job.lock");
    let tokens = dir.path().join(".job.lock.token");
    std::fs::write(&tokens, format!("{}\n", u64::MAX - 1)).expect("plant the token file");
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    let acquire = || lockfile(&["acquire", "--print-token", "--pid", &pid, s(&lock)]);
    assert_eq!(token(&acquire()), u64::MAX);
    expect_code(&lockfile(&["release", "--pid", &pid, s(&lock)]), 0);
    for _ in 0..2 {
        let out = acquire();
        expect_code(&out, 3);
        expect_stderr(&out, "fencing-token");
        assert!(!lock.exists(), "nothing is published: {}", stderr(&out));
    }
    // A record carrying the last token is no way around it either.
    std::fs::remove_file(&tokens).expect("remove the token file");
    std::fs::write(
        &lock,
        format!("{} 1700000000.0\ntoken={}\n", DEAD_PID, u64::MAX),
    )
    .expect("plant a stale record with the last token");
    let out = lockfile(&[
        "acquire",
        "--replace-stale",
        "--print-token",
        "--pid",
        &pid,
        s(&lock),
    ]);
    expect_code(&out, 3);
    expect_stderr(&out, "fencing-token");
    assert_eq!(
        status_json(&lock, &["--pid", &pid])["pid"],
        DEAD_PID,
        "the stale record stays"
    );
}

/// A token file is one decimal number and an optional newline, read whole:
/// anything longer than a token, or anything else, is malformed (a file read
/// in part could make tokens go backwards).
#[test]
fn a_token_file_that_is_not_one_number_is_malformed_and_kept() {
    let dir = sandbox();
    let lock = dir.path().join("job.lock");
    let tokens = dir.path().join(".job.lock.token");
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    let long = format!("{}41\n", "0".repeat(69));
    for bad in [
        long.as_str(),
        "41 42\n",
        " 41\n",
        "41\n\n",
        "4x1\n",
        "",
        "-3\n",
    ] {
        std::fs::write(&tokens, bad).expect("plant the token file");
        let out = lockfile(&["acquire", "--print-token", "--pid", &pid, s(&lock)]);
        expect_code(&out, 3);
        expect_stderr(&out, "fencing-token file");
        assert!(!lock.exists(), "{bad:?}: nothing is published");
        assert_eq!(std::fs::read_to_string(&tokens).expect("kept"), bad);
    }
    std::fs::write(&tokens, "0041\n").expect("plant the token file");
    assert_eq!(
        token(&lockfile(&[
            "acquire",
            "--print-token",
            "--pid",
            &pid,
            s(&lock)
        ])),
        42
    );
}

/// A host that crashes while releasing its leased lock leaves a claim that
/// names a process no other host can judge. The claim expires with the lease
/// of the record it claims, so once that lease has run out another host
/// takes the lock over: a crash never wedges a leased lock.
#[test]
#[ignore = "needs root (`unshare -u` makes a second host): scripts/test runs it as root"]
fn a_crashed_hosts_release_claim_expires_with_the_lease_it_claims() {
    let _namespaces = creating_namespaces();
    let flags = sandbox();
    for checkpoint in ["after-claim", "before-remove"] {
        let dir = sandbox();
        let lock = dir.path().join("job.lock");
        let owner = Sleeper::new();
        let pid = owner.pid_str();
        expect_code(
            &lockfile(&["acquire", "--lease", LEASE, "--pid", &pid, s(&lock)]),
            0,
        );
        let flag = flags.path().join(checkpoint);
        let mut release = Command::new(lockfile_bin())
            .args(["release", "--pid", &pid, s(&lock)])
            .env(PAUSE_VAR, format!("{checkpoint}:{}", s(&flag)))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lockfile release");
        wait_for_file(&flag);
        // The host crashes: its release and the lock's owner die mid-claim.
        release.kill().expect("kill the release");
        let _ = release.wait();
        drop(owner);
        let _ = std::fs::remove_file(&flag);
        assert!(
            names(dir.path()).iter().any(|n| n.contains(".break.")),
            "{checkpoint}: the crashed release left its claim: {:?}",
            names(dir.path())
        );
        sleep(EXPIRED);
        let out = takeover_elsewhere(&lock);
        assert!(
            out.status.success(),
            "{checkpoint}: another host cannot take over after the lease ran out: {}",
            stderr(&out)
        );
        assert_eq!(status_elsewhere(&lock)["hostname"], "elsewhere");
    }
}

/// A leased record of a host that is gone, whose lease ran out long ago.
fn plant_expired_lease(lock: &Path) {
    std::fs::write(
        lock,
        format!("{DEAD_PID} 1700000000.000000\nhost=gone\nlease_ms=1000\n"),
    )
    .expect("plant");
    let touched = Command::new("touch")
        .args(["-m", "-d", "2020-01-01", s(lock)])
        .status()
        .expect("touch");
    assert!(touched.success());
}

/// Host B takes the lock over with a 30 s lease; prints its token, then
/// `pid=N` (its holder, a `sleep` that outlives the call).
fn take_over_elsewhere_for_30s(lock: &Path) -> (u64, String) {
    let out = elsewhere(
        lock,
        r#"sleep 60 </dev/null >/dev/null 2>&1 & B=$!; "$L" acquire --replace-stale --lease 30 --print-token --pid $B "$P" && echo "pid=$B""#,
    );
    expect_code(&out, 0);
    let text = stdout(&out);
    let mut lines = text.lines();
    let token = lines.next().and_then(|t| t.trim().parse().ok());
    let pid = lines.next().and_then(|l| l.strip_prefix("pid="));
    match (token, pid) {
        (Some(token), Some(pid)) => (token, pid.to_owned()),
        _ => panic!("unexpected output from host B: {text}"),
    }
}

fn paused_breaker(lock: &Path, owner: &Sleeper, checkpoint: &str, flag: &Path) -> Child {
    Command::new(lockfile_bin())
        .args([
            "acquire",
            "--replace-stale",
            "--lease",
            LEASE,
            "--print-token",
            "--pid",
            &owner.pid_str(),
            s(lock),
        ])
        .env(PAUSE_VAR, format!("{checkpoint}:{}", s(flag)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the breaker")
}

/// Resumes a paused `lockfile` and lets it through every later stop at
/// the same checkpoint (re-issuing a token passes it again), until it ends.
fn finish(mut child: Child, flag: &Path) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("try_wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "the paused lockfile did not finish"
        );
        let _ = std::fs::remove_file(flag);
        sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

/// A breaker paused past its lease, whose claim another host stepped over
/// to take the lock, must not then publish over that host's lock: it checks
/// that its claim still stands just before it publishes.
#[test]
#[ignore = "needs root (`unshare -u` makes a second host): scripts/test runs it as root"]
fn a_breaker_paused_past_its_lease_never_overwrites_the_next_holders_lock() {
    let _namespaces = creating_namespaces();
    let (dir, flags) = (sandbox(), sandbox());
    let lock = dir.path().join("job.lock");
    plant_expired_lease(&lock);
    let owner = Sleeper::new();
    let flag = flags.path().join("a");
    let breaker = paused_breaker(&lock, &owner, "before-publish", &flag);
    // Its stops there: publishing before looking (a link, which fails on
    // the stale lock), publishing its claim, and then the takeover's, with
    // the claim made and checked and the rename not done: pause at that.
    for _ in 0..2 {
        wait_for_file(&flag);
        std::fs::remove_file(&flag).expect("let the breaker go on");
    }
    wait_for_file(&flag);
    sleep(EXPIRED);
    let (_, b_pid) = take_over_elsewhere_for_30s(&lock);
    let out = finish(breaker, &flag);
    expect_code(&out, 1);
    expect_stderr(&out, "on host elsewhere");
    let st = status_elsewhere(&lock);
    assert_eq!(st["pid"].to_string(), b_pid, "{st}");
    let out = elsewhere(&lock, &format!(r#""$L" refresh --pid {b_pid} "$P""#));
    expect_code(&out, 0);
}

/// The residual (docs/PROTOCOL.md): a breaker paused between that check and
/// its rename, past its lease, does publish over the next holder. Then the
/// later publisher holds the higher fencing token (every leased acquisition
/// has one), and the earlier holder learns it lost at its next refresh.
#[test]
#[ignore = "needs root (`unshare -u` makes a second host): scripts/test runs it as root"]
fn in_the_residual_window_the_later_publisher_holds_the_higher_token() {
    let _namespaces = creating_namespaces();
    let (dir, flags) = (sandbox(), sandbox());
    let lock = dir.path().join("job.lock");
    plant_expired_lease(&lock);
    let owner = Sleeper::new();
    let flag = flags.path().join("a");
    let breaker = paused_breaker(&lock, &owner, "after-claim-check", &flag);
    wait_for_file(&flag);
    sleep(EXPIRED);
    let (b_token, b_pid) = take_over_elsewhere_for_30s(&lock);
    let a_token = token(&finish(breaker, &flag));
    assert!(a_token > b_token, "A {a_token}, B {b_token}");
    assert_eq!(
        status_json(&lock, &["--pid", &owner.pid_str()])["token"],
        a_token
    );
    let out = elsewhere(&lock, &format!(r#""$L" refresh --pid {b_pid} "$P""#));
    expect_code(&out, 1);
    expect_stderr(&out, "lost the lock");
}

/// Every leased acquisition carries a fencing token, asked for or not.
#[test]
fn every_leased_acquisition_has_a_token() {
    let dir = sandbox();
    let lock = dir.path().join("job.lock");
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    for expected in 1..=2u64 {
        expect_code(
            &lockfile(&["acquire", "--lease", LEASE, "--pid", &pid, s(&lock)]),
            0,
        );
        assert_eq!(status_json(&lock, &["--pid", &pid])["token"], expected);
        expect_code(&lockfile(&["release", "--pid", &pid, s(&lock)]), 0);
    }
}

/// The other side of a release claim that expires with its lease: a release
/// paused past that lease, whose claim another host stepped over to take
/// the lock, must not then remove that host's lock.
#[test]
#[ignore = "needs root (`unshare -u` makes a second host): scripts/test runs it as root"]
fn a_release_paused_past_the_lease_never_removes_the_next_holders_lock() {
    let _namespaces = creating_namespaces();
    let (dir, flags) = (sandbox(), sandbox());
    let lock = dir.path().join("job.lock");
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    expect_code(
        &lockfile(&["acquire", "--lease", LEASE, "--pid", &pid, s(&lock)]),
        0,
    );
    let flag = flags.path().join("r");
    let release = Command::new(lockfile_bin())
        .args(["release", "--pid", &pid, s(&lock)])
        .env(PAUSE_VAR, format!("before-remove:{}", s(&flag)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lockfile release");
    wait_for_file(&flag);
    sleep(EXPIRED);
    let (_, b_pid) = take_over_elsewhere_for_30s(&lock);
    let out = finish(release, &flag);
    expect_code(&out, 1);
    expect_stderr(&out, "on host elsewhere");
    assert_eq!(status_elsewhere(&lock)["pid"].to_string(), b_pid);
}
