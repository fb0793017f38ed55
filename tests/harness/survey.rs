//! `lockfile list` and `lockfile clean`, and the reports around them:
//! `status --pid` of a process that has ended, and a lease in `status`.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lockfile_host::PAUSE_VAR;

use crate::common::*;

/// A directory with one of everything: a live lock, a stale one, labm8's
/// own file under another name, garbage named `*.lock`, a note, a symlink,
/// a FIFO and a directory named `*.lock`, a dead process's temporary file,
/// one of a live process, and a token sequence.
struct Mixed {
    dir: tempfile::TempDir,
    owner: Sleeper,
}

const DEAD_TEMP: &str = ".stale.lock.4194304.00000000000000bb.tmp";
const GONE_LOCK_TEMP: &str = ".absent.lock.4194304.00000000000000cc.tmp";

impl Mixed {
    fn new() -> Self {
        let dir = sandbox();
        let p = dir.path();
        let owner = Sleeper::new();
        let pid = owner.pid_str();
        expect_code(
            &lockfile(&[
                "acquire",
                "--pid",
                &pid,
                "--print-token",
                s(&p.join("live.lock")),
            ]),
            0,
        );
        let dead = DEAD_PID.to_string();
        expect_code(
            &lockfile(&["write", s(&p.join("stale.lock")), &dead, "1700000000"]),
            0,
        );
        fs::write(p.join("job.pid"), format!("{pid} {:.6}\n", now_secs())).expect("plant");
        fs::write(p.join("garbage.lock"), "not a lock\n").expect("plant");
        fs::write(p.join("notes.txt"), "not a lock either\n").expect("plant");
        std::os::unix::fs::symlink("live.lock", p.join("link.lock")).expect("symlink");
        fs::create_dir(p.join("dir.lock")).expect("dir");
        let fifo = Command::new("mkfifo")
            .arg(p.join("fifo.lock"))
            .status()
            .expect("mkfifo");
        assert!(fifo.success());
        let record = fs::read(p.join("stale.lock")).expect("record");
        fs::write(p.join(DEAD_TEMP), &record).expect("plant");
        fs::write(p.join(GONE_LOCK_TEMP), &record).expect("plant");
        Mixed { dir, owner }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn at(&self, name: &str) -> String {
        // The binary preopens the directory as itself, links resolved.
        let real = fs::canonicalize(self.path()).expect("canonical");
        real.join(name).to_string_lossy().into_owned()
    }
}

/// Runs `lockfile ARGS`, failing the test (instead of hanging) if it takes
/// a minute: a FIFO opened for reading would block for ever.
fn bounded(args: &[&str]) -> Output {
    let child = Command::new(lockfile_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lockfile");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.expect("lockfile ran"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("`lockfile {}` hung (a FIFO opened?)", args.join(" "));
        }
    }
}

#[test]
fn list_shows_every_lock_and_the_files_beside_them() {
    let m = Mixed::new();
    let out = bounded(&["list", s(m.path())]);
    expect_code(&out, 0);
    let table = stdout(&out);
    let row = |name: &str| {
        let path = m.at(name);
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(path.as_str()))
            .unwrap_or_else(|| panic!("no row for {name} in\n{table}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let owner = m.owner.pid_str();
    let live = row("live.lock");
    assert_eq!(live[1], owner, "{live:?}");
    assert!(
        live.contains(&"held".to_owned()) && live.contains(&"running".to_owned()),
        "{live:?}"
    );
    assert_eq!(
        live.last().map(String::as_str),
        Some("1"),
        "the token: {live:?}"
    );
    let stale = row("stale.lock");
    assert!(
        stale.contains(&"stale".to_owned()) && stale.contains(&"dead".to_owned()),
        "{stale:?}"
    );
    assert!(
        row("job.pid").contains(&"held".to_owned()),
        "labm8's file under any name"
    );
    assert!(row("garbage.lock").contains(&"malformed".to_owned()));
    assert!(
        row("absent.lock").contains(&"unlocked".to_owned()),
        "a lock gone, its file left"
    );
    assert!(!table.contains("notes.txt"), "not a lock: {table}");
    for (name, state) in [
        (DEAD_TEMP, "gone"),
        (GONE_LOCK_TEMP, "gone"),
        (".live.lock.token", "-"),
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name} in\n{table}"));
        assert!(line.trim_end().ends_with(state), "{line}");
    }
    // Said why, and went on.
    let err = stderr(&out);
    for (name, what) in [
        ("link.lock", "symbolic link"),
        ("fifo.lock", "FIFO"),
        ("dir.lock", "directory"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(name) && l.contains(what)),
            "{name}: {err}"
        );
    }

    // From the owner's point of view, its lock is its own.
    let out = bounded(&["list", "--pid", &owner, s(m.path())]);
    assert!(stdout(&out).contains("owned-by-self"), "{}", stdout(&out));
}

#[test]
fn list_json_prints_the_status_object_of_each_lock_one_per_line() {
    let m = Mixed::new();
    let out = bounded(&["list", "--json", s(m.path())]);
    expect_code(&out, 0);
    let objects: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let by_path = |name: &str| {
        let path = m.at(name);
        objects
            .iter()
            .find(|o| o["path"] == path.as_str())
            .unwrap_or_else(|| panic!("no object for {name}: {objects:?}"))
    };
    let live = by_path("live.lock");
    let status = status_json(&m.path().join("live.lock"), &[]);
    for key in [
        "pid", "token", "verdict", "cause", "hostname", "acquired", "lease_ms", "expires",
    ] {
        assert_eq!(live[key], status[key], "{key}: list and status agree");
    }
    assert_eq!(live["leftovers"][0]["name"], ".live.lock.token");
    assert_eq!(live["leftovers"][0]["kind"], "token");
    let stale = by_path("stale.lock");
    assert_eq!(stale["verdict"], "stale");
    assert_eq!(stale["leftovers"][0]["name"], DEAD_TEMP);
    assert_eq!(stale["leftovers"][0]["gone"], true);
    assert_eq!(stale["leftovers"][0]["pid"], DEAD_PID);
    assert_eq!(by_path("absent.lock")["locked"], false);
    assert_eq!(
        objects.len(),
        5,
        "live, stale, job.pid, garbage, absent: {objects:?}"
    );
}

#[test]
fn list_of_a_lock_file_and_of_a_missing_directory() {
    let m = Mixed::new();
    let out = bounded(&["list", s(&m.path().join("stale.lock")), "/no/such/dir/"]);
    expect_code(&out, 3);
    let table = stdout(&out);
    assert!(
        table.contains("stale.lock") && table.contains(DEAD_TEMP),
        "{table}"
    );
    assert!(
        !table.contains("live.lock"),
        "only the lock asked for: {table}"
    );
    expect_stderr(&out, "/no/such/dir");
}

#[test]
fn clean_removes_exactly_what_is_stale_or_gone() {
    let m = Mixed::new();
    let before = names(m.path());
    let out = bounded(&["clean", "--dry-run", s(m.path())]);
    expect_code(&out, 0);
    let said = stdout(&out);
    assert_eq!(names(m.path()), before, "a dry run removes nothing");
    for name in ["stale.lock", DEAD_TEMP, GONE_LOCK_TEMP] {
        assert!(
            said.contains(&format!("would remove {}", m.at(name))),
            "{name}: {said}"
        );
    }

    let out = bounded(&["clean", s(m.path())]);
    expect_code(&out, 0);
    let said = stdout(&out);
    for name in ["stale.lock", DEAD_TEMP, GONE_LOCK_TEMP] {
        assert!(
            said.contains(&format!("removed {}", m.at(name))),
            "{name}: {said}"
        );
    }
    let mut expected: Vec<String> = before
        .into_iter()
        .filter(|n| !["stale.lock", DEAD_TEMP, GONE_LOCK_TEMP].contains(&n.as_str()))
        .collect();
    expected.sort();
    assert_eq!(
        names(m.path()),
        expected,
        "live, labm8's, malformed, token and the rest kept"
    );
    let v = status_json(&m.path().join("live.lock"), &["--pid", &m.owner.pid_str()]);
    assert_eq!(v["verdict"], "owned-by-self");
}

/// `clean` judged the lock stale, then stalls; meanwhile a job takes the
/// stale lock over. `clean` must leave the job's lock alone.
#[test]
fn clean_never_removes_a_lock_taken_while_it_runs() {
    let dir = sandbox();
    let flags = sandbox();
    let lock = dir.path().join("x.lock");
    expect_code(
        &lockfile(&["write", s(&lock), &DEAD_PID.to_string(), "1700000000"]),
        0,
    );
    let flag = flags.path().join("clean");
    let slow = Command::new(lockfile_bin())
        .args(["clean", s(dir.path())])
        .env(PAUSE_VAR, format!("after-judge:{}", s(&flag)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn clean");
    wait_for_file(&flag);
    let job = Sleeper::new();
    expect_code(
        &lockfile(&["acquire", "--pid", &job.pid_str(), s(&lock)]),
        0,
    );
    fs::remove_file(&flag).expect("resume clean");
    let out = slow.wait_with_output().expect("clean ends");
    expect_code(&out, 0);
    assert!(stdout(&out).contains("kept"), "{}", stdout(&out));
    let v = status_json(&lock, &["--pid", &job.pid_str()]);
    assert_eq!(v["verdict"], "owned-by-self", "the job's lock stands: {v}");
}

#[test]
fn status_takes_the_point_of_view_of_a_process_that_has_ended() {
    let dir = sandbox();
    let lock = dir.path().join("x.lock");
    let owner = Sleeper::new();
    expect_code(
        &lockfile(&["acquire", "--pid", &owner.pid_str(), s(&lock)]),
        0,
    );
    let v = status_json(&lock, &["--pid", &DEAD_PID.to_string()]);
    assert_eq!(v["verdict"], "held");
    assert_eq!(v["pid"], owner.pid());
    let out = lockfile(&["status", "--pid", &DEAD_PID.to_string(), s(&lock)]);
    expect_code(&out, 0);
}

#[test]
fn status_shows_the_lease_and_says_when_our_own_ran_out() {
    let dir = sandbox();
    let lock = dir.path().join("x.lock");
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    let out = lockfile(&[
        "acquire",
        "--pid",
        &pid,
        "--lease",
        "0.5",
        "--print-token",
        s(&lock),
    ]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out).trim(), "1");
    let v = status_json(&lock, &["--pid", &pid]);
    assert_eq!(v["lease_ms"], 500);
    assert!(
        v["expires"].as_str().is_some_and(|e| e.ends_with('Z')),
        "{v}"
    );
    assert_eq!(v["cause"], "ours");
    let text = stdout(&lockfile(&["status", "--pid", &pid, s(&lock)]));
    assert!(text.contains("lease:    0.5 s, runs out at"), "{text}");

    // Past the lease and the file times' second of slack.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = status_json(&lock, &["--pid", &pid]);
        if v["cause"] == "lease-expired" {
            assert_eq!(v["verdict"], "owned-by-self", "{v}");
            assert!(
                v["reason"].as_str().is_some_and(|r| r.contains("ran out")),
                "{v}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the lease never ran out: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = lockfile(&["refresh", "--pid", &pid, s(&lock)]);
    expect_code(&out, 1);
    expect_stderr(&out, "ran out");
    let text = stdout(&lockfile(&["status", "--pid", &pid, s(&lock)]));
    assert!(text.contains("ran out at"), "{text}");

    // Acquiring again takes it anew, with the next token.
    let out = lockfile(&[
        "acquire",
        "--pid",
        &pid,
        "--lease",
        "30",
        "--print-token",
        s(&lock),
    ]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out).trim(), "2");
    expect_code(&lockfile(&["refresh", "--pid", &pid, s(&lock)]), 0);
}

/// A lock the user may not read is reported with why, and the listing goes
/// on: another user's `*.lock` in a shared directory.
#[test]
#[ignore = "needs root (files another user cannot read need root): scripts/test runs it as root"]
fn list_goes_on_past_a_lock_it_cannot_read() {
    require_root("files another user cannot read need root");
    use std::os::unix::fs::PermissionsExt;
    let dir = sandbox();
    let p = fs::canonicalize(dir.path()).expect("canonical");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
    let owner = Sleeper::new();
    expect_code(
        &lockfile(&[
            "acquire",
            "--pid",
            &owner.pid_str(),
            s(&p.join("open.lock")),
        ]),
        0,
    );
    fs::set_permissions(p.join("open.lock"), fs::Permissions::from_mode(0o644)).expect("chmod");
    expect_code(
        &lockfile(&[
            "acquire",
            "--pid",
            &owner.pid_str(),
            s(&p.join("secret.lock")),
        ]),
        0,
    );
    fs::set_permissions(p.join("secret.lock"), fs::Permissions::from_mode(0o600)).expect("chmod");
    let bin = world_executable_lockfile();
    let mut cmd = Command::new(&bin);
    cmd.args(["list", "--pid", &owner.pid_str(), s(&p)])
        .uid(65534)
        .gid(65534);
    let out = output_retrying(&mut cmd);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("open.lock"), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("secret.lock") && err.contains("permission denied (EACCES)"),
        "says why: {err}"
    );
}
