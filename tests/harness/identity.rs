//! Process identity: recycled pids, other hosts, namespaces and boots, and
//! live processes of other users.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::common::*;

/// Plants a full record for `pid` with the given identity fields.
fn plant(path: &std::path::Path, pid: u32, timestamp: f64, fields: &[(&str, String)]) {
    let mut text = format!("{pid} {timestamp:.6}\n");
    for (k, v) in fields {
        text.push_str(&format!("{k}={v}\n"));
    }
    fs::write(path, text).expect("plant");
}

fn verdict(path: &std::path::Path) -> (String, String) {
    let v = status_json(path, &[]);
    (
        v["verdict"].as_str().expect("verdict").to_owned(),
        v["reason"].as_str().expect("reason").to_owned(),
    )
}

#[test]
fn recycled_pid_is_stale_and_the_real_owner_is_held() {
    let dir = sandbox();
    let lock = dir.path().join("id.lock");
    let p = Sleeper::new();
    let ticks = start_ticks(p.pid());
    plant(
        &lock,
        p.pid(),
        now_secs(),
        &[("start", ticks.to_string()), ("boot", boot_id())],
    );
    let (v, reason) = verdict(&lock);
    assert_eq!(v, "held", "{reason}");
    plant(
        &lock,
        p.pid(),
        now_secs(),
        &[("start", (ticks + 1).to_string())],
    );
    let (v, reason) = verdict(&lock);
    assert_eq!(v, "stale");
    assert!(reason.contains("recycled"), "{reason}");
    let other = Sleeper::new();
    expect_code(
        &lockfile(&[
            "acquire",
            "--replace-stale",
            "--pid",
            &other.pid_str(),
            s(&lock),
        ]),
        0,
    );
}

#[test]
fn without_start_ticks_a_process_younger_than_the_lock_is_not_its_owner() {
    let dir = sandbox();
    let lock = dir.path().join("young.lock");
    let p = Sleeper::new();
    // Taken an hour before this process started: a labm8 file with a reused pid.
    plant(&lock, p.pid(), now_secs() - 3600.0, &[]);
    let (v, reason) = verdict(&lock);
    assert_eq!(v, "stale");
    assert!(
        reason.contains("started 59 min after the lock was taken")
            || reason.contains("started 60 min after"),
        "{reason}"
    );
    plant(&lock, p.pid(), now_secs(), &[]);
    assert_eq!(verdict(&lock).0, "held");
}

#[test]
fn another_host_is_foreign_never_stale() {
    let dir = sandbox();
    let lock = dir.path().join("host.lock");
    plant(
        &lock,
        DEAD_PID,
        now_secs(),
        &[("host", format!("not-{}", hostname()))],
    );
    let (v, reason) = verdict(&lock);
    assert_eq!(v, "foreign");
    assert!(reason.contains("another host"), "{reason}");
    let out = lockfile(&["acquire", "--replace-stale", s(&lock)]);
    expect_code(&out, 1);
    expect_stderr(&out, &format!("(on host not-{})", hostname()));
    // labm8 2020's `PID TIMESTAMP HOSTNAME` first line is read the same way.
    fs::write(&lock, format!("{DEAD_PID} 1700000000.0 elsewhere\n")).expect("plant");
    assert_eq!(verdict(&lock).0, "foreign");
}

#[test]
fn another_pid_namespace_is_foreign() {
    let dir = sandbox();
    let lock = dir.path().join("ns.lock");
    plant(
        &lock,
        DEAD_PID,
        now_secs(),
        &[("host", hostname()), ("pidns", "1".into())],
    );
    let (v, reason) = verdict(&lock);
    assert_eq!(v, "foreign");
    assert!(reason.contains("PID namespace"), "{reason}");
}

#[test]
fn a_previous_boot_is_stale_even_if_the_pid_runs() {
    let dir = sandbox();
    let lock = dir.path().join("boot.lock");
    let p = Sleeper::new();
    plant(
        &lock,
        p.pid(),
        now_secs(),
        &[("host", hostname()), ("boot", "an-earlier-boot".into())],
    );
    let (v, reason) = verdict(&lock);
    assert_eq!(v, "stale");
    assert!(
        reason.contains("before the machine last booted"),
        "{reason}"
    );
}

#[test]
fn a_live_process_of_another_user_is_held() {
    // kill(pid, 0) fails with EPERM for another user's process: that process
    // exists. As root, ask as `nobody` about a root process; otherwise ask
    // about pid 1, which belongs to root.
    let dir = sandbox();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = world_executable_lockfile();
    let root_process = Sleeper::new();
    let pid = if is_root() { root_process.pid() } else { 1 };
    let lock = dir.path().join("user.lock");
    plant(&lock, pid, now_secs(), &[]);
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o644)).expect("chmod");
    // Seen from a process of ours (pid 1 would be the owner itself).
    let viewer = Sleeper::new();
    let mut cmd = Command::new(&bin);
    cmd.args(["status", "--json", "--pid", &viewer.pid_str(), s(&lock)]);
    if is_root() {
        cmd.uid(65534).gid(65534);
    }
    let out = output_retrying(&mut cmd);
    expect_code(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["verdict"], "held", "{v}");
    let mut cmd = Command::new(&bin);
    cmd.args([
        "acquire",
        "--replace-stale",
        "--pid",
        &viewer.pid_str(),
        s(&lock),
    ]);
    if is_root() {
        cmd.uid(65534).gid(65534);
    }
    expect_code(&output_retrying(&mut cmd), 1);
}

#[test]
fn our_own_recycled_pid_in_a_labm8_file_is_not_ours() {
    // labm8 wrote `PID TIMESTAMP` an hour ago; PID now belongs to a process
    // that started since. Acting for that process, the lock is not ours: a
    // no-op "re-acquire" would let it and a --replace-stale breaker both hold it.
    let dir = sandbox();
    let lock = dir.path().join("mine.lock");
    let p = Sleeper::new();
    plant(&lock, p.pid(), now_secs() - 3600.0, &[]);
    let v = status_json(&lock, &["--pid", &p.pid_str()]);
    assert_eq!(v["verdict"], "stale", "{v}");
    assert_eq!(v["owned_by_self"], false);
    expect_code(
        &lockfile(&[
            "acquire",
            "--no-replace-stale",
            "--pid",
            &p.pid_str(),
            s(&lock),
        ]),
        1,
    );
    expect_code(&lockfile(&["release", "--pid", &p.pid_str(), s(&lock)]), 1);
    expect_code(&lockfile(&["acquire", "--pid", &p.pid_str(), s(&lock)]), 0);
    assert_eq!(
        status_json(&lock, &["--pid", &p.pid_str()])["verdict"],
        "owned-by-self"
    );
}
