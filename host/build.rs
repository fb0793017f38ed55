//! Builds the guest component and precompiles it for this host.
//!
//! The guest is built by a nested `cargo build --target wasm32-wasip2` with
//! its own target directory (sharing the outer one deadlocks on cargo's
//! build lock in `--release`): `target/guest` in this workspace, shared by
//! every build profile, or under `OUT_DIR` for a crate that depends on us.
//! The component the host embeds (`guest-coordinated/`: the library and
//! locks kept in a key-value store; `lockfile.wasm` stays the plain
//! `library` world, for third-party hosts) is then compiled to native code here, with the same
//! wasmtime and engine settings the host uses, so no process pays for
//! compiling it at start-up. Two compositions follow (with wac-graph):
//! `lockfile-wasi.wasm`, the library built for runtimes without a native
//! `files` (`guest-portable/`, the same source as the library) with the
//! WASI-only process provider, and `lockfile-plugin-example.wasm`, the
//! example plugin with that.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(dead_code)] // the runtime uses all of it; build.rs only `config`
#[path = "src/engine_config.rs"]
mod engine_config;

fn main() {
    if let Err(e) = run() {
        // A build script reports failure by panicking; say what went wrong first.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .ok_or("host/ has no parent")?
        .to_path_buf();
    // In this workspace's own target directory, every build of this crate
    // (debug, release, check, test, doc) shares one guest build, and the
    // components are copied beside the binaries for people and `wasmtime
    // run`. A crate that depends on lockfile-host builds in its own target
    // directory, and then this script writes only inside its OUT_DIR.
    let own_target = root.join("target");
    let in_own_target = out.starts_with(&own_target);
    let guest_target = if in_own_target {
        own_target.join("guest")
    } else {
        out.join("guest-target")
    };

    // The library twice: for hosts with a native `files`, and as the
    // `portable-library` world (lockfile-guest-portable: the same source,
    // its whole-file calls made of WASI's own), which `lockfile-wasi.wasm`
    // composes, so that runtimes without a native `files` pay no hop to a
    // provider for each call.
    nested_build(
        &root,
        &guest_target,
        &[
            "lockfile-guest",
            "lockfile-guest-portable",
            "lockfile-guest-coordinated",
            "lockfile-command",
            "lockfile-provider",
            "lockfile-plugin-example",
        ],
    )?;
    let built = guest_target.join("wasm32-wasip2/release");
    let wasm = built.join("lockfile_guest.wasm");
    rerun_on_inputs(&built.join("lockfile_guest.d"), &root)?;
    rerun_on_inputs(&built.join("lockfile-command.d"), &root)?;
    rerun_on_inputs(&built.join("lockfile_provider.d"), &root)?;
    rerun_on_inputs(&built.join("lockfile-plugin-example.d"), &root)?;

    let bytes = fs::read(&wasm)?;
    // What the host embeds: the library and locks in a key-value store.
    rerun_on_inputs(&built.join("lockfile_guest_coordinated.d"), &root)?;
    let coordinated_wasm = built.join("lockfile_guest_coordinated.wasm");
    let coordinated = fs::read(&coordinated_wasm)?;
    // Compile for the target triple with its baseline features, not for the
    // features of the CPU running this build: the binary must load the
    // component on any machine of its target (and cross builds must work).
    let target = env::var("TARGET")?;
    let for_target = |mut config: wasmtime::Config| {
        config
            .target(&target)
            .map_err(|e| format!("cannot target `{target}`: {e}"))?;
        // As `engine_config` decides for the host it runs on, for the target.
        config.native_unwind_info(target.contains("windows"));
        wasmtime::Engine::new(&config).map_err(|e| format!("cannot build the engine: {e}"))
    };
    // The components the runtime embeds, for its own engines; and those
    // embedders load into theirs, with wasmtime's defaults.
    let engine = for_target(engine_config::config(engine_config::Allocation::OnDemand))?;
    let embedders = for_target(engine_config::embedders_config())?;
    fs::write(out.join("lockfile.wasm"), &bytes)?;
    let command = fs::read(built.join("lockfile-command.wasm"))?;
    fs::write(out.join("lockfile-command.wasm"), &command)?;

    // The portable library with a `process` from WASI alone: a lock any
    // component runtime can run. Then the example plugin, plugged into that.
    rerun_on_inputs(&built.join("lockfile_guest_portable.d"), &root)?;
    let portable = fs::read(built.join("lockfile_guest_portable.wasm"))?;
    let provider = fs::read(built.join("lockfile_provider.wasm"))?;
    let wasi_only = plug(
        ("labm8:lockfile-library", &portable),
        ("labm8:lockfile-provider", &provider),
        &[PROCESS],
    )
    .map_err(|e| format!("cannot compose lockfile-wasi.wasm: {e}"))?;
    fs::write(out.join("lockfile-wasi.wasm"), &wasi_only)?;
    let plugin = fs::read(built.join("lockfile-plugin-example.wasm"))?;
    let plugin_example = plug(
        ("labm8:lockfile-plugin-example", &plugin),
        ("labm8:lockfile-wasi", &wasi_only),
        &[LOCKFILE],
    )
    .map_err(|e| format!("cannot compose lockfile-plugin-example.wasm: {e}"))?;
    fs::write(out.join("lockfile-plugin-example.wasm"), &plugin_example)?;
    // Precompiled: what the runtime embeds, for its engines; and for hosts
    // without a compiler, the library (the `library` world, for third-party
    // hosts), the WASI-only lock, the example plugin as built (it imports
    // the lock from its host), which the plugin API's tests and example
    // application run, and composed (for the benchmark).
    for (name, wasm, engine) in [
        ("lockfile-runtime.cwasm", &bytes, &engine),
        ("lockfile-coordinated.cwasm", &coordinated, &engine),
        ("lockfile.cwasm", &bytes, &embedders),
        ("lockfile-wasi.cwasm", &wasi_only, &embedders),
        ("lockfile-plugin-example.cwasm", &plugin, &embedders),
        (
            "lockfile-plugin-example-composed.cwasm",
            &plugin_example,
            &embedders,
        ),
    ] {
        let cwasm = engine
            .precompile_component(wasm)
            .map_err(|e| format!("cannot precompile for `{name}`: {e}"))?;
        fs::write(out.join(name), cwasm)?;
    }

    // Stable paths for people and for `wasmtime run`, beside the `lockfile`
    // binary: target/<profile>/lockfile.wasm and lockfile-command.wasm.
    if in_own_target {
        let profile_dir = out
            .ancestors()
            .nth(3)
            .ok_or("OUT_DIR is not under target/<profile>/build")?;
        fs::write(profile_dir.join("lockfile.wasm"), &bytes)?;
        fs::write(profile_dir.join("lockfile-command.wasm"), &command)?;
        fs::write(profile_dir.join("lockfile-wasi.wasm"), &wasi_only)?;
        fs::write(
            profile_dir.join("lockfile-plugin-example.wasm"),
            &plugin_example,
        )?;
    }
    Ok(())
}

/// The interface the library imports and the provider exports.
const PROCESS: &str = "labm8:lockfile/process@0.3.0";
/// The interface the library exports and plugins import.
const LOCKFILE: &str = "labm8:lockfile/lockfile@0.3.0";

/// Composes `socket`, whose imports `interfaces` are satisfied by an
/// instance of `plug`, into one component that exports what `socket`
/// exports. Everything else either imports (WASI) stays an import of the
/// result, shared by both.
fn plug(
    socket: (&str, &[u8]),
    plug: (&str, &[u8]),
    interfaces: &[&str],
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use wac_graph::{types::Package, CompositionGraph, EncodeOptions};

    let mut graph = CompositionGraph::new();
    let package = |graph: &mut CompositionGraph, (name, bytes): (&str, &[u8])| {
        Package::from_bytes(name, None, bytes.to_vec(), graph.types_mut())
            .map_err(|e| format!("`{name}` is not a component: {e:#}"))
    };
    let plug = package(&mut graph, plug)?;
    let socket = package(&mut graph, socket)?;
    let socket_exports: Vec<String> = graph.types()[socket.ty()].exports.keys().cloned().collect();
    let plug = graph.register_package(plug)?;
    let socket = graph.register_package(socket)?;
    let plug = graph.instantiate(plug);
    let socket = graph.instantiate(socket);
    for &interface in interfaces {
        let provided = graph.alias_instance_export(plug, interface)?;
        graph.set_instantiation_argument(socket, interface, provided)?;
    }
    for name in socket_exports {
        let export = graph.alias_instance_export(socket, &name)?;
        graph.export(export, &name)?;
    }
    Ok(graph.encode(EncodeOptions::default())?)
}

/// Re-runs this script when any source file of the guest changes, as listed
/// by the nested build's dep-info file.
fn rerun_on_inputs(dep_info: &Path, root: &Path) -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", root.join("guest").display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("guest-portable").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("guest-coordinated").display()
    );
    println!("cargo:rerun-if-changed={}", root.join("core").display());
    println!("cargo:rerun-if-changed={}", root.join("cli").display());
    println!("cargo:rerun-if-changed={}", root.join("command").display());
    println!("cargo:rerun-if-changed={}", root.join("provider").display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("examples/plugin").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    println!("cargo:rerun-if-changed=src/engine_config.rs");
    let text = fs::read_to_string(dep_info)?;
    let deps = text.split_once(':').map_or("", |(_, deps)| deps);
    for dep in deps.split_whitespace() {
        if dep.starts_with(root.to_str().unwrap_or("\0")) {
            println!("cargo:rerun-if-changed={dep}");
        }
    }
    Ok(())
}

/// Runs `cargo build --release --target wasm32-wasip2` for `packages` in
/// `target_dir`.
fn nested_build(
    root: &Path,
    target_dir: &Path,
    packages: &[&str],
) -> Result<(), Box<dyn std::error::Error>> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"]);
    for package in packages {
        cmd.args(["--package", package]);
    }
    cmd.arg("--target-dir").arg(target_dir);
    // Variables cargo sets for this build script would leak into the nested
    // build: host rustflags, the jobserver, the target dir, the package's own
    // metadata. Keep only what configures cargo itself (home, network, registries).
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let keep = [
            "CARGO_HOME",
            "CARGO_NET_",
            "CARGO_HTTP_",
            "CARGO_REGISTRIES_",
        ]
        .iter()
        .any(|p| key.starts_with(p));
        if (key.starts_with("CARGO_") && !keep)
            || matches!(
                key,
                "RUSTC" | "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER" | "RUSTDOC"
            )
            || matches!(
                key,
                "TARGET" | "HOST" | "OUT_DIR" | "PROFILE" | "OPT_LEVEL" | "DEBUG" | "NUM_JOBS"
            )
        {
            cmd.env_remove(key);
        }
    }
    let status = cmd.status()?;
    if !status.success() {
        return Err(format!(
            "building the guest failed ({status}); is the target installed? \
             run `rustup target add wasm32-wasip2`"
        )
        .into());
    }
    Ok(())
}
