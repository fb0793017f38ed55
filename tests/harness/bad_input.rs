//! Bad input: malformed files, things that are not files, unreachable paths,
//! read-only directories and full disks. Each gives a clear error (exit 3)
//! and loses nothing.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::common::*;

const MALFORMED: &[(&str, &[u8], &str)] = &[
    ("empty", b"", "the file is empty"),
    ("blank", b" \n\n", "the file is empty"),
    ("garbage", b"hello world", "pid `hello` is not a number"),
    ("negative pid", b"-12 1700000000.0", "is negative"),
    (
        "overflowing pid",
        b"99999999999 1700000000.0",
        "out of range",
    ),
    ("missing timestamp", b"1234", "no timestamp"),
    (
        "bad timestamp",
        b"1234 noon",
        "timestamp `noon` is not a number",
    ),
    ("negative timestamp", b"1234 -5.0", "before 1970"),
    ("binary", b"\xde\xad\xbe\xef\xff 1.0", "not UTF-8"),
    ("NUL", b"1234 1700000000.0\0", "NUL byte"),
];

#[test]
fn malformed_lock_files_are_refused_named_and_kept() {
    let dir = sandbox();
    let owner = Sleeper::new();
    for (i, (what, bytes, needle)) in MALFORMED.iter().enumerate() {
        let lock = dir.path().join(format!("m{i}.lock"));
        fs::write(&lock, bytes).expect("plant");
        for args in [
            vec!["acquire"],
            vec!["acquire", "--replace-stale"],
            vec!["release"],
        ] {
            let mut argv = args.clone();
            let pid = owner.pid_str();
            argv.extend(["--pid", &pid, s(&lock)]);
            let out = lockfile(&argv);
            expect_code(&out, 3);
            let msg = stderr(&out);
            assert!(
                msg.contains(&format!("malformed lock file `{}`", s(&lock)))
                    && msg.contains(needle),
                "{what}: {args:?}: `{msg}` lacks `{needle}`"
            );
            assert_eq!(
                &fs::read(&lock).expect("kept"),
                bytes,
                "{what}: {args:?} changed it"
            );
        }
        let v = status_json(&lock, &[]);
        assert_eq!(v["verdict"], "malformed", "{what}");
        assert_eq!(v["locked"], true, "{what}");
        assert!(v["pid"].is_null());
        // Only force replaces it.
        expect_code(
            &lockfile(&["acquire", "--force", "--pid", &owner.pid_str(), s(&lock)]),
            0,
        );
        assert_eq!(status_json(&lock, &[])["pid"], owner.pid(), "{what}");
        fs::write(&lock, bytes).expect("plant again");
        expect_code(&lockfile(&["release", "--force", s(&lock)]), 0);
        assert!(!lock.exists(), "{what}: force release removes it");
    }
}

/// labm8's `write` plants pid 0 (its own test of `force` does) and reads
/// it as a live owner. No process has pid 0: the lock is held by an owner
/// whose liveness is unknown, never stale, and only force takes or removes it.
#[test]
fn a_lock_naming_pid_0_is_held_by_an_unknown_owner_until_forced() {
    let dir = sandbox();
    let lock = dir.path().join("zero.lock");
    let owner = Sleeper::new();
    expect_code(&lockfile(&["write", s(&lock), "0", "1700000000.5"]), 0);
    let planted = fs::read(&lock).expect("planted");
    assert!(planted.starts_with(b"0 1700000000.5"), "{planted:?}");
    let v = status_json(&lock, &[]);
    assert_eq!(v["verdict"], "held");
    assert_eq!(v["cause"], "unknown-liveness");
    assert_eq!(v["pid"], 0);
    for args in [
        vec!["acquire"],
        vec!["acquire", "--replace-stale"],
        vec!["release"],
    ] {
        let pid = owner.pid_str();
        let mut argv = args.clone();
        argv.extend(["--pid", &pid, s(&lock)]);
        let out = lockfile(&argv);
        expect_code(&out, 1);
        expect_stderr(&out, "held by pid 0 (liveness unknown)");
        assert_eq!(
            fs::read(&lock).expect("kept"),
            planted,
            "{args:?} changed it"
        );
    }
    expect_code(
        &lockfile(&["acquire", "--force", "--pid", &owner.pid_str(), s(&lock)]),
        0,
    );
    assert_eq!(status_json(&lock, &[])["pid"], owner.pid());
    expect_code(&lockfile(&["write", s(&lock), "0"]), 0);
    expect_code(&lockfile(&["release", "--force", s(&lock)]), 0);
    assert!(!lock.exists());
}

#[test]
fn a_64_mib_lock_file_is_refused_without_reading_it() {
    let dir = sandbox();
    let lock = dir.path().join("big.lock");
    let file = fs::File::create(&lock).expect("create");
    file.set_len(64 << 20).expect("64 MiB");
    drop(file);
    let out = lockfile(&["acquire", "--replace-stale", s(&lock)]);
    expect_code(&out, 3);
    expect_stderr(&out, "larger than 4096 bytes");
    assert_eq!(fs::metadata(&lock).expect("kept").len(), 64 << 20);
    assert_eq!(status_json(&lock, &[])["verdict"], "malformed");
}

#[test]
fn a_directory_at_the_lock_path_is_an_error() {
    let dir = sandbox();
    let lock = dir.path().join("d.lock");
    fs::create_dir(&lock).expect("mkdir");
    for args in [
        vec!["acquire", "--force"],
        vec!["release", "--force"],
        vec!["status"],
        vec!["write", s(&lock), "12"],
    ] {
        let mut argv = args.clone();
        if args[0] != "write" {
            argv.push(s(&lock));
        }
        let out = lockfile(&argv);
        expect_code(&out, 3);
        let msg = stderr(&out);
        assert!(
            msg.contains(&format!("`{}` is a directory", s(&lock))),
            "{args:?}: {msg}"
        );
    }
    assert!(lock.is_dir());
}

#[test]
fn a_symlink_at_the_lock_path_is_never_followed() {
    let dir = sandbox();
    let target = dir.path().join("target");
    fs::write(&target, "precious").expect("target");
    let lock = dir.path().join("l.lock");
    symlink(&target, &lock).expect("symlink");
    let dangling = dir.path().join("dangling.lock");
    symlink(dir.path().join("nowhere"), &dangling).expect("symlink");
    for link in [&lock, &dangling] {
        for args in [
            vec!["acquire"],
            vec!["acquire", "--force"],
            vec!["release", "--force"],
            vec!["status"],
        ] {
            let mut argv = args.clone();
            argv.push(s(link));
            let out = lockfile(&argv);
            expect_code(&out, 3);
            assert!(
                stderr(&out).contains("is a symbolic link"),
                "{args:?}: {}",
                stderr(&out)
            );
        }
        assert!(fs::symlink_metadata(link)
            .expect("kept")
            .file_type()
            .is_symlink());
    }
    assert_eq!(fs::read_to_string(&target).expect("target"), "precious");
    assert!(
        !dir.path().join("nowhere").exists(),
        "nothing created through the link"
    );
}

#[test]
fn a_fifo_at_the_lock_path_is_an_error_and_never_blocks() {
    let dir = sandbox();
    let lock = dir.path().join("f.lock");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &lock,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .expect("mkfifo");
    // A blocked open would hang this test (and the harness reports it as hung).
    for args in [
        vec!["acquire", "--replace-stale"],
        vec!["status"],
        vec!["release"],
    ] {
        let mut argv = args.clone();
        argv.push(s(&lock));
        let out = lockfile(&argv);
        expect_code(&out, 3);
        assert!(
            stderr(&out).contains("is a special file (FIFO"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_missing_directory_is_named() {
    let dir = sandbox();
    let lock = dir.path().join("no/such/dir/x.lock");
    let out = lockfile(&["acquire", s(&lock)]);
    expect_code(&out, 3);
    let msg = stderr(&out);
    assert!(msg.contains(s(&lock)), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(!dir.path().join("no").exists());
}

/// Runs the command as the unprivileged user `nobody` when we are root, so
/// that permissions apply; as is otherwise.
fn unprivileged(cmd: &mut Command) -> &mut Command {
    if is_root() {
        cmd.uid(65534).gid(65534);
    }
    cmd
}

#[test]
fn a_read_only_directory_gives_a_clear_error_and_no_files() {
    let dir = sandbox();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = world_executable_lockfile();
    let ro = dir.path().join("ro");
    fs::create_dir(&ro).expect("mkdir");
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).expect("chmod");
    let lock = ro.join("x.lock");
    let out = output_retrying(unprivileged(Command::new(&bin).args(["acquire", s(&lock)])));
    expect_code(&out, 3);
    let msg = stderr(&out);
    assert!(msg.contains(s(&ro)), "names the place: {msg}");
    assert!(msg.contains("ermission denied"), "{msg}");
    assert_eq!(names(&ro), Vec::<String>::new());
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).expect("chmod back");
}

#[test]
#[ignore = "needs root (mounting a small tmpfs needs root): scripts/test runs it as root"]
fn a_full_disk_during_acquire_leaves_no_partial_lock() {
    require_root("mounting a small tmpfs needs root");
    let dir = sandbox();
    let mnt = dir.path().join("mnt");
    let _mounted = SmallFs::mount(&mnt, "size=64k");
    // Fill it to the last byte.
    let filler = mnt.join("filler");
    let mut size = 0u64;
    let chunk = vec![b'x'; 4096];
    {
        use std::io::Write;
        let mut f = fs::File::create(&filler).expect("filler");
        while f.write_all(&chunk).and_then(|()| f.flush()).is_ok() {
            size += 4096;
            assert!(size < 1 << 30, "tmpfs never filled");
        }
    }
    let lock = mnt.join("x.lock");
    let out = lockfile(&["acquire", s(&lock)]);
    expect_code(&out, 3);
    let msg = stderr(&out);
    assert!(msg.contains("no space left on device"), "{msg}");
    assert!(msg.contains(s(&mnt)), "names the place: {msg}");
    assert_eq!(names(&mnt), vec!["filler"], "no lock and no temporary file");
}

/// File-system errors say what happened in plain words, with the errno to
/// search for, and name the lock the user gave (a temporary file only as a
/// detail): not WASI's wording ("similar to `EIO` in POSIX").
#[test]
fn file_system_errors_are_said_in_plain_words_and_name_the_lock() {
    let dir = sandbox();
    let real = fs::canonicalize(dir.path()).expect("canonical");
    let check = |out: &std::process::Output, lock: &std::path::Path, words: &str| {
        expect_code(out, 3);
        let msg = stderr(out);
        assert!(msg.contains(words), "`{words}` in: {msg}");
        assert!(!msg.contains("similar to"), "WASI's wording: {msg}");
        assert!(!msg.contains("os error"), "std's wording: {msg}");
        assert!(
            msg.starts_with(&format!("lockfile: `{}`", s(lock)))
                || msg.starts_with(&format!("lockfile: cannot reach `{}`", s(lock))),
            "names the lock first: {msg}"
        );
    };

    let long = real.join("a".repeat(256));
    check(
        &lockfile(&["acquire", s(&long)]),
        &long,
        "too long (ENAMETOOLONG)",
    );

    let looped = real.join("loop1").join("x.lock");
    std::os::unix::fs::symlink("loop2", real.join("loop1")).expect("symlink");
    std::os::unix::fs::symlink("loop1", real.join("loop2")).expect("symlink");
    check(
        &lockfile(&["acquire", s(&looped)]),
        &looped,
        "symbolic links (ELOOP)",
    );

    fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).expect("chmod");
    let ro = real.join("ro");
    fs::create_dir(&ro).expect("mkdir");
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).expect("chmod");
    let lock = ro.join("x.lock");
    let bin = world_executable_lockfile();
    let out = output_retrying(unprivileged(Command::new(&bin).args(["acquire", s(&lock)])));
    check(&out, &lock, "permission denied (EACCES)");
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).expect("chmod back");
}

/// A read-only file system (EROFS), which wasmtime reports to a sandbox as
/// a bare I/O error: the binary looks at the mount and says so.
#[test]
#[ignore = "needs root (mounting a read-only tmpfs needs root): scripts/test runs it as root"]
fn a_read_only_file_system_is_called_one() {
    require_root("mounting a read-only tmpfs needs root");
    let dir = sandbox();
    let mnt = fs::canonicalize(dir.path()).expect("canonical").join("mnt");
    let _mounted = SmallFs::mount(&mnt, "ro,size=64k");
    let lock = mnt.join("x.lock");
    let out = lockfile(&["acquire", s(&lock)]);
    expect_code(&out, 3);
    let msg = stderr(&out);
    assert!(
        msg.starts_with(&format!("lockfile: `{}`", s(&lock))),
        "names the lock: {msg}"
    );
    assert!(msg.contains("read-only (EROFS)"), "{msg}");
    assert!(!msg.contains("similar to"), "WASI's wording: {msg}");
}
