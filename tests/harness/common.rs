//! Helpers shared by the harness modules.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `lockfile` binary under test: the one `cargo test` builds, or the
/// one `LOCKFILE_TEST_BIN` names (scripts/test runs the command-line tests
/// again on the binary `scripts/install` makes).
pub fn lockfile_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| match std::env::var("LOCKFILE_TEST_BIN") {
        Ok(bin) => {
            assert!(
                Path::new(&bin).is_file(),
                "LOCKFILE_TEST_BIN names `{bin}`, which is not a file"
            );
            bin
        }
        Err(_) => env!("CARGO_BIN_EXE_lockfile").to_owned(),
    })
}

/// The `contend` example (built by `cargo test` beside the test binaries).
pub fn contend_bin() -> PathBuf {
    example_bin("contend")
}

/// An example of lockfile-host, as `cargo test` builds it.
pub fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "`{}` is missing: run `cargo test` without target filters (it builds examples)",
        bin.display()
    );
    bin
}

/// A fresh directory for one test, removed afterwards.
pub fn sandbox() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lockfile-test-")
        .tempdir()
        .expect("temp dir")
}

/// Runs `lockfile ARGS` and returns its output.
pub fn lockfile(args: &[&str]) -> Output {
    lockfile_env(args, &[])
}

/// Runs `lockfile ARGS` with extra environment variables.
pub fn lockfile_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(lockfile_bin());
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run lockfile")
}

/// The exit code, panicking with the output on a signal.
pub fn code(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {out:?}"))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the exit code, showing the output when it differs.
#[track_caller]
pub fn expect_code(out: &Output, expected: i32) {
    assert_eq!(
        code(out),
        expected,
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// Asserts that stderr contains `needle`, showing stderr when it does not.
#[track_caller]
pub fn expect_stderr(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(err.contains(needle), "{err}");
}

/// `status --json` parsed.
pub fn status_json(path: &Path, extra: &[&str]) -> serde_json::Value {
    let p = path.to_str().expect("utf-8 path");
    let mut args = vec!["status", "--json"];
    args.extend_from_slice(extra);
    args.push(p);
    let out = lockfile(&args);
    expect_code(&out, 0);
    serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
}

/// A long-running process that is killed and reaped when dropped.
pub struct Sleeper(pub Child);

impl Sleeper {
    pub fn new() -> Self {
        Sleeper(
            Command::new("sleep")
                .arg("300")
                .spawn()
                .expect("spawn sleep"),
        )
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn pid_str(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A pid that no process can have: Linux's largest pid_max is 2^22.
pub const DEAD_PID: u32 = 4_194_304;

pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// The files in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Fails the test (never skips it) when it does not run as root.
#[track_caller]
pub fn require_root(why: &str) {
    assert!(is_root(), "this test must run as root: {why}");
}

/// The stock wasmtime CLI: `$WASMTIME`, else `wasmtime` on PATH. Fails the
/// test when it is missing, saying how to install it.
#[track_caller]
pub fn wasmtime_cli() -> String {
    let bin = std::env::var("WASMTIME").unwrap_or_else(|_| "wasmtime".into());
    let works = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        works,
        "this test needs the wasmtime CLI: run `scripts/install-wasmtime` and set WASMTIME \
         to the path it prints (`{bin}` does not run)"
    );
    bin
}

/// Waits (bounded) until `path` exists.
#[track_caller]
pub fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "`{}` never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The number a child writes to `path` (`echo $X > path`), once it is
/// there: the file appears before its line is written, hence the pause.
pub fn wait_for_number<T: std::str::FromStr>(path: &Path) -> T {
    wait_for_file(path);
    std::thread::sleep(Duration::from_millis(100));
    let text = fs::read_to_string(path).expect("the number's file");
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("`{}` holds {text:?}, not a number", path.display()))
}

/// Start time (ticks since boot) of a live process, from /proc.
pub fn start_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let (_, rest) = stat.rsplit_once(')').expect("comm");
    rest.split_whitespace()
        .nth(19)
        .and_then(|s| s.parse().ok())
        .expect("start time")
}

pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("boot id")
        .trim()
        .to_owned()
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A copy of `lockfile` that any user can run (the build tree may not be
/// reachable by `nobody`), made once per test run.
pub fn world_executable_lockfile() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static COPY: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let dir = sandbox();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let bin = dir.path().join("lockfile");
        fs::copy(lockfile_bin(), &bin).expect("copy binary");
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
        (dir, bin)
    })
    .1
    .clone()
}

/// Runs `cmd`, retrying while the binary is "busy": another test thread may
/// have forked while the copy was still open for writing.
pub fn output_retrying(cmd: &mut Command) -> Output {
    for _ in 0..100 {
        match cmd.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.expect("run"),
        }
    }
    panic!("the binary stayed busy");
}

/// Namespace inode numbers come from one allocator for every kind of
/// namespace and are reused as soon as a namespace ends. A test that needs an
/// ended namespace's number to stay unused holds this exclusively
/// ([`no_new_namespaces`]); every test that creates namespaces holds it
/// shared ([`creating_namespaces`]), once, for as long as its namespaces live.
static NAMESPACES: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Held while a test creates namespaces (see [`NAMESPACES`]).
pub fn creating_namespaces() -> std::sync::RwLockReadGuard<'static, ()> {
    NAMESPACES.read().unwrap_or_else(|e| e.into_inner())
}

/// Held while a test relies on an ended namespace's number not coming back.
pub fn no_new_namespaces() -> std::sync::RwLockWriteGuard<'static, ()> {
    NAMESPACES.write().unwrap_or_else(|e| e.into_inner())
}

/// A small tmpfs mounted at `at` (created) with mount `options`, unmounted
/// when dropped; needs root, and fails the test saying so if it cannot mount.
pub struct SmallFs(PathBuf);

impl SmallFs {
    pub fn mount(at: &Path, options: &str) -> Self {
        fs::create_dir_all(at).expect("mkdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs", s(at)])
            .status();
        assert!(
            matches!(mounted, Ok(st) if st.success()),
            "this test needs to mount a tmpfs (root, and mount from util-linux): {mounted:?}"
        );
        SmallFs(at.to_path_buf())
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
