//! The Python and Node packages' own test suites (pytest, node's test
//! runner), run against what this build produced: the `lockfile` CLI, and
//! the WASI-only component. Each package's native module is a member of
//! this workspace and reuses this build's wasmtime (same profile): the
//! Python suite builds the wheel with maturin and installs it into a fresh
//! virtual environment; the Node suite builds the addon, packs the package
//! with `npm pack` and installs it into a fresh project. Each installs its
//! pinned dependencies into the project (target/py-*, node/node_modules)
//! and fails, saying what to install, when its language is missing.

use std::process::Command;

use crate::common::*;

fn run_suite(script: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/{script}"))
        .env("LOCKFILE_WASI_COMPONENT", lockfile_host::WASI_COMPONENT)
        .env("LOCKFILE_BIN", lockfile_bin())
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{script} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Shown with --nocapture: the suites' own summaries.
    println!("{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn the_python_package_passes_its_tests() {
    run_suite("python/ci.sh");
}

#[test]
fn the_node_package_passes_its_tests() {
    run_suite("node/ci.sh");
}
