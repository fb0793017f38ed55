//! `lockfile run`'s companion: the lock stays held while COMMAND lives, even
//! when `lockfile` is SIGKILLed and COMMAND changed its credentials (which
//! clears its parent-death signal).
//!
//! These tests need root (setpriv, setuid files).

use crate::common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `lockfile acquire --replace-stale --pid OWNER LOCK`.
fn replace_stale_for(owner: &Sleeper, lock: &Path) -> Output {
    lockfile(&[
        "acquire",
        "--replace-stale",
        "--pid",
        &owner.pid_str(),
        s(lock),
    ])
}

/// The state letter of `/proc/PID/stat` (`R`, `S`, `Z`, ...), `None` once gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

fn running(pid: u32) -> bool {
    proc_state(pid).is_some_and(|c| c != 'Z' && c != 'X')
}

fn sigkill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("pid");
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
}

#[track_caller]
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The pid of the child of `parent` whose command name is `comm`.
fn child_named(parent: u32, comm: &str) -> u32 {
    let mut found = None;
    wait_until(&format!("a child `{comm}` of {parent}"), || {
        found = fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find(|&pid| {
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
                let name = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                ppid == Some(parent) && name.trim() == comm
            });
        found.is_some()
    });
    found.expect("found")
}

/// `lockfile run LOCK -- COMMAND` where COMMAND changes its credentials,
/// which clears its parent-death signal. `lockfile` is SIGKILLed; COMMAND
/// runs on, and the lock must stay held until it ends.
fn run_survives_sigkill_of_lockfile(command: &[&str], comm: &str) {
    let dir = sandbox();
    let lock = dir.path().join("job.lock");
    let mut args = vec!["run", s(&lock), "--"];
    args.extend_from_slice(command);
    let mut run = Command::new(lockfile_bin())
        .args(&args)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn lockfile run");
    let child = child_named(run.id(), comm);
    run.kill().expect("SIGKILL lockfile");
    let _ = run.wait();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        running(child),
        "premise: `{}` lost its parent-death signal and outlives lockfile",
        command.join(" ")
    );
    let other = Sleeper::new();
    let out = replace_stale_for(&other, &lock);
    expect_code(&out, 1);
    expect_stderr(&out, "the command it started, is running");
    let status = status_json(&lock, &[]);
    assert_eq!(status["verdict"], "held", "{status}");
    // Once COMMAND ends too, the lock is stale and recovered without force.
    sigkill(child);
    wait_until("COMMAND ends", || !running(child));
    expect_code(&replace_stale_for(&other, &lock), 0);
}

#[test]
#[ignore = "needs root (setpriv --reuid needs CAP_SETUID): scripts/test runs it as root"]
fn run_keeps_the_lock_while_a_command_that_dropped_privileges_outlives_it() {
    require_root("setpriv --reuid needs CAP_SETUID");
    run_survives_sigkill_of_lockfile(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sleep",
            "300",
        ],
        "sleep",
    );
}

#[test]
#[ignore = "needs root (making a setuid binary needs root): scripts/test runs it as root"]
fn run_keeps_the_lock_while_a_setuid_command_outlives_it() {
    require_root("making a setuid binary needs root");
    // Under the target dir, not /tmp: /tmp may be mounted nosuid.
    let dir = tempfile::Builder::new()
        .prefix("setuid-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let sleep = which("sleep");
    let bin = dir.path().join("setuid-sleep");
    fs::copy(&sleep, &bin).expect("copy sleep");
    rustix::fs::chown(
        &bin,
        Some(rustix::fs::Uid::from_raw(65534)),
        Some(rustix::fs::Gid::from_raw(65534)),
    )
    .expect("chown");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o4755)).expect("chmod u+s");
    run_survives_sigkill_of_lockfile(&[s(&bin), "300"], "setuid-sleep");
}

fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("this test needs `{program}` on PATH"))
}
