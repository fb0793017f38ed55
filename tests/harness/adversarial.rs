//! The holes an adversarial review found (issue 9), each reproduced end to
//! end: the real binary, real processes, real namespaces and users. The
//! first two (a release acting for an owner that dies) are in `races.rs`.
//!
//! These tests need root (namespaces, other users, setuid), `python3` and
//! the stock wasmtime CLI (`WASMTIME`); without them they fail and say so.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lockfile_host::{COMMAND_COMPONENT, PAUSE_VAR};

use crate::common::*;

/// `wasmtime run --dir DIR::DIR [--dir /proc::/proc] lockfile-command.wasm ARGS`.
fn wasmtime_run(dir: &Path, proc: bool, args: &[&str]) -> Output {
    let mut cmd = Command::new(wasmtime_cli());
    cmd.arg("run").arg("--dir").arg(format!("{0}::{0}", s(dir)));
    if proc {
        cmd.args(["--dir", "/proc::/proc"]);
    }
    cmd.arg(COMMAND_COMPONENT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run wasmtime")
}

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

fn json(out: &Output) -> serde_json::Value {
    expect_code(out, 0);
    serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
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

/// A Python process whose main thread exits with `pthread_exit` once `flag`
/// exists, while a second thread runs on.
fn leader_that_exits(flag: &Path) -> Child {
    let script = r#"
import ctypes, os, sys, threading, time
flag = sys.argv[1]
threading.Thread(target=time.sleep, args=(300,)).start()
open(flag + ".ready", "w").close()
while not os.path.exists(flag):
    time.sleep(0.005)
ctypes.CDLL(None).pthread_exit(None)
"#;
    let child = Command::new("python3")
        .args(["-c", script, s(flag)])
        .spawn()
        .expect("this test needs python3");
    wait_for_file(&flag.with_extension("ready"));
    child
}

#[test]
fn a_live_process_whose_main_thread_exited_keeps_its_lock() {
    let dir = sandbox();
    let flags = sandbox();
    let lock = dir.path().join("x.lock");
    let flag = flags.path().join("exit-main");
    let mut owner = leader_that_exits(&flag);
    let pid = owner.id();
    expect_code(
        &lockfile(&["acquire", "--pid", &pid.to_string(), s(&lock)]),
        0,
    );
    fs::write(&flag, "").expect("flag");
    wait_until("the leader is a zombie", || proc_state(pid) == Some('Z'));
    assert!(
        fs::read_dir(format!("/proc/{pid}/task"))
            .expect("tasks")
            .count()
            > 1,
        "premise: another thread runs on"
    );
    let other = Sleeper::new();
    let out = replace_stale_for(&other, &lock);
    expect_code(&out, 1);
    expect_stderr(&out, &format!("held by pid {pid} (alive)"));
    assert_eq!(status_json(&lock, &[])["verdict"], "held");
    // The command component under `wasmtime run` judges it the same.
    let st = json(&wasmtime_run(
        dir.path(),
        true,
        &["status", "--json", "--pid", &other.pid_str(), s(&lock)],
    ));
    assert_eq!(st["verdict"], "held", "{st}");
    let out = wasmtime_run(
        dir.path(),
        true,
        &[
            "acquire",
            "--replace-stale",
            "--pid",
            &other.pid_str(),
            s(&lock),
        ],
    );
    expect_code(&out, 1);
    // When the whole process is gone, the lock is stale.
    owner.kill().expect("kill");
    owner.wait().expect("reap");
    expect_code(&replace_stale_for(&other, &lock), 0);
}

/// A pid that no process on the host has, for a namespace to give out.
fn free_host_pid() -> u32 {
    let max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("pid_max")
        .trim()
        .parse()
        .expect("number");
    (1000..max - 1)
        .rev()
        .find(|p| {
            !Path::new(&format!("/proc/{p}")).exists()
                && !Path::new(&format!("/proc/{}", p - 1)).exists()
        })
        .expect("a free pid")
}

/// Starts a host process with exactly pid `pid` (by setting the kernel's
/// last pid just before forking; retried, as other processes fork too).
fn host_process_with_pid(pid: u32) -> Sleeper {
    for _ in 0..500 {
        fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).expect("ns_last_pid");
        let child = Sleeper::new();
        if child.pid() == pid {
            return child;
        }
        drop(child);
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("could not start a host process with pid {pid}");
}

/// In a PID namespace that shares its parent's `/proc` (`unshare -p -f`
/// without `--mount-proc`), `kill(pid, 0)` speaks the namespace's pids and
/// `/proc/PID` the parent's. A live owner in the namespace must not be judged
/// stale from `/proc` facts about an unrelated host process with its number.
#[test]
#[ignore = "needs root (unshare -p and ns_last_pid need root): scripts/test runs it as root"]
fn a_proc_of_another_pid_namespace_is_not_used_to_judge() {
    require_root("unshare -p and ns_last_pid need root");
    let _namespaces = creating_namespaces();
    let wasmtime = wasmtime_cli();
    let dir = sandbox();
    let lock = dir.path().join("x.lock");
    let d = dir.path();
    let x = free_host_pid();
    // Inside: the owner gets pid X in the namespace and takes the lock (a
    // record without a start time: /proc cannot give it one there). Then,
    // once the host has a young process with pid X, a breaker inside tries.
    let script = r#"
echo $((X - 1)) > /proc/sys/kernel/ns_last_pid || exit 90
sleep 300 & O=$!
[ "$O" = "$X" ] || { echo "inner pid $O, wanted $X" >&2; exit 91; }
"$LOCKFILE" acquire --pid "$O" "$L" || exit 92
touch "$D/taken"
while [ ! -e "$D/go" ]; do sleep 0.01; done
"$LOCKFILE" acquire --replace-stale --pid 1 "$L" 2> "$D/err"; echo $? > "$D/code"
"$WASMTIME" run --dir "$D::$D" --dir /proc::/proc "$CMD" status --json --pid 1 "$L" > "$D/wasi.json" 2> "$D/wasi.err"
kill $O
"#;
    let mut inner = Command::new("unshare")
        .args(["-p", "-f", "--kill-child", "--", "sh", "-c", script])
        .env("X", x.to_string())
        .env("LOCKFILE", lockfile_bin())
        .env("WASMTIME", &wasmtime)
        .env("CMD", COMMAND_COMPONENT)
        .env("L", s(&lock))
        .env("D", s(d))
        .spawn()
        .expect("this test needs unshare (util-linux)");
    wait_until("the owner in the namespace takes the lock", || {
        d.join("taken").exists() || inner.try_wait().expect("wait").is_some()
    });
    assert!(
        d.join("taken").exists(),
        "the namespace setup failed: {:?}",
        inner.wait()
    );
    // The host process must start well after the lock was taken: more than
    // the 2 s slack, plus a second for /proc's whole-second boot time.
    std::thread::sleep(Duration::from_millis(4500));
    let impostor = host_process_with_pid(x);
    fs::write(d.join("go"), "").expect("go");
    let status = inner.wait().expect("inner ends");
    drop(impostor);
    let code = fs::read_to_string(d.join("code"))
        .expect("code")
        .trim()
        .to_owned();
    let err = fs::read_to_string(d.join("err")).unwrap_or_default();
    assert_eq!(
        code, "1",
        "the breaker inside must be refused ({status:?}): {err}"
    );
    assert!(err.contains(&format!("held by pid {x}")), "{err}");
    let wasi: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("wasi.json")).expect("json")).unwrap_or_else(|e| {
            panic!(
                "{e}: {}",
                fs::read_to_string(d.join("wasi.err")).unwrap_or_default()
            )
        });
    assert_eq!(wasi["verdict"], "held", "{wasi}");
}

/// A "container": a process in its own PID namespace (with its own /proc)
/// takes the lock, waits for `go`, and exits, ending the namespace.
fn lock_in_a_namespace(lock: &Path, flags: &Path) -> Child {
    let script = r#"
"$LOCKFILE" acquire --pid 1 "$L" || exit 92
touch "$F/taken"
while [ ! -e "$F/go" ]; do sleep 0.01; done
"#;
    let mut child = Command::new("unshare")
        .args([
            "-p",
            "-f",
            "--mount-proc",
            "--kill-child",
            "--",
            "sh",
            "-c",
            script,
        ])
        .env("LOCKFILE", lockfile_bin())
        .env("L", s(lock))
        .env("F", s(flags))
        .spawn()
        .expect("this test needs unshare (util-linux)");
    wait_until("the container takes the lock", || {
        flags.join("taken").exists() || child.try_wait().expect("wait").is_some()
    });
    assert!(
        flags.join("taken").exists(),
        "the container failed: {:?}",
        child.wait()
    );
    child
}

#[test]
#[ignore = "needs root (unshare -p needs root): scripts/test runs it as root"]
fn a_lock_from_a_pid_namespace_that_no_longer_exists_is_stale() {
    require_root("unshare -p needs root");
    // Its own namespace's number must not be reused by another test's.
    let _quiet = no_new_namespaces();
    let dir = sandbox();
    let flags = sandbox();
    let lock = dir.path().join("x.lock");
    let mut container = lock_in_a_namespace(&lock, flags.path());
    let other = Sleeper::new();
    // While the namespace lives, its lock is foreign: never stale.
    let st = status_json(&lock, &[]);
    assert_eq!(st["verdict"], "foreign", "{st}");
    let out = replace_stale_for(&other, &lock);
    expect_code(&out, 1);
    fs::write(flags.path().join("go"), "").expect("go");
    container.wait().expect("the container ends");
    // Same host, same boot, and no process in that namespace any more. The
    // host says so only when it can read every process's namespace; a
    // process exiting right then (other tests run beside this one) makes it
    // unsure for a moment, and unsure is foreign: look until it is sure.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let st = loop {
        let st = status_json(&lock, &[]);
        if st["verdict"] == "stale" || std::time::Instant::now() > deadline {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(st["verdict"], "stale", "{st}");
    let reason = st["reason"].as_str().expect("reason");
    assert!(reason.contains("no longer exists"), "{reason}");
    let wasi = loop {
        let wasi = json(&wasmtime_run(
            dir.path(),
            true,
            &["status", "--json", "--pid", &other.pid_str(), s(&lock)],
        ));
        if wasi["verdict"] == "stale" || std::time::Instant::now() > deadline {
            break wasi;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(wasi["verdict"], "stale", "{wasi}");
    let out = loop {
        let out = replace_stale_for(&other, &lock);
        if out.status.success() || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    expect_code(&out, 0);
    assert_eq!(status_json(&lock, &[])["pid"], other.pid());
}

#[test]
fn a_lock_from_our_host_and_a_previous_boot_is_stale_whatever_its_namespace() {
    let dir = sandbox();
    let lock = dir.path().join("x.lock");
    fs::write(
        &lock,
        format!(
            "4242 1700000000.0\nhost={}\nboot=00000000-0000-4000-8000-000000000000\npidns=12345\n",
            hostname()
        ),
    )
    .expect("plant");
    let st = status_json(&lock, &[]);
    assert_eq!(st["verdict"], "stale", "{st}");
    assert!(
        st["reason"].as_str().is_some_and(|r| r.contains("booted")),
        "{st}"
    );
    let other = Sleeper::new();
    expect_code(&replace_stale_for(&other, &lock), 0);
}

/// Names up to NAME_MAX (255 bytes) work for every operation, whatever the
/// length of the private names beside them would be.
#[test]
fn every_operation_works_on_lock_names_up_to_255_bytes() {
    for len in [200usize, 222, 226, 240, 255] {
        let dir = sandbox();
        let flags = sandbox();
        let name = format!("{}.lock", "n".repeat(len - 5));
        let lock = dir.path().join(&name);
        let (a, b) = (Sleeper::new(), Sleeper::new());
        let out = lockfile(&["acquire", "--pid", &a.pid_str(), s(&lock)]);
        expect_code(&out, 0);
        assert_eq!(status_json(&lock, &[])["pid"], a.pid(), "{len}");
        expect_code(&lockfile(&["release", "--pid", &a.pid_str(), s(&lock)]), 0);
        // A crash while publishing leaves a private file beside the lock...
        let flag = flags.path().join("pause");
        let mut crashed = Command::new(lockfile_bin())
            .args(["acquire", "--pid", &a.pid_str(), s(&lock)])
            .env(PAUSE_VAR, format!("before-publish:{}", s(&flag)))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        wait_for_file(&flag);
        crashed.kill().expect("kill");
        let _ = crashed.wait();
        assert_eq!(names(dir.path()).len(), 1, "{len}: a temporary file");
        // ... and a takeover of a stale lock (a claim beside it) sweeps it.
        expect_code(
            &lockfile(&["write", s(&lock), &DEAD_PID.to_string(), "1700000000"]),
            0,
        );
        let out = lockfile(&[
            "acquire",
            "--replace-stale",
            "--pid",
            &b.pid_str(),
            s(&lock),
        ]);
        expect_code(&out, 0);
        assert_eq!(names(dir.path()), vec![name.clone()], "{len}: swept");
        expect_code(&lockfile(&["release", "--pid", &b.pid_str(), s(&lock)]), 0);
        assert!(names(dir.path()).is_empty(), "{len}");
    }
}

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

/// A third-party host of the library component: its own wasmtime engine,
/// linker and `process` implementation (which says the lock is for the pid
/// it is given), and a `files` without a native form.
mod third_party {
    use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
    use wasmtime::{Config, Engine, Store};
    use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

    wasmtime::component::bindgen!({
        world: "library",
        path: "wit",
        with: {
            "wasi:clocks/wall-clock": wasmtime_wasi::p2::bindings::clocks::wall_clock,
            "wasi:filesystem/types": wasmtime_wasi::p2::bindings::sync::filesystem::types,
            "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
        },
    });

    use exports::labm8::lockfile::lockfile as wit;
    use labm8::lockfile::{files, process};
    use wasmtime::component::Resource;
    use wasmtime_wasi::filesystem::Descriptor;
    use wasmtime_wasi::p2::bindings::sync::filesystem::types::ErrorCode;

    pub struct Host {
        wasi: WasiCtx,
        table: ResourceTable,
        pid: u32,
        files_calls: u32,
    }

    impl WasiView for Host {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    impl process::Host for Host {
        fn current(&mut self) -> process::Identity {
            process::Identity {
                pid: self.pid,
                start_ticks: None,
            }
        }
        fn runner(&mut self) -> process::Identity {
            self.current()
        }
        fn companion(&mut self) -> Option<process::Identity> {
            None
        }
        fn machine(&mut self) -> process::MachineFacts {
            process::MachineFacts {
                hostname: None,
                boot_id: None,
                pid_namespace: None,
            }
        }
        fn query(&mut self, _pid: u32) -> process::ProcessInfo {
            process::ProcessInfo {
                liveness: process::Liveness::Unknown,
                start_ticks: None,
                start_time: None,
            }
        }
        fn pid_namespace_alive(&mut self, _inode: u64) -> Option<bool> {
            None
        }
        fn holder(&mut self) -> Option<u64> {
            None
        }
    }

    /// A third-party host without a native `files`: it answers
    /// `unsupported` to every call, having done nothing, and counts them.
    impl files::Host for Host {
        fn read(
            &mut self,
            _dir: Resource<Descriptor>,
            _name: String,
            _limit: u64,
        ) -> Result<Vec<u8>, ErrorCode> {
            self.files_calls += 1;
            Err(ErrorCode::Unsupported)
        }
        fn rewrite(
            &mut self,
            _dir: Resource<Descriptor>,
            _name: String,
            _data: Vec<u8>,
        ) -> Result<bool, ErrorCode> {
            self.files_calls += 1;
            Err(ErrorCode::Unsupported)
        }
        fn link_and_probe(
            &mut self,
            _dir: Resource<Descriptor>,
            _existing: String,
            _new: String,
            _probe: String,
        ) -> Result<Option<bool>, ErrorCode> {
            self.files_calls += 1;
            Err(ErrorCode::Unsupported)
        }
    }

    /// The library component in a host that says the lock is for `pid`.
    fn instance(dir: &str, pid: u32) -> (Store<Host>, Library) {
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).expect("engine");
        // SAFETY: the file is what lockfile-host's build script produced with
        // this same wasmtime (`Engine::precompile_component`), and wasmtime
        // refuses an artifact whose version or settings do not match.
        let component =
            unsafe { Component::deserialize_file(&engine, lockfile_host::PRECOMPILED_LIBRARY) }
                .expect("load the precompiled component");
        let mut linker = Linker::<Host>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("link WASI");
        process::add_to_linker::<_, HasSelf<_>>(&mut linker, |h| h).expect("link process");
        files::add_to_linker::<_, HasSelf<_>>(&mut linker, |h| h).expect("link files");
        let mut wasi = WasiCtxBuilder::new();
        wasi.preopened_dir(dir, dir, FsPerms::ReadWrite)
            .expect("preopen");
        let mut store = Store::new(
            &engine,
            Host {
                wasi: wasi.build(),
                table: ResourceTable::new(),
                pid,
                files_calls: 0,
            },
        );
        let lib = Library::instantiate(&mut store, &component, &linker).expect("instantiate");
        (store, lib)
    }

    /// Runs `acquire(false, false)` on `path` in a host that says the lock
    /// is for `pid`.
    #[allow(clippy::result_large_err)] // the interface's own error, as the guest returns it
    pub fn acquire_as(dir: &str, path: &str, pid: u32) -> Result<(), wit::Error> {
        let (mut store, lib) = instance(dir, pid);
        let guest = lib.labm8_lockfile_lockfile().lock_file();
        let lock = guest.call_constructor(&mut store, path).expect("no trap");
        guest
            .call_acquire(&mut store, lock, false, false)
            .expect("no trap: a bad identity is an error, not a trap")
    }

    /// Acquires and releases `path` `cycles` times through one handle, as
    /// this process, checking the owner after each acquire; returns how
    /// many `files` calls the host answered.
    pub fn cycle(dir: &str, path: &str, cycles: u32) -> u32 {
        let (mut store, lib) = instance(dir, std::process::id());
        let guest = lib.labm8_lockfile_lockfile().lock_file();
        let lock = guest.call_constructor(&mut store, path).expect("no trap");
        for _ in 0..cycles {
            guest
                .call_acquire(&mut store, lock, false, false)
                .expect("no trap")
                .expect("acquire");
            let owner = guest
                .call_pid(&mut store, lock)
                .expect("no trap")
                .expect("pid");
            assert_eq!(owner, Some(std::process::id()));
            guest
                .call_release(&mut store, lock, false)
                .expect("no trap")
                .expect("release");
        }
        store.data().files_calls
    }
}

/// A third-party Rust host links the `process` and `files` interfaces into
/// its own `Linker<T>` with `lockfile_host::process_ctx::add_to_linker` and
/// `lockfile_host::files::add_to_linker`, and its locks are the same locks
/// the CLI sees.
mod linked {
    use lockfile_host::process_ctx::{self, ProcessCtx};
    use wasmtime::component::{Component, Linker, ResourceTable, Val};
    use wasmtime::{Config, Engine, Store};
    use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

    struct MyState {
        wasi: WasiCtx,
        table: ResourceTable,
        lockfile: ProcessCtx,
    }

    impl WasiView for MyState {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    /// `lock-file(path).acquire(false, false)` through a dynamically typed
    /// call (no bindings of its own); true on `ok`.
    pub fn acquire(dir: &str, path: &str, ctx: ProcessCtx) -> bool {
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).expect("engine");
        // SAFETY: produced by lockfile-host's build script with this same
        // wasmtime; wasmtime refuses a mismatched artifact.
        let component =
            unsafe { Component::deserialize_file(&engine, lockfile_host::PRECOMPILED_LIBRARY) }
                .expect("load");
        let mut linker = Linker::<MyState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("WASI");
        process_ctx::add_to_linker(&mut linker, |s| &mut s.lockfile).expect("process");
        lockfile_host::files::add_to_linker(&mut linker).expect("files");
        let mut wasi = WasiCtxBuilder::new();
        wasi.preopened_dir(dir, dir, FsPerms::ReadWrite)
            .expect("preopen");
        let mut store = Store::new(
            &engine,
            MyState {
                wasi: wasi.build(),
                table: ResourceTable::new(),
                lockfile: ctx,
            },
        );
        let instance = linker
            .instantiate(&mut store, &component)
            .expect("instantiate");
        let iface = instance
            .get_export_index(&mut store, None, "labm8:lockfile/lockfile@0.3.0")
            .expect("the lockfile interface");
        let func = |store: &mut Store<MyState>, name: &str| {
            let index = instance
                .get_export_index(&mut *store, Some(&iface), name)
                .unwrap_or_else(|| panic!("export {name}"));
            instance.get_func(&mut *store, index).expect("a function")
        };
        let constructor = func(&mut store, "[constructor]lock-file");
        let mut handle = [Val::Bool(false)];
        constructor
            .call(&mut store, &[Val::String(path.into())], &mut handle)
            .expect("construct");
        let acquire = func(&mut store, "[method]lock-file.acquire");
        let mut result = [Val::Bool(false)];
        acquire
            .call(
                &mut store,
                &[handle[0].clone(), Val::Bool(false), Val::Bool(false)],
                &mut result,
            )
            .expect("acquire");
        matches!(result[0], Val::Result(Ok(_)))
    }
}

#[test]
fn a_host_links_the_process_interface_into_its_own_linker() {
    let dir = sandbox();
    let lock = dir.path().join("x.lock");
    let holder = Sleeper::new();
    let ctx = lockfile_host::ProcessCtx::acting_for(holder.pid()).expect("running");
    assert!(linked::acquire(s(dir.path()), s(&lock), ctx));
    let st = status_json(&lock, &[]);
    assert_eq!(st["pid"], holder.pid(), "{st}");
    assert_eq!(st["verdict"], "held", "{st}");
    // Another process's context is refused while the holder lives.
    let ctx = lockfile_host::ProcessCtx::current();
    assert!(!linked::acquire(s(dir.path()), s(&lock), ctx));
}

/// A host without a native `files` answers `unsupported`, and the component
/// makes the same operations of WASI's own calls: the lock cycles as usual.
#[test]
fn a_host_that_answers_files_with_unsupported_still_gets_a_working_lock() {
    let dir = sandbox();
    let lock = dir.path().join("x.lock");
    let calls = third_party::cycle(s(dir.path()), s(&lock), 3);
    assert!(
        calls >= 4,
        "the rewrites and reads were asked of the host first: {calls}"
    );
    assert!(!lock.exists(), "released");
}

/// A host whose `process.current` says pid 0 gets a clear error from the
/// component, and nothing is written (a lock naming pid 0 could never be
/// released or judged).
#[test]
fn a_host_that_names_pid_0_gets_an_error_and_nothing_is_written() {
    let dir = sandbox();
    let lock = dir.path().join("x.lock");
    match third_party::acquire_as(s(dir.path()), s(&lock), 0) {
        Err(third_party::exports::labm8::lockfile::lockfile::Error::InvalidIdentity(f)) => {
            assert!(f.message.contains("pid 0"), "{}", f.message);
            assert_eq!(f.path, s(&lock));
        }
        other => panic!("expected an invalid-identity error, got {other:?}"),
    }
    assert!(names(dir.path()).is_empty(), "nothing was written");
    // The same host with a real pid takes the lock.
    third_party::acquire_as(s(dir.path()), s(&lock), std::process::id()).expect("acquire");
    assert_eq!(status_json(&lock, &[])["pid"], std::process::id());
}
