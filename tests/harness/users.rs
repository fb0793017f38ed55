//! Other users: sticky directories (`/tmp`), whose files only their owner may
//! replace, and fencing tokens that every user continues.
//!
//! These tests need root (files of several users) and the stock wasmtime CLI
//! (`WASMTIME`).

use crate::common::*;
use lockfile_host::COMMAND_COMPONENT;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A directory with the sticky bit, as `/tmp` and `/run/lock` have it.
fn sticky_sandbox() -> tempfile::TempDir {
    let dir = sandbox();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).expect("chmod +t");
    dir
}

/// `wasmtime run` of the command component as uid and gid `id` (both
/// copied where any user can reach them; no compilation cache, which would
/// be written under root's home).
fn wasmtime_run_as(id: u32, dir: &Path, args: &[&str]) -> Output {
    static COPY: std::sync::OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> =
        std::sync::OnceLock::new();
    let (_, wasmtime, component) = COPY.get_or_init(|| {
        let copies = sandbox();
        fs::set_permissions(copies.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let wasmtime = copies.path().join("wasmtime");
        let component = copies.path().join("lockfile-command.wasm");
        // `wasmtime_cli()` may be a bare name found on PATH.
        let found = Command::new("sh")
            .args(["-c", "command -v \"$0\"", &wasmtime_cli()])
            .output()
            .expect("sh");
        let found = String::from_utf8_lossy(&found.stdout).trim().to_owned();
        fs::copy(&found, &wasmtime).expect("copy wasmtime");
        fs::copy(COMMAND_COMPONENT, &component).expect("copy the component");
        fs::set_permissions(&wasmtime, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::set_permissions(&component, fs::Permissions::from_mode(0o644)).expect("chmod");
        (copies, wasmtime, component)
    });
    output_retrying(
        Command::new(wasmtime)
            .args(["run", "-C", "cache=n", "--dir"])
            .arg(format!("{0}::{0}", s(dir)))
            .args(["--dir", "/proc::/proc"])
            .arg(component)
            .args(args)
            .stdin(Stdio::null())
            .uid(id)
            .gid(id),
    )
}

/// Runs `lockfile` as uid and gid 1234.
fn as_other_user(args: &[&str]) -> Output {
    as_user(1234, args)
}

/// Runs `lockfile` as uid and gid `id`.
fn as_user(id: u32, args: &[&str]) -> Output {
    output_retrying(
        Command::new(world_executable_lockfile())
            .args(args)
            .uid(id)
            .gid(id),
    )
}

/// In a sticky directory (`/tmp`, `/run/lock`) another user's stale lock
/// cannot be replaced or removed; the message says why and what would work.
#[test]
#[ignore = "needs root (files of several users need root): scripts/test runs it as root"]
fn a_stale_lock_of_another_user_in_a_sticky_directory_is_explained() {
    require_root("files of several users need root");
    let dir = sticky_sandbox();
    let lock = dir.path().join("x.lock");
    fs::write(&lock, format!("{DEAD_PID} 1700000000.0\n")).expect("plant");
    rustix::fs::chown(
        &lock,
        Some(rustix::fs::Uid::from_raw(65534)),
        Some(rustix::fs::Gid::from_raw(65534)),
    )
    .expect("chown");
    let before = fs::read(&lock).expect("lock");
    let holder = Sleeper::new();
    let out = as_other_user(&[
        "acquire",
        "--replace-stale",
        "--pid",
        &holder.pid_str(),
        s(&lock),
    ]);
    expect_code(&out, 3);
    expect_stderr(&out, "sticky");
    expect_stderr(&out, "user `nobody` (uid 65534)");
    expect_stderr(&out, "not sticky");
    let out = as_other_user(&["release", "--force", "--pid", &holder.pid_str(), s(&lock)]);
    expect_code(&out, 3);
    expect_stderr(&out, "sticky");
    assert_eq!(
        fs::read(&lock).expect("lock"),
        before,
        "the lock is untouched"
    );
    assert_eq!(names(dir.path()), vec!["x.lock"], "nothing left beside it");
    assert_eq!(fs::metadata(&lock).expect("lock").uid(), 65534);
}

/// An acquisition that fails after it published the lock removes the lock
/// before it reports failure. Here: in a sticky directory, `.NAME.token`
/// and the token file the user would continue the sequence in
/// (`.NAME.token.2`, planted) are another user's, so recording the token
/// fails; the lock must not stay held by a process that was told it did
/// not get it.
#[test]
#[ignore = "needs root (files of several users need root): scripts/test runs it as root"]
fn an_acquisition_that_fails_after_publishing_leaves_no_lock() {
    require_root("files of several users need root");
    let dir = sticky_sandbox();
    let lock = dir.path().join("x.lock");
    let root_owner = Sleeper::new();
    let pid = root_owner.pid_str();
    expect_code(
        &lockfile(&["acquire", "--print-token", "--pid", &pid, s(&lock)]),
        0,
    );
    expect_code(&lockfile(&["release", "--pid", &pid, s(&lock)]), 0);
    assert!(dir.path().join(".x.lock.token").exists());
    let planted = dir.path().join(".x.lock.token.2");
    fs::write(&planted, "2\n").expect("plant");
    let holder = Sleeper::new();
    let out = as_other_user(&[
        "acquire",
        "--print-token",
        "--pid",
        &holder.pid_str(),
        s(&lock),
    ]);
    expect_code(&out, 3);
    assert!(
        !lock.exists(),
        "a failed acquisition left the lock: {}",
        stderr(&out)
    );
    expect_stderr(&out, ".x.lock.token.2");
    // The note it left makes the next one see `.x.lock.token.2` and go on
    // from there; without it, `run` fails the same way.
    fs::remove_file(dir.path().join(".x.lock.token.users")).expect("note");
    let marker = dir.path().join("ran");
    let out = as_other_user(&["run", "--token", s(&lock), "--", "touch", s(&marker)]);
    expect_code(&out, 3);
    assert!(!marker.exists(), "COMMAND ran without the lock");
    assert!(
        !lock.exists(),
        "a failed `run` left the lock: {}",
        stderr(&out)
    );
    assert_eq!(
        names(dir.path()),
        vec![".x.lock.token", ".x.lock.token.2", ".x.lock.token.users"],
        "nothing else left behind"
    );
}

/// In a sticky directory (`/tmp`, `/run/lock`) `.NAME.token` can be replaced
/// only by the user who wrote it first; every other user who can create the
/// lock still continues the token sequence (in a token file of their own),
/// whether they ask for a token, take a lease, `run` with one, or take the
/// lock plainly once it has a sequence. Each user leaves at most one file.
#[test]
#[ignore = "needs root (files of several users need root): scripts/test runs it as root"]
fn every_user_continues_the_token_sequence_in_a_sticky_directory() {
    require_root("files of several users need root");
    let dir = sticky_sandbox();
    let lock = dir.path().join("x.lock");
    let holder = Sleeper::new();
    let pid = holder.pid_str();
    let as_ = |user: u32, args: &[&str]| {
        if user == 0 {
            lockfile(args)
        } else {
            as_user(user, args)
        }
    };
    let mut expected = 0;
    for (round, user) in [0, 1234, 65534, 0, 1234, 1234, 65534, 0]
        .into_iter()
        .enumerate()
    {
        expected += 1;
        let out = as_(user, &["acquire", "--print-token", "--pid", &pid, s(&lock)]);
        expect_code(&out, 0);
        assert_eq!(
            stdout(&out).trim(),
            expected.to_string(),
            "round {round}, uid {user}: {}",
            stderr(&out)
        );
        expect_code(&as_(user, &["release", "--pid", &pid, s(&lock)]), 0);
    }
    // The command component under the stock `wasmtime run` continues it.
    expected += 1;
    let out = wasmtime_run_as(
        1234,
        dir.path(),
        &["acquire", "--print-token", "--pid", &pid, s(&lock)],
    );
    expect_code(&out, 0);
    assert_eq!(
        stdout(&out).trim(),
        expected.to_string(),
        "{}",
        stderr(&out)
    );
    expect_code(&as_(1234, &["release", "--pid", &pid, s(&lock)]), 0);
    // A plain acquisition of a lock with a sequence continues it too.
    expected += 1;
    expect_code(&as_(1234, &["acquire", "--pid", &pid, s(&lock)]), 0);
    assert_eq!(status_json(&lock, &["--pid", &pid])["token"], expected);
    expect_code(&as_(1234, &["release", "--pid", &pid, s(&lock)]), 0);
    // So does a leased one, and `run` passes it to COMMAND.
    expected += 1;
    let out = as_(
        65534,
        &[
            "run",
            "--lease",
            "30",
            s(&lock),
            "sh",
            "-c",
            "echo $LOCKFILE_TOKEN",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(
        stdout(&out).trim(),
        expected.to_string(),
        "{}",
        stderr(&out)
    );
    assert!(!lock.exists(), "`run` released the lock");
    // The next user to come back continues from there.
    let out = as_(0, &["acquire", "--print-token", "--pid", &pid, s(&lock)]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out).trim(), (expected + 1).to_string());
    expect_code(&as_(0, &["release", "--pid", &pid, s(&lock)]), 0);
    // At most one token file of their own per user: older ones are removed.
    let mut owners: Vec<u32> = names(dir.path())
        .iter()
        .filter(|n| {
            n.strip_prefix(".x.lock.token.")
                .is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|n| fs::metadata(dir.path().join(n)).expect("token file").uid())
        .collect();
    let all = owners.len();
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(
        all,
        owners.len(),
        "token files pile up: {:?}",
        names(dir.path())
    );
    // `clean` never removes them: the sequence would restart.
    expect_code(&lockfile(&["clean", s(dir.path())]), 0);
    let out = as_(1234, &["acquire", "--print-token", "--pid", &pid, s(&lock)]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out).trim(), (expected + 2).to_string());
}

/// A user whose umask keeps others from reading their files (077) still
/// has their token file counted by everyone else: a token file that cannot
/// be read counts by its name (a number too high only makes the sequence
/// jump; one too low would repeat a token).
#[test]
#[ignore = "needs root (files of several users need root): scripts/test runs it as root"]
fn a_token_file_others_cannot_read_still_counts() {
    require_root("files of several users need root");
    let dir = sticky_sandbox();
    let lock = dir.path().join("x.lock");
    let bin = world_executable_lockfile();
    let mut issued = Vec::new();
    for (user, umask) in [
        (1001, "022"),
        (1002, "077"),
        (1003, "022"),
        (1002, "077"),
        (1003, "022"),
    ] {
        let script = format!(
            "umask {umask}; exec \"$0\" run --token {} -- sh -c 'echo $LOCKFILE_TOKEN'",
            s(&lock)
        );
        let out = output_retrying(
            Command::new("sh")
                .args(["-c", &script, s(&bin)])
                .uid(user)
                .gid(user),
        );
        expect_code(&out, 0);
        issued.push(stdout(&out).trim().parse::<u64>().expect("a token"));
    }
    assert_eq!(issued, vec![1, 2, 3, 4, 5], "tokens repeated or went back");
}

/// Where the note says users keep token files of their own, the directory
/// is listed: nothing else in it may stop or fool an acquisition. A name that
/// is not UTF-8 (anyone's file in /tmp), another lock whose name looks like
/// a token file, a directory and an empty file with a token file's name are
/// skipped: the sequence goes on by one, and the other lock stays held.
#[test]
fn what_else_is_in_the_directory_never_stops_or_fools_the_token_sequence() {
    use std::os::unix::ffi::OsStrExt;
    let dir = sandbox();
    let lock = dir.path().join("x.lock");
    let holder = Sleeper::new();
    let pid = holder.pid_str();
    let token = |expected: u64| {
        let out = lockfile(&["acquire", "--print-token", "--pid", &pid, s(&lock)]);
        expect_code(&out, 0);
        assert_eq!(
            stdout(&out).trim(),
            expected.to_string(),
            "{}",
            stderr(&out)
        );
        expect_code(&lockfile(&["release", "--pid", &pid, s(&lock)]), 0);
    };
    token(1);
    // As another user's first token file would leave it.
    fs::write(dir.path().join(".x.lock.token.users"), "note\n").expect("note");
    fs::write(dir.path().join(".x.lock.token.2"), "2\n").expect("a user's token file");
    token(3);
    fs::write(
        dir.path().join(std::ffi::OsStr::from_bytes(b"bad\xffname")),
        "",
    )
    .expect("a name that is not UTF-8");
    // Another lock, named as a token file of x.lock would be.
    let other = dir.path().join(".x.lock.token.7");
    expect_code(&lockfile(&["acquire", "--pid", &pid, s(&other)]), 0);
    fs::create_dir(dir.path().join(".x.lock.token.9")).expect("a directory");
    fs::write(dir.path().join(".x.lock.token.18446744073709551615"), "").expect("empty");
    token(4);
    token(5);
    assert_eq!(
        status_json(&other, &["--pid", &pid])["verdict"],
        "owned-by-self",
        "the other lock is still held"
    );
}

/// Many acquisitions at once where the note makes each list the directory,
/// while the others' temporary files come and go: a file removed between
/// the listing and the look at it is skipped, never an error. Tokens are
/// unique.
#[test]
fn contending_acquisitions_that_list_the_directory_never_fail() {
    let dir = sandbox();
    let lock = dir.path().join("x.lock");
    fs::write(dir.path().join(".x.lock.token"), "1\n").expect("a sequence");
    fs::write(dir.path().join(".x.lock.token.users"), "note\n").expect("note");
    let tokens = dir.path().join("tokens");
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let script = format!(
                "for i in $(seq 40); do \"$0\" run -w 60 --token {lock} -- \
                   sh -c 'echo $LOCKFILE_TOKEN >> {tokens}' || echo FAILED; done",
                lock = s(&lock),
                tokens = s(&tokens),
            );
            Command::new("sh")
                .args(["-c", &script, lockfile_bin()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for worker in workers {
        let out = worker.wait_with_output().expect("wait");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("FAILED"),
            "an acquisition failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut issued: Vec<u64> = fs::read_to_string(&tokens)
        .expect("tokens")
        .lines()
        .map(|l| l.parse().expect("a token"))
        .collect();
    assert_eq!(issued.len(), 120);
    issued.sort_unstable();
    issued.dedup();
    assert_eq!(issued.len(), 120, "a token was issued twice");
}
