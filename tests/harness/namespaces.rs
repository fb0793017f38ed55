//! Process identity across threads, PID namespaces and boots: a live process
//! whose main thread exited, a `/proc` of another namespace, a namespace
//! that ended, a previous boot.
//!
//! Most need root (namespaces) and `python3`.

use crate::common::*;
use lockfile_host::COMMAND_COMPONENT;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

#[track_caller]
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
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
