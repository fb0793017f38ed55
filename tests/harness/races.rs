//! Races, crashes and delays: exclusion must hold, and every crash must be
//! recoverable without `force`.
//!
//! `LOCKFILE_SOAK_CYCLES` (default 250) and `LOCKFILE_SOAK_PROCS` (default
//! 8) scale the contention test; `LOCKFILE_SOAK_ROUNDS` (default 30) the
//! takeover race.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use lockfile_host::PAUSE_VAR;

use crate::common::*;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn contention_keeps_exclusion_and_loses_no_update() {
    let procs = env_or("LOCKFILE_SOAK_PROCS", 8);
    let cycles = env_or("LOCKFILE_SOAK_CYCLES", 250);
    let dir = sandbox();
    let children: Vec<Child> = (0..procs)
        .map(|_| {
            Command::new(contend_bin())
                .args(["cycles", s(dir.path()), &cycles.to_string()])
                .spawn()
                .expect("spawn contend")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("contend ends");
        assert_eq!(
            out.status.code(),
            Some(0),
            "a worker failed or saw two holders"
        );
    }
    let counter: usize = fs::read_to_string(dir.path().join("counter"))
        .expect("counter")
        .trim()
        .parse()
        .expect("number");
    assert_eq!(counter, procs * cycles, "lost updates mean two holders");
    assert_eq!(names(dir.path()), vec!["counter"], "nothing left behind");
}

/// Holders cycle from their spares (rewriting one inode in place each time)
/// while a reader inspects the lock as fast as it can: it must only ever see
/// no lock or a complete record, never a malformed one.
#[test]
fn readers_see_only_whole_records_while_holders_cycle() {
    let procs = env_or("LOCKFILE_SOAK_PROCS", 8).min(4);
    let cycles = env_or("LOCKFILE_SOAK_CYCLES", 250);
    let dir = sandbox();
    let lock_path = dir.path().join("lock");
    let mut children: Vec<Child> = (0..procs)
        .map(|_| {
            Command::new(contend_bin())
                .args(["cycles", s(dir.path()), &cycles.to_string()])
                .spawn()
                .expect("spawn contend")
        })
        .collect();
    let rt = lockfile_host::Runtime::new().expect("runtime");
    let mut reader = rt.open(&lock_path).expect("open");
    let (mut reads, mut held) = (0usize, 0usize);
    while children
        .iter_mut()
        .any(|c| c.try_wait().expect("wait").is_none())
    {
        let status = reader.status().expect("status never fails");
        assert_ne!(
            status.verdict,
            lockfile_host::Verdict::Malformed,
            "a reader saw a partial record: {}",
            status.reason
        );
        if let Ok(Some(owner)) = rt.read(&lock_path) {
            assert!(owner.pid > 0);
        }
        reads += 1;
        held += usize::from(status.owner.is_some());
    }
    for child in children {
        let out = child.wait_with_output().expect("contend ends");
        assert_eq!(out.status.code(), Some(0), "a worker failed");
    }
    assert!(
        held > 0,
        "the reader saw the lock held at least once ({reads} reads)"
    );
    let counter: usize = fs::read_to_string(dir.path().join("counter"))
        .expect("counter")
        .trim()
        .parse()
        .expect("number");
    assert_eq!(counter, procs * cycles);
}

#[test]
fn stale_lock_is_reclaimed_by_exactly_one_racer() {
    let racers = 12;
    let rounds = env_or("LOCKFILE_SOAK_ROUNDS", 30);
    let dir = sandbox();
    let lock = dir.path().join("race.lock");
    let go = dir.path().join("go");
    let done = dir.path().join("go.done");
    for round in 0..rounds {
        let _ = fs::remove_file(&go);
        let _ = fs::remove_file(&done);
        // A stale lock: a pid that cannot exist, a fresh timestamp each round.
        fs::write(
            &lock,
            format!("{DEAD_PID} {}.{round:06}\n", 1_700_000_000 + round),
        )
        .expect("plant");
        let children: Vec<Child> = (0..racers)
            .map(|_| {
                Command::new(contend_bin())
                    .args(["takeover", s(&lock), s(&go)])
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        // Let them all start and wait at the barrier.
        std::thread::sleep(Duration::from_millis(150));
        fs::write(&go, "").expect("go");
        // Winners hold on until `done`: wait for everyone else first.
        let mut children = children;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while children
            .iter_mut()
            .map(|c| matches!(c.try_wait(), Ok(None)))
            .filter(|&running| running)
            .count()
            > 1
        {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: racers hang"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        fs::write(&done, "").expect("done");
        let mut winners = Vec::new();
        for child in children {
            let out = child.wait_with_output().expect("racer ends");
            match out.status.code() {
                Some(0) => winners.push(stdout(&out).trim().to_owned()),
                Some(1) => {}
                other => panic!(
                    "round {round}: racer failed with {other:?}: {}",
                    stderr(&out)
                ),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let text = fs::read_to_string(&lock).expect("lock");
        assert!(
            text.starts_with(&format!("{} ", winners[0])),
            "round {round}: the file names {text:?}, the winner is {}",
            winners[0]
        );
        let mut left = names(dir.path());
        left.retain(|n| n != "go" && n != "go.done");
        assert_eq!(
            left,
            vec!["race.lock"],
            "round {round}: claims or temp files left"
        );
    }
}

/// A `lockfile` process that pauses at `checkpoint` until `flag` is removed.
fn paused(args: &[&str], checkpoint: &str, flag: &Path) -> Child {
    Command::new(lockfile_bin())
        .args(args)
        .env(PAUSE_VAR, format!("{checkpoint}:{}", s(flag)))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn kill9(child: &mut Child) {
    child.kill().expect("kill");
    let _ = child.wait();
}

fn plant_stale(lock: &Path) {
    fs::write(lock, format!("{DEAD_PID} 1700000000.000000\n")).expect("plant");
}

#[test]
fn a_delayed_breaker_never_takes_or_removes_a_fresh_lock() {
    let dir = sandbox();
    let flags = sandbox();
    let lock = dir.path().join("x.lock");
    plant_stale(&lock);
    let (a, b) = (Sleeper::new(), Sleeper::new());
    let flag = flags.path().join("a");
    // A judges the lock stale, then stalls before claiming it.
    let slow = paused(
        &[
            "acquire",
            "--replace-stale",
            "--pid",
            &a.pid_str(),
            s(&lock),
        ],
        "after-judge",
        &flag,
    );
    wait_for_file(&flag);
    expect_code(
        &lockfile(&[
            "acquire",
            "--replace-stale",
            "--pid",
            &b.pid_str(),
            s(&lock),
        ]),
        0,
    );
    let taken = fs::read(&lock).expect("lock");
    fs::remove_file(&flag).expect("resume A");
    let out = slow.wait_with_output().expect("A ends");
    expect_code(&out, 1);
    expect_stderr(&out, &format!("held by pid {} (alive)", b.pid()));
    assert_eq!(
        fs::read(&lock).expect("lock"),
        taken,
        "A left B's lock alone"
    );
    assert_eq!(names(dir.path()), vec!["x.lock"]);
}

#[test]
fn a_claimer_in_progress_blocks_other_breakers_then_wins() {
    let dir = sandbox();
    let flags = sandbox();
    let lock = dir.path().join("x.lock");
    plant_stale(&lock);
    let (a, b) = (Sleeper::new(), Sleeper::new());
    let flag = flags.path().join("a");
    let slow = paused(
        &[
            "acquire",
            "--replace-stale",
            "--pid",
            &a.pid_str(),
            s(&lock),
        ],
        "after-claim",
        &flag,
    );
    wait_for_file(&flag);
    let out = lockfile(&[
        "acquire",
        "--replace-stale",
        "--pid",
        &b.pid_str(),
        s(&lock),
    ]);
    expect_code(&out, 1);
    expect_stderr(&out, "is replacing the stale lock right now");
    fs::remove_file(&flag).expect("resume A");
    expect_code(&slow.wait_with_output().expect("A ends"), 0);
    assert_eq!(status_json(&lock, &[])["pid"], a.pid());
    assert_eq!(names(dir.path()), vec!["x.lock"]);
}

#[test]
fn a_breaker_killed_mid_takeover_is_recovered_without_force() {
    for checkpoint in ["after-judge", "after-claim", "before-publish"] {
        let dir = sandbox();
        let flags = sandbox();
        let lock = dir.path().join("x.lock");
        plant_stale(&lock);
        let (a, b) = (Sleeper::new(), Sleeper::new());
        let flag = flags.path().join("a");
        let mut slow = paused(
            &[
                "acquire",
                "--replace-stale",
                "--pid",
                &a.pid_str(),
                s(&lock),
            ],
            checkpoint,
            &flag,
        );
        wait_for_file(&flag);
        kill9(&mut slow);
        expect_code(
            &lockfile(&[
                "acquire",
                "--replace-stale",
                "--pid",
                &b.pid_str(),
                s(&lock),
            ]),
            0,
        );
        assert_eq!(status_json(&lock, &[])["pid"], b.pid(), "{checkpoint}");
        assert_eq!(names(dir.path()), vec!["x.lock"], "{checkpoint}: swept");
    }
}

#[test]
fn a_crash_while_publishing_a_fresh_lock_leaves_only_a_documented_temp_file() {
    let dir = sandbox();
    let flags = sandbox();
    let lock = dir.path().join("x.lock");
    let (a, b) = (Sleeper::new(), Sleeper::new());
    let flag = flags.path().join("a");
    let mut slow = paused(
        &["acquire", "--pid", &a.pid_str(), s(&lock)],
        "before-publish",
        &flag,
    );
    wait_for_file(&flag);
    let dead_runner = slow.id();
    kill9(&mut slow);
    let left = names(dir.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].starts_with(&format!(".x.lock.{dead_runner}.")) && left[0].ends_with(".tmp"),
        "{left:?}"
    );
    // The lock is free; the next takeover sweeps the temporary file.
    expect_code(&lockfile(&["acquire", "--pid", &b.pid_str(), s(&lock)]), 0);
    drop(b);
    let c = Sleeper::new();
    expect_code(
        &lockfile(&[
            "acquire",
            "--replace-stale",
            "--pid",
            &c.pid_str(),
            s(&lock),
        ]),
        0,
    );
    assert_eq!(names(dir.path()), vec!["x.lock"]);
}

#[test]
fn holders_killed_at_random_moments_are_recovered() {
    let dir = sandbox();
    let lock = dir.path().join("lock");
    for round in 0..8u32 {
        let mut worker = Command::new(contend_bin())
            .args(["cycles", s(dir.path()), "1000000"])
            .spawn()
            .expect("spawn");
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos();
        std::thread::sleep(Duration::from_millis(100 + u64::from(nanos % 50)));
        kill9(&mut worker);
        let _ = fs::remove_file(dir.path().join("occupied"));
        let holder = Sleeper::new();
        let out = lockfile(&[
            "acquire",
            "--replace-stale",
            "--pid",
            &holder.pid_str(),
            s(&lock),
        ]);
        expect_code(&out, 0);
        drop(holder);
        // A takeover of that (now stale) lock sweeps whatever the crash left.
        let next = Sleeper::new();
        expect_code(
            &lockfile(&[
                "acquire",
                "--replace-stale",
                "--pid",
                &next.pid_str(),
                s(&lock),
            ]),
            0,
        );
        let mut left = names(dir.path());
        left.retain(|n| n != "counter");
        assert_eq!(left, vec!["lock"], "round {round}");
        expect_code(
            &lockfile(&["release", "--pid", &next.pid_str(), s(&lock)]),
            0,
        );
    }
}

#[test]
fn release_spares_a_successors_lock() {
    let dir = sandbox();
    let lock = dir.path().join("x.lock");
    let (a, b) = (Sleeper::new(), Sleeper::new());
    expect_code(&lockfile(&["acquire", "--pid", &a.pid_str(), s(&lock)]), 0);
    expect_code(
        &lockfile(&["acquire", "--force", "--pid", &b.pid_str(), s(&lock)]),
        0,
    );
    let successor = fs::read(&lock).expect("lock");
    let out = lockfile(&["release", "--pid", &a.pid_str(), s(&lock)]);
    expect_code(&out, 1);
    expect_stderr(&out, &format!("held by pid {}", b.pid()));
    assert_eq!(fs::read(&lock).expect("lock"), successor);
}

/// Waits until `child` pauses at its checkpoint (true) or exits (false).
fn paused_or_exited(child: &mut Child, flag: &Path) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if flag.exists() {
            return true;
        }
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "neither paused nor exited"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `lockfile release --pid A` judges the lock A's; A dies before the
/// release removes it; a breaker takes the (now stale) lock over; then the
/// release goes on, and a newcomer arrives. The release must not remove the
/// breaker's lock: at most one of breaker and newcomer may hold the lock.
#[test]
fn a_release_for_an_owner_that_dies_never_removes_the_breakers_lock() {
    let dir = sandbox();
    let flags = sandbox();
    let lock = dir.path().join("x.lock");
    let mut a = Sleeper::new();
    let (b, c) = (Sleeper::new(), Sleeper::new());
    expect_code(&lockfile(&["acquire", "--pid", &a.pid_str(), s(&lock)]), 0);
    let flag = flags.path().join("release");
    let release = paused(
        &["release", "--pid", &a.pid_str(), s(&lock)],
        "before-remove",
        &flag,
    );
    wait_for_file(&flag);
    kill9(&mut a.0);
    let breaker = lockfile(&[
        "acquire",
        "--replace-stale",
        "--pid",
        &b.pid_str(),
        s(&lock),
    ]);
    fs::remove_file(&flag).expect("resume the release");
    let released = release.wait_with_output().expect("release ends");
    let newcomer = lockfile(&["acquire", "--pid", &c.pid_str(), s(&lock)]);
    let holders: Vec<u32> = [(&breaker, b.pid()), (&newcomer, c.pid())]
        .into_iter()
        .filter(|(out, _)| code(out) == 0)
        .map(|(_, pid)| pid)
        .collect();
    assert!(
        holders.len() <= 1,
        "two holders: breaker {} and newcomer {}\nbreaker: {}\nrelease: {}\nnewcomer: {}",
        b.pid(),
        c.pid(),
        stderr(&breaker),
        stderr(&released),
        stderr(&newcomer)
    );
    // The release claimed A's record first, so the breaker was refused
    // while it ran, and the release then removed A's lock.
    expect_code(&breaker, 1);
    expect_stderr(&breaker, "right now");
    expect_code(&released, 0);
    expect_code(&newcomer, 0);
    assert_eq!(status_json(&lock, &[])["pid"], c.pid());
    assert_eq!(names(dir.path()), vec!["x.lock"], "no claim is left");
}

/// The same, with the breaker further along: it has claimed the stale lock
/// and checked it, and is about to rename its record over it, when the
/// release removes the lock and a newcomer publishes. The breaker's rename
/// must not overwrite the newcomer's lock.
#[test]
fn a_release_for_an_owner_that_dies_never_lets_a_breaker_overwrite_a_newcomer() {
    let dir = sandbox();
    let flags = sandbox();
    let lock = dir.path().join("x.lock");
    let mut a = Sleeper::new();
    let (b, c) = (Sleeper::new(), Sleeper::new());
    expect_code(&lockfile(&["acquire", "--pid", &a.pid_str(), s(&lock)]), 0);
    let release_flag = flags.path().join("release");
    let release = paused(
        &["release", "--pid", &a.pid_str(), s(&lock)],
        "before-remove",
        &release_flag,
    );
    wait_for_file(&release_flag);
    kill9(&mut a.0);
    // The breaker passes `before-publish` three times: its first attempt to
    // publish (the lock is there), its claim, and the rename of its record
    // over the lock, after the check. Hold it at the third.
    let breaker_flag = flags.path().join("breaker");
    let mut breaker = paused(
        &[
            "acquire",
            "--replace-stale",
            "--pid",
            &b.pid_str(),
            s(&lock),
        ],
        "before-publish",
        &breaker_flag,
    );
    let mut breaker_paused = false;
    for pass in 1..=3 {
        breaker_paused = paused_or_exited(&mut breaker, &breaker_flag);
        if !breaker_paused || pass == 3 {
            break;
        }
        fs::remove_file(&breaker_flag).expect("let the breaker go on");
    }
    fs::remove_file(&release_flag).expect("resume the release");
    let released = release.wait_with_output().expect("release ends");
    let newcomer = lockfile(&["acquire", "--pid", &c.pid_str(), s(&lock)]);
    if breaker_paused {
        fs::remove_file(&breaker_flag).expect("resume the breaker");
    }
    let breaker = breaker.wait_with_output().expect("breaker ends");
    let holders: Vec<u32> = [(&breaker, b.pid()), (&newcomer, c.pid())]
        .into_iter()
        .filter(|(out, _)| code(out) == 0)
        .map(|(_, pid)| pid)
        .collect();
    assert!(
        holders.len() <= 1,
        "two holders: breaker {} and newcomer {}\nbreaker: {}\nrelease: {}\nnewcomer: {}",
        b.pid(),
        c.pid(),
        stderr(&breaker),
        stderr(&released),
        stderr(&newcomer)
    );
    match holders.first() {
        Some(&holder) => assert_eq!(status_json(&lock, &[])["pid"], holder),
        None => panic!(
            "nobody holds the lock\nbreaker: {}\nnewcomer: {}",
            stderr(&breaker),
            stderr(&newcomer)
        ),
    }
}

/// Owners take the lock through the CLI for themselves (`acquire
/// --replace-stale --pid $$`), hold it a moment and release it, while a
/// killer SIGKILLs owners and `lockfile` processes at random. An owner that
/// enters its critical section must never find another live owner inside.
/// `LOCKFILE_SOAK_KILL_SECONDS` (default 4) sets how long it runs.
#[test]
fn owners_and_lockfile_processes_killed_at_random_never_overlap() {
    let seconds = env_or("LOCKFILE_SOAK_KILL_SECONDS", 4) as u64;
    let dir = sandbox();
    let d = dir.path();
    let lock = d.join("x.lock");
    let script = r#"
while :; do
  if "$LOCKFILE" acquire --replace-stale --pid $$ "$L" 2>/dev/null; then
    other=$(cat "$D/inside" 2>/dev/null)
    if [ -n "$other" ] && [ "$other" != $$ ] && kill -0 "$other" 2>/dev/null; then
      echo "$$ entered while $other was inside" >> "$D/violations"
    fi
    echo $$ > "$D/inside"
    echo >> "$D/entries"
    sleep 0.01
    [ "$(cat "$D/inside" 2>/dev/null)" = $$ ] && rm -f "$D/inside"
    "$LOCKFILE" release --pid $$ "$L" 2>/dev/null
  fi
done
"#;
    let spawn_owner = || {
        Command::new("sh")
            .args(["-c", script])
            .env("LOCKFILE", lockfile_bin())
            .env("L", s(&lock))
            .env("D", s(d))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn an owner")
    };
    let mut owners: Vec<Child> = (0..6).map(|_| spawn_owner()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    let mut seed = u64::from(std::process::id()) | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut owners_killed, mut lockfiles_killed) = (0, 0);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10 + next() % 30));
        if next() % 2 == 0 {
            let i = (next() % owners.len() as u64) as usize;
            kill9(&mut owners[i]);
            owners[i] = spawn_owner();
            owners_killed += 1;
        } else {
            let parents: Vec<u32> = owners.iter().map(Child::id).collect();
            let victims = lockfile_children(&parents);
            if !victims.is_empty() {
                let victim = victims[(next() % victims.len() as u64) as usize];
                if let Some(pid) = rustix::process::Pid::from_raw(victim as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    lockfiles_killed += 1;
                }
            }
        }
    }
    for owner in &mut owners {
        kill9(owner);
    }
    let entries = fs::read_to_string(d.join("entries"))
        .unwrap_or_default()
        .lines()
        .count();
    let violations = fs::read_to_string(d.join("violations")).unwrap_or_default();
    assert!(
        violations.is_empty(),
        "two holders ({entries} entries, {owners_killed} owners and {lockfiles_killed} \
         lockfile processes killed):\n{violations}"
    );
    assert!(entries > 0, "no owner ever got the lock");
    eprintln!(
        "random kills: {entries} critical sections, {owners_killed} owners and \
         {lockfiles_killed} lockfile processes killed, no overlap"
    );
}

/// The `lockfile` processes whose parent is one of `parents`.
fn lockfile_children(parents: &[u32]) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            head.ends_with("(lockfile") && ppid.is_some_and(|p: u32| parents.contains(&p))
        })
        .collect()
}
