//! The `lockfile` command line: exit codes, messages, JSON, `run`, `--wait`.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn acquire_status_release_for_a_pid() {
    let dir = sandbox();
    let lock = dir.path().join("job.lock");
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    expect_code(&lockfile(&["acquire", "--pid", &pid, s(&lock)]), 0);
    let first_line = fs::read_to_string(&lock).expect("lock");
    assert!(first_line.starts_with(&format!("{pid} ")), "{first_line}");

    let v = status_json(&lock, &["--pid", &pid]);
    assert_eq!(v["path"], s(&lock));
    assert_eq!(v["locked"], true);
    assert_eq!(v["pid"], owner.pid());
    assert!(v["timestamp"].as_f64().expect("float") > 1.7e9);
    let acquired = v["acquired"].as_str().expect("rfc3339");
    assert!(
        acquired.ends_with('Z') && acquired.contains('T'),
        "{acquired}"
    );
    assert_eq!(v["owned_by_self"], true);
    assert_eq!(v["verdict"], "owned-by-self");
    assert!(v["reason"].as_str().expect("reason").contains(&pid));

    // Seen from another process: held, and acquire/release are refused with 1.
    let other = Sleeper::new();
    let v = status_json(&lock, &["--pid", &other.pid_str()]);
    assert_eq!(v["verdict"], "held");
    assert_eq!(v["owned_by_self"], false);
    let out = lockfile(&["acquire", "--pid", &other.pid_str(), s(&lock)]);
    expect_code(&out, 1);
    let msg = stderr(&out);
    assert!(
        msg.starts_with(&format!(
            "lockfile: cannot acquire `{}`: held by pid {pid} (alive) since ",
            s(&lock)
        )),
        "{msg}"
    );
    assert!(msg.trim_end().ends_with(" UTC"), "{msg}");
    expect_code(
        &lockfile(&["release", "--pid", &other.pid_str(), s(&lock)]),
        1,
    );
    assert!(lock.exists());

    expect_code(&lockfile(&["release", "--pid", &pid, s(&lock)]), 0);
    assert!(!lock.exists());
    let v = status_json(&lock, &[]);
    assert_eq!(v["locked"], false);
    assert_eq!(v["verdict"], "unlocked");
    for key in ["pid", "timestamp", "acquired"] {
        assert!(v[key].is_null(), "{key} should be null: {v}");
    }
}

#[test]
fn default_pid_is_the_calling_process() {
    let dir = sandbox();
    let lock = dir.path().join("shell.lock");
    // One shell runs acquire then status: both act for that shell.
    let script = format!(
        "{bin} acquire {l} && {bin} status --json {l} && echo \"shell=$$\"",
        bin = lockfile_bin(),
        l = s(&lock)
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    expect_code(&out, 0);
    let text = stdout(&out);
    let shell: u32 = text
        .lines()
        .find_map(|l| l.strip_prefix("shell="))
        .and_then(|p| p.parse().ok())
        .expect("shell pid");
    let v: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("json")).expect("json");
    assert_eq!(v["pid"], shell);
    assert_eq!(v["verdict"], "owned-by-self");
    // The shell is gone now: the lock is stale.
    let v = status_json(&lock, &[]);
    assert_eq!(v["verdict"], "stale");
    assert_eq!(v["reason"], format!("pid {shell} is not running"));
}

#[test]
fn stale_lock_message_and_replace_stale() {
    let dir = sandbox();
    let lock = dir.path().join("stale.lock");
    expect_code(
        &lockfile(&["write", s(&lock), &DEAD_PID.to_string(), "1700000000.25"]),
        0,
    );
    assert_eq!(
        fs::read_to_string(&lock).expect("lock"),
        "4194304 1700000000.250000\n"
    );
    let v = status_json(&lock, &[]);
    assert_eq!(v["verdict"], "stale");
    assert_eq!(v["timestamp"], 1_700_000_000.25);
    assert_eq!(v["acquired"], "2023-11-14T22:13:20.250000Z");
    // labm8's refusal, on request.
    let out = lockfile(&["acquire", "--no-replace-stale", s(&lock)]);
    expect_code(&out, 1);
    let msg = stderr(&out);
    assert!(
        msg.contains("held by pid 4194304 (stale) since 2023-11-14 22:13:20 UTC"),
        "{msg}"
    );
    assert!(msg.contains("without --no-replace-stale"), "{msg}");
    // By default (and with the old flag) a stale lock is taken over: a
    // crash never wedges a cron job.
    let owner = Sleeper::new();
    for flags in [&[][..], &["--replace-stale"][..]] {
        let mut argv = vec!["acquire"];
        argv.extend_from_slice(flags);
        let pid = owner.pid_str();
        argv.extend(["--pid", &pid, s(&lock)]);
        expect_code(&lockfile(&argv), 0);
        assert_eq!(status_json(&lock, &[])["pid"], owner.pid());
        assert_eq!(names(dir.path()), vec!["stale.lock"]);
        fs::write(&lock, format!("{DEAD_PID} 1700000000.25\n")).expect("stale again");
    }
}

/// `lockfile run` after a `kill -9` of the previous `lockfile run`: the
/// next run takes the stale lock over and runs its command (exit 0);
/// `--no-replace-stale` refuses, as labm8 would.
#[test]
fn a_killed_run_never_wedges_the_next_run() {
    let dir = sandbox();
    let lock = dir.path().join("cron.lock");
    let marker = dir.path().join("ran");
    let mut first = std::process::Command::new(lockfile_bin())
        .args(["run", s(&lock), "--", "sleep", "600"])
        .spawn()
        .expect("spawn lockfile run");
    wait_for_file(&lock);
    let record = fs::read_to_string(&lock).expect("lock");
    let command_pid: u32 = record
        .lines()
        .find_map(|l| l.strip_prefix("companion="))
        .and_then(|p| p.parse().ok())
        .expect("the command's pid");
    first.kill().expect("kill -9 lockfile run");
    let _ = first.wait();
    // The command survives its `lockfile` (on Linux it gets SIGTERM; make
    // sure it is gone, as after a reboot of a container).
    let _ = std::process::Command::new("kill")
        .args(["-9", &command_pid.to_string()])
        .status();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(lock.exists(), "the killed run left its lock");
    let out = lockfile(&[
        "run",
        "--no-replace-stale",
        s(&lock),
        "--",
        "touch",
        s(&marker),
    ]);
    expect_code(&out, 1);
    assert!(!marker.exists());
    let out = lockfile(&["run", s(&lock), "--", "touch", s(&marker)]);
    expect_code(&out, 0);
    assert!(marker.exists(), "the next run ran its command");
    assert!(!lock.exists());
    assert!(stderr(&out).is_empty(), "quiet: {}", stderr(&out));
}

#[test]
fn force_takes_a_live_lock() {
    let dir = sandbox();
    let lock = dir.path().join("f.lock");
    let a = Sleeper::new();
    let b = Sleeper::new();
    expect_code(&lockfile(&["acquire", "--pid", &a.pid_str(), s(&lock)]), 0);
    expect_code(
        &lockfile(&[
            "acquire",
            "--replace-stale",
            "--pid",
            &b.pid_str(),
            s(&lock),
        ]),
        1,
    );
    expect_code(
        &lockfile(&["acquire", "--force", "--pid", &b.pid_str(), s(&lock)]),
        0,
    );
    assert_eq!(status_json(&lock, &[])["pid"], b.pid());
    expect_code(&lockfile(&["release", "--force", s(&lock)]), 0);
    assert!(!lock.exists());
}

#[test]
fn usage_errors_exit_2() {
    let dir = sandbox();
    let lock = dir.path().join("u.lock");
    for args in [
        vec!["acquire"],
        vec!["frobnicate", s(&lock)],
        vec!["acquire", "--wait", "soon", s(&lock)],
        vec!["acquire", "--pid", "0", s(&lock)],
        vec!["acquire", "--pid", "-4", s(&lock)],
        vec!["write", s(&lock), "-1"],
        vec!["write", s(&lock), "12", "yesterday"],
        vec!["write", s(&lock), "12", "+-5e0"],
        vec!["run", s(&lock)],
    ] {
        let out = lockfile(&args);
        expect_code(&out, 2);
        assert!(!stderr(&out).is_empty(), "{args:?} says why");
    }
    assert!(!lock.exists());
    let help = lockfile(&["--help"]);
    expect_code(&help, 0);
    let text = stdout(&help);
    for needle in ["Exit status", "1  the lock is held", "3  any other error"] {
        assert!(text.contains(needle), "--help lacks `{needle}`:\n{text}");
    }
}

#[test]
fn acquire_for_a_dead_pid_is_an_error() {
    let dir = sandbox();
    let lock = dir.path().join("d.lock");
    let out = lockfile(&["acquire", "--pid", &DEAD_PID.to_string(), s(&lock)]);
    expect_code(&out, 3);
    expect_stderr(&out, "process 4194304 is not running");
    assert!(!lock.exists());
}

#[test]
fn wait_times_out_with_exit_1_and_says_who_holds_it() {
    let dir = sandbox();
    let lock = dir.path().join("w.lock");
    let holder = Sleeper::new();
    expect_code(
        &lockfile(&["acquire", "--pid", &holder.pid_str(), s(&lock)]),
        0,
    );
    let other = Sleeper::new();
    let out = lockfile(&[
        "acquire",
        "-v",
        "--wait",
        "0.3",
        "--pid",
        &other.pid_str(),
        s(&lock),
    ]);
    expect_code(&out, 1);
    let msg = stderr(&out);
    assert_eq!(msg.matches("waiting for").count(), 1, "says it once: {msg}");
    assert!(
        msg.contains(&format!("held by pid {}", holder.pid())),
        "{msg}"
    );
    // Without -v only the outcome is told; with -q not even that (the exit
    // status says it).
    let out = lockfile(&["acquire", "-w", "0.2", "--pid", &other.pid_str(), s(&lock)]);
    expect_code(&out, 1);
    assert_eq!(stderr(&out).matches("waiting for").count(), 0);
    assert!(stderr(&out).contains("cannot acquire"), "{}", stderr(&out));
    let out = lockfile(&[
        "acquire",
        "-q",
        "-w",
        "0.2",
        "--pid",
        &other.pid_str(),
        s(&lock),
    ]);
    expect_code(&out, 1);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let out = lockfile(&["run", "-q", "-E", "75", s(&lock), "true"]);
    expect_code(&out, 75);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // Errors are always told.
    let out = lockfile(&["acquire", "-q", s(&dir.path().join("no/such/dir.lock"))]);
    expect_code(&out, 3);
    assert!(!stderr(&out).is_empty());
}

/// flock's habits: `-w`, `-n`, `-E`, `-c`, and the command without `--`.
#[test]
fn run_takes_flocks_options_and_a_command_without_dashes() {
    let dir = sandbox();
    let lock = dir.path().join("f.lock");
    let out = lockfile(&["run", s(&lock), "sh", "-c", "echo $0 $1", "a", "b"]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out), "a b\n");
    let out = lockfile(&["run", "-n", s(&lock), "-c", "echo via sh; exit 4"]);
    expect_code(&out, 4);
    assert_eq!(stdout(&out), "via sh\n");
    let out = lockfile(&["run", "-w", "1", s(&lock), "--", "ls", "-d", "/"]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out), "/\n");
    assert!(!lock.exists());
    // -c and a COMMAND together are a usage error.
    expect_code(&lockfile(&["run", s(&lock), "-c", "true", "false"]), 2);
}

/// `--wait` takes any number of seconds (what no Duration holds is for
/// ever); `-E` says what an exit status is, not clap's `-- -1` advice.
#[test]
fn waits_of_any_length_and_exit_statuses_are_understood() {
    let dir = sandbox();
    let lock = dir.path().join("x.lock");
    for wait in ["1e9", "1e300", "0", "forever"] {
        expect_code(&lockfile(&["run", "-w", wait, s(&lock), "true"]), 0);
    }
    for wait in ["-1", "nan", "soon"] {
        let out = lockfile(&["run", "-w", wait, s(&lock), "true"]);
        expect_code(&out, 2);
        expect_stderr(&out, "is not a wait");
    }
    for code in ["-1", "256", "x"] {
        let out = lockfile(&["run", "-E", code, s(&lock), "true"]);
        expect_code(&out, 2);
        expect_stderr(&out, "is not an exit status");
        assert!(!stderr(&out).contains("-- -1"), "{}", stderr(&out));
    }
}

/// A wait never waits on a lock it can take over.
#[test]
fn a_wait_takes_a_stale_lock_over_at_once_and_quietly() {
    let dir = sandbox();
    let lock = dir.path().join("s.lock");
    fs::write(&lock, format!("{DEAD_PID} 1700000000.0\n")).expect("plant");
    let owner = Sleeper::new();
    let start = Instant::now();
    let out = lockfile(&[
        "acquire",
        "-w",
        "forever",
        "--pid",
        &owner.pid_str(),
        s(&lock),
    ]);
    expect_code(&out, 0);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(status_json(&lock, &[])["pid"], owner.pid());
}

#[test]
fn wait_succeeds_when_the_holder_releases() {
    let dir = sandbox();
    let lock = dir.path().join("w.lock");
    let holder = Sleeper::new();
    expect_code(
        &lockfile(&["acquire", "--pid", &holder.pid_str(), s(&lock)]),
        0,
    );
    let other = Sleeper::new();
    let waiter = Command::new(lockfile_bin())
        .args([
            "acquire",
            "--wait",
            "forever",
            "--pid",
            &other.pid_str(),
            s(&lock),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(300));
    expect_code(
        &lockfile(&["release", "--pid", &holder.pid_str(), s(&lock)]),
        0,
    );
    let out = waiter.wait_with_output().expect("waiter ends");
    expect_code(&out, 0);
    assert!(
        stderr(&out).is_empty(),
        "a wait that succeeds is silent (cron mails stderr): {}",
        stderr(&out)
    );
    assert_eq!(status_json(&lock, &[])["pid"], other.pid());
}

#[test]
fn run_holds_the_lock_passes_the_exit_code_and_releases() {
    let dir = sandbox();
    let lock = dir.path().join("r.lock");
    let probe = format!(
        "{} status --json {} > {}/seen; exit 7",
        lockfile_bin(),
        s(&lock),
        s(dir.path())
    );
    let out = lockfile(&["run", s(&lock), "--", "sh", "-c", &probe]);
    expect_code(&out, 7);
    let seen: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("seen")).expect("seen")).expect("json");
    assert_eq!(seen["locked"], true, "held while COMMAND ran: {seen}");
    assert_eq!(seen["verdict"], "held");
    assert!(!lock.exists(), "released after COMMAND");
    expect_code(&lockfile(&["run", s(&lock), "--", "true"]), 0);
}

#[test]
fn run_refuses_while_held_and_never_starts_the_command() {
    let dir = sandbox();
    let lock = dir.path().join("r.lock");
    let holder = Sleeper::new();
    expect_code(
        &lockfile(&["acquire", "--pid", &holder.pid_str(), s(&lock)]),
        0,
    );
    let marker = dir.path().join("ran");
    let out = lockfile(&["run", s(&lock), "--", "touch", s(&marker)]);
    expect_code(&out, 1);
    assert!(!marker.exists());
    expect_stderr(&out, "cannot acquire");
}

#[test]
fn run_reports_a_signal_as_128_plus_n_and_forwards_sigterm() {
    let dir = sandbox();
    let lock = dir.path().join("sig.lock");
    let out = lockfile(&["run", s(&lock), "--", "sh", "-c", "kill -KILL $$"]);
    expect_code(&out, 128 + 9);
    assert!(!lock.exists());

    let started = dir.path().join("started");
    let script = format!("touch {}; exec sleep 30", s(&started));
    let mut child = Command::new(lockfile_bin())
        .args(["run", s(&lock), "--", "sh", "-c", &script])
        .spawn()
        .expect("spawn");
    wait_for_file(&started);
    assert!(lock.exists());
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("kill");
    let t = Instant::now();
    let status = child.wait().expect("wait");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "sleep 30 was not stopped"
    );
    assert_eq!(status.code(), Some(128 + 15), "{status:?}");
    assert!(!lock.exists(), "released after the forwarded signal");
}

/// SIGINT (a user's ^C reaches the whole foreground group, but not a
/// `kill` aimed at `lockfile`) and SIGHUP (the terminal gone) are passed
/// on to COMMAND as SIGTERM is, and `lockfile` exits as it did, then
/// releases the lock.
///
/// `lockfile` starts with both signals at their default action: a
/// signal ignored when `lockfile` starts (`nohup`, or a job a shell put in
/// the background, which ignores SIGINT) stays ignored in COMMAND, as with
/// any exec, so the test would otherwise depend on how it was started.
#[test]
fn run_forwards_sigint_and_sighup() {
    use std::os::unix::process::CommandExt;
    let dir = sandbox();
    for (signal, number) in [
        (rustix::process::Signal::INT, 2),
        (rustix::process::Signal::HUP, 1),
    ] {
        let lock = dir.path().join(format!("sig{number}.lock"));
        let started = dir.path().join(format!("started{number}"));
        let script = format!("touch {}; exec sleep 30", s(&started));
        let mut command = Command::new(lockfile_bin());
        command.args(["run", s(&lock), "--", "sh", "-c", &script]);
        // SAFETY: `signal` is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGHUP, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = command.spawn().expect("spawn");
        wait_for_file(&started);
        assert!(lock.exists());
        let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, signal).expect("kill");
        let t = Instant::now();
        let status = child.wait().expect("wait");
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "sleep 30 was not stopped by signal {number}"
        );
        assert_eq!(status.code(), Some(128 + number), "{status:?}");
        assert!(
            !lock.exists(),
            "released after the forwarded signal {number}"
        );
    }
}

/// As the shell and flock(1): 127 for a command that is not found, 126 for
/// one that cannot be executed; the lock is released either way.
#[test]
fn run_with_a_command_that_cannot_run_exits_126_or_127_and_releases() {
    let dir = sandbox();
    let lock = dir.path().join("m.lock");
    let out = lockfile(&["run", s(&lock), "--", "/nonexistent/command"]);
    expect_code(&out, 127);
    expect_stderr(&out, "cannot run `/nonexistent/command`");
    assert!(!lock.exists());
    let script = dir.path().join("not-executable");
    fs::write(&script, "#!/bin/sh\necho hi\n").expect("script");
    let out = lockfile(&["run", s(&lock), "--", s(&script)]);
    expect_code(&out, 126);
    expect_stderr(&out, "cannot run");
    assert!(!lock.exists());
}

/// A script without a `#!` line runs through /bin/sh, as execvp runs it,
/// and gets the fencing token; the gate's exec that failed first with
/// ENOEXEC leaves nothing behind.
#[test]
fn run_runs_a_script_without_an_interpreter_line_with_its_token() {
    use std::os::unix::fs::PermissionsExt;
    let dir = sandbox();
    let lock = dir.path().join("sh.lock");
    let script = dir.path().join("no-interpreter-line");
    fs::write(&script, "echo \"token=$LOCKFILE_TOKEN\"\n").expect("script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    for expected in 1..=3 {
        let out = lockfile(&["run", "--token", s(&lock), "--", s(&script)]);
        expect_code(&out, 0);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("token={expected}"),
            "{out:?}"
        );
        assert!(!lock.exists());
    }
}

/// `--conflict-exit-code N` tells "busy" from COMMAND's own exit 1.
#[test]
fn run_exits_with_the_conflict_exit_code_when_the_lock_is_held() {
    let dir = sandbox();
    let lock = dir.path().join("c.lock");
    let holder = Sleeper::new();
    expect_code(
        &lockfile(&["acquire", "--pid", &holder.pid_str(), s(&lock)]),
        0,
    );
    let marker = dir.path().join("ran");
    let out = lockfile(&[
        "run",
        "--conflict-exit-code",
        "75",
        s(&lock),
        "--",
        "touch",
        s(&marker),
    ]);
    expect_code(&out, 75);
    expect_stderr(&out, "cannot acquire");
    assert!(!marker.exists(), "COMMAND did not run");
    let out = lockfile(&[
        "run",
        "--conflict-exit-code",
        "75",
        "--wait",
        "0.05",
        s(&lock),
        "--",
        "true",
    ]);
    expect_code(&out, 75);
    // COMMAND's own failures keep their codes.
    drop(holder);
    let out = lockfile(&[
        "run",
        "--replace-stale",
        "--conflict-exit-code",
        "75",
        s(&lock),
        "--",
        "sh",
        "-c",
        "exit 1",
    ]);
    expect_code(&out, 1);
}

#[test]
fn write_plants_a_record_as_given() {
    let dir = sandbox();
    let lock = dir.path().join("p.lock");
    expect_code(&lockfile(&["write", s(&lock), "1234", "1700000000.5"]), 0);
    assert_eq!(
        fs::read_to_string(&lock).expect("lock"),
        "1234 1700000000.500000\n"
    );
    // Replaces a file atomically, even a malformed one.
    expect_code(&lockfile(&["write", s(&lock), "99"]), 0);
    let text = fs::read_to_string(&lock).expect("lock");
    let mut tokens = text.split_whitespace();
    assert_eq!(tokens.next(), Some("99"));
    let ts: f64 = tokens.next().and_then(|t| t.parse().ok()).expect("ts");
    assert!((ts - now_secs()).abs() < 60.0);
    assert_eq!(names(dir.path()), vec!["p.lock"]);
}

#[test]
fn plain_status_is_for_people() {
    let dir = sandbox();
    let lock = dir.path().join("s.lock");
    expect_code(
        &lockfile(&["write", s(&lock), &DEAD_PID.to_string(), "1700000000"]),
        0,
    );
    let out = lockfile(&["status", s(&lock)]);
    expect_code(&out, 0);
    let text = stdout(&out);
    for needle in [
        "locked:   yes",
        "pid:      4194304",
        "acquired: 2023-11-14 22:13:20 UTC",
        "verdict:  stale",
        "reason:   pid 4194304 is not running",
    ] {
        assert!(text.contains(needle), "lacks `{needle}`:\n{text}");
    }
}

#[test]
fn status_into_a_closed_pipe_exits_0_like_other_tools() {
    let dir = sandbox();
    let lock = dir.path().join("p.lock");
    let holder = Sleeper::new();
    expect_code(
        &lockfile(&["acquire", "--pid", &holder.pid_str(), s(&lock)]),
        0,
    );
    // As `lockfile status L | head -0`: the reader is gone before we write.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(lockfile_bin())
        .args(["status", s(&lock)])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run lockfile");
    expect_code(&out, 0);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

/// One range and one message for pids, and no advice that does not work
/// (clap's "to pass `-1` as a value, use `-- -1`").
#[test]
fn bad_pids_and_waits_get_one_message_and_no_bad_advice() {
    let dir = sandbox();
    let lock = dir.path().join("a.lock");
    for (args, needle) in [
        (
            vec!["acquire", "--pid", "-1", s(&lock)],
            "a pid is a whole number from 1 to 2147483647",
        ),
        (
            vec!["acquire", "--pid=-1", s(&lock)],
            "a pid is a whole number from 1 to 2147483647",
        ),
        (
            vec!["acquire", "--pid", "4294967295", s(&lock)],
            "a pid is a whole number from 1 to 2147483647",
        ),
        (
            vec!["acquire", "--pid", "2147483648", s(&lock)],
            "a pid is a whole number from 1 to 2147483647",
        ),
        (
            vec!["write", s(&lock), "-5"],
            "a pid is a whole number from 1 to 2147483647",
        ),
        (vec!["acquire", "--wait", "-1", s(&lock)], "0 or more"),
    ] {
        let out = lockfile(&args);
        expect_code(&out, 2);
        expect_stderr(&out, needle);
        assert!(!stderr(&out).contains("-- -"), "{args:?}: {}", stderr(&out));
    }
    assert!(!lock.exists());
}

#[test]
fn releasing_another_owners_stale_lock_suggests_force() {
    let dir = sandbox();
    let lock = dir.path().join("s.lock");
    expect_code(
        &lockfile(&["write", s(&lock), &DEAD_PID.to_string(), "1700000000"]),
        0,
    );
    let me = Sleeper::new();
    let out = lockfile(&["release", "--pid", &me.pid_str(), s(&lock)]);
    expect_code(&out, 1);
    expect_stderr(&out, "use --force to remove it");
    expect_code(
        &lockfile(&["release", "--force", "--pid", &me.pid_str(), s(&lock)]),
        0,
    );
    assert!(!lock.exists());
}

/// `status` for the default `--pid` says who that is: the shell that ran
/// `lockfile`, not `lockfile` itself.
#[test]
fn status_of_our_own_lock_names_the_default_pid() {
    let dir = sandbox();
    let lock = dir.path().join("o.lock");
    let out = Command::new("sh")
        .args([
            "-c",
            "\"$0\" acquire \"$1\" && \"$0\" status \"$1\" && \"$0\" release \"$1\"",
            lockfile_bin(),
            s(&lock),
        ])
        .output()
        .expect("sh");
    expect_code(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("verdict:  owned-by-self"), "{text}");
    assert!(
        text.contains("the default --pid: the parent of `lockfile`"),
        "{text}"
    );
}

/// The man page in `docs/` is the one `lockfile man` prints (both come from
/// the clap definitions), and `man -l` renders it.
#[test]
fn the_man_page_is_current_and_renders() {
    let out = lockfile(&["man"]);
    expect_code(&out, 0);
    let committed = fs::read("docs/lockfile.1").expect("docs/lockfile.1");
    assert!(
        out.stdout == committed,
        "docs/lockfile.1 is out of date: `cargo run -q -- man > docs/lockfile.1`"
    );
    let rendered = Command::new("man")
        .args(["-l", "docs/lockfile.1"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output();
    let rendered = match rendered {
        Ok(r) => r,
        Err(e) => panic!("`man` is needed to render the man page (Debian: man-db): {e}"),
    };
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let text = String::from_utf8_lossy(&rendered.stdout);
    for section in [
        "SYNOPSIS",
        "LOCKFILE RUN",
        "LOCKFILE LIST",
        "LOCKFILE CLEAN",
        "EXIT STATUS",
    ] {
        assert!(
            text.contains(section),
            "{section} missing from the rendered page"
        );
    }
}

/// bash loads the completion script and completes a subcommand and the
/// options of `run`; zsh's and fish's scripts name every subcommand.
#[test]
fn completions_complete_subcommands_and_options() {
    let script = |shell: &str| {
        let out = lockfile(&["completions", shell]);
        expect_code(&out, 0);
        stdout(&out)
    };
    let bash = script("bash");
    let out = Command::new("bash")
        .arg("-c")
        .arg(
            r#"eval "$SCRIPT"
               COMP_WORDS=(lockfile li); COMP_CWORD=1; _lockfile lockfile li lockfile
               echo "${COMPREPLY[@]}"
               COMP_WORDS=(lockfile run -); COMP_CWORD=2; _lockfile lockfile - run
               echo "${COMPREPLY[@]}""#,
        )
        .env("SCRIPT", &bash)
        .output()
        .expect("bash runs");
    let said = String::from_utf8_lossy(&out.stdout);
    let mut lines = said.lines();
    assert_eq!(lines.next(), Some("list"), "{said}");
    let run_options = lines.next().unwrap_or_default();
    for option in ["--wait", "--conflict-exit-code", "--command", "--lease"] {
        assert!(
            run_options.split(' ').any(|o| o == option),
            "{option}: {said}"
        );
    }
    for shell in ["zsh", "fish"] {
        let text = script(shell);
        for sub in ["acquire", "release", "run", "status", "list", "clean"] {
            assert!(text.contains(sub), "{shell}: {sub} missing");
        }
    }
    expect_code(&lockfile(&["completions", "tcsh"]), 2);
}
