//! A crate that depends on lockfile-host: its build runs our build script
//! with an `OUT_DIR` in its own target directory, and the script must write
//! there and nowhere else (not beside the consumer's binaries, not in this
//! workspace's target directory).
//!
//! The test runs the compiled build script itself, as cargo runs it for a
//! dependent crate, with the consumer's `OUT_DIR` outside this workspace.
//! The nested guest build starts from a copy of this workspace's guest
//! build, so that it is fresh rather than minutes long.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::common::*;

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(dir).expect("under dir").to_path_buf());
            }
        }
    }
    out
}

/// This build's lockfile-host build script: the newest one compiled.
fn build_script(profile_dir: &Path) -> PathBuf {
    let mut scripts: Vec<(SystemTime, PathBuf)> = fs::read_dir(profile_dir.join("build"))
        .expect("target/<profile>/build")
        .filter_map(|e| {
            let dir = e.ok()?.path();
            let name = dir.file_name()?.to_str()?.to_owned();
            let script = dir.join("build-script-build");
            let mtime = fs::metadata(&script).ok()?.modified().ok()?;
            name.starts_with("lockfile-host-")
                .then_some((mtime, script))
        })
        .collect();
    scripts.sort();
    scripts
        .pop()
        .map(|(_, script)| script)
        .expect("lockfile-host's compiled build script")
}

fn host_triple() -> String {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("a host line")
        .to_owned()
}

fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).ok()?.modified().ok()
}

#[test]
fn a_dependent_crates_build_writes_only_inside_its_out_dir() {
    let exe = std::env::current_exe().expect("test binary");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = build_script(profile_dir);

    // The consumer's target directory, outside this workspace.
    let consumer = sandbox();
    let out_dir = consumer
        .path()
        .join("target/debug/build/lockfile-host-0123456789abcdef/out");
    fs::create_dir_all(&out_dir).expect("OUT_DIR");
    assert!(
        workspace.join("target/guest").is_dir(),
        "this test expects the workspace's own target directory (target/guest); \
         run it without CARGO_TARGET_DIR"
    );
    let status = Command::new("cp")
        .arg("-a")
        .arg(workspace.join("target/guest"))
        .arg(out_dir.join("guest-target"))
        .status()
        .expect("cp");
    assert!(status.success(), "copy the guest build");

    let before = files(consumer.path());
    let ours: Vec<PathBuf> = [
        "lockfile.wasm",
        "lockfile-command.wasm",
        "lockfile-wasi.wasm",
        "lockfile-plugin-example.wasm",
    ]
    .iter()
    .map(|name| profile_dir.join(name))
    .collect();
    let our_times: Vec<_> = ours.iter().map(|p| mtime(p)).collect();
    let guest_time =
        mtime(&workspace.join("target/guest/wasm32-wasip2/release/lockfile_guest.wasm"));

    let out = Command::new(&script)
        .current_dir(workspace.join("host"))
        .env("OUT_DIR", &out_dir)
        .env("CARGO_MANIFEST_DIR", workspace.join("host"))
        .env("TARGET", host_triple())
        .env("HOST", host_triple())
        .env("PROFILE", "debug")
        .env(
            "CARGO",
            std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
        )
        .output()
        .expect("run the build script");
    assert!(
        out.status.success(),
        "the build script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Everything it made is in OUT_DIR...
    for name in [
        "lockfile.wasm",
        "lockfile.cwasm",
        "lockfile-runtime.cwasm",
        "lockfile-coordinated.cwasm",
        "lockfile-command.wasm",
        "lockfile-wasi.wasm",
        "lockfile-wasi.cwasm",
        "lockfile-plugin-example.wasm",
        "lockfile-plugin-example.cwasm",
    ] {
        assert!(out_dir.join(name).is_file(), "{name} is not in OUT_DIR");
    }
    // ... and nothing anywhere else in the consumer's target directory
    // (not beside its binaries, where this workspace's builds put copies).
    let rel_out = out_dir
        .strip_prefix(consumer.path())
        .expect("OUT_DIR in the consumer");
    let outside: Vec<_> = files(consumer.path())
        .difference(&before)
        .filter(|p| !p.starts_with(rel_out))
        .cloned()
        .collect();
    assert!(outside.is_empty(), "written outside OUT_DIR: {outside:?}");
    // Nor in this workspace's target directory.
    let after: Vec<_> = ours.iter().map(|p| mtime(p)).collect();
    assert_eq!(
        our_times, after,
        "the workspace's components were rewritten"
    );
    assert_eq!(
        guest_time,
        mtime(&workspace.join("target/guest/wasm32-wasip2/release/lockfile_guest.wasm")),
        "the workspace's guest build was touched"
    );
}
