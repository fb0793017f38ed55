//! `cargo bench`: what the sandbox costs.
//!
//! - `cycle/component`: acquire + release through the component (warm store).
//! - `cycle/native-core`: the same protocol code (`lockfile-core`) compiled
//!   natively over `std::fs`: the baseline the component is measured against.
//! - `cycle/raw-o-excl`: create (O_EXCL) + write + close + unlink, the least
//!   any lock file can do.
//! - `cycle/plugin-composed`: the same cycle made by the example plugin
//!   composed with `lockfile-wasi.wasm` (plugin -> library -> WASI-only
//!   provider, one component), as `wasmtime run` runs it.
//! - `cycle/plugin-hosted`: the example plugin as an application runs it,
//!   the lock from `lockfile_host::plugin` (plugin -> host -> the lock's own
//!   sandbox).
//! - `open/instantiate`: a new sandbox for a lock, from the `InstancePre`.
//! - `read/status` and `read/static-read`: inspecting a held lock.
//! - `contention/8x500`: 8 processes x 500 cycles on one lock (wall time;
//!   also checks exclusion: the shared counter must end at 4000).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use lockfile_core::protocol::Spare;
use lockfile_core::std_dir::StdDir;
use lockfile_core::{Identity, Lock, Machine, ProcessInfo, System, Timestamp};
use lockfile_host::{process, Runtime};

/// The host's process knowledge, natively: what the component asks through
/// its `process` import, answered without a sandbox in between.
struct NativeSystem {
    me: Identity,
    machine: Machine,
    counter: std::cell::Cell<u64>,
}

impl NativeSystem {
    fn new() -> Self {
        let pid = std::process::id();
        NativeSystem {
            me: Identity {
                pid,
                start_ticks: process::query(pid).start_ticks,
            },
            machine: process::machine(),
            counter: std::cell::Cell::new(u64::from(pid) << 32),
        }
    }
}

impl System for NativeSystem {
    fn current(&self) -> Identity {
        self.me
    }
    fn runner(&self) -> Identity {
        self.me
    }
    fn machine(&self) -> Machine {
        self.machine.clone()
    }
    fn query(&self, pid: u32) -> ProcessInfo {
        process::query(pid)
    }
    fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::new(d.as_secs(), d.subsec_nanos())
    }
    fn random(&self) -> u64 {
        // Unique per call is all the protocol needs from it here.
        let n = self.counter.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.counter.set(n);
        n
    }
}

fn bench_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lockfile-bench-")
        .tempdir()
        .expect("temp dir")
}

fn cycle(c: &mut Criterion) {
    let dir = bench_dir();
    let runtime = Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("cycle");

    let mut lock = runtime
        .open(dir.path().join("component.lock"))
        .expect("open");
    group.bench_function("component", |b| {
        b.iter(|| {
            lock.acquire(false, false).expect("acquire");
            lock.release(false).expect("release");
        })
    });

    let std_dir = StdDir::new(dir.path());
    let sys = NativeSystem::new();
    let path = dir.path().join("native.lock");
    let path = path.to_str().expect("utf-8");
    // A handle keeps its spare across cycles, as the component's does.
    let spare = Spare::default();
    group.bench_function("native-core", |b| {
        b.iter(|| {
            let lock = Lock::new(&std_dir, "native.lock", path, &sys).with_spare(&spare);
            lock.acquire(false, false).expect("acquire");
            lock.release(false).expect("release");
        })
    });

    let raw = dir.path().join("raw.lock");
    let line = format!("{} 1796032931.123456\n", std::process::id());
    group.bench_function("raw-o-excl", |b| {
        b.iter(|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&raw)
                .expect("create");
            f.write_all(line.as_bytes()).expect("write");
            drop(f);
            fs::remove_file(&raw).expect("unlink");
        })
    });
    let plugin_lock = dir.path().join("plugin.lock");
    group.bench_function("plugin-composed", |b| {
        b.iter_custom(|iters| plugin::composed(dir.path(), &plugin_lock, iters))
    });
    group.bench_function("plugin-hosted", |b| {
        b.iter_custom(|iters| plugin::hosted(&runtime, dir.path(), &plugin_lock, iters))
    });
    group.finish();
}

/// The example plugin, run with `--cycles N`: its `run` is timed (not its
/// instantiation, which a long-lived plugin pays once).
mod plugin {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use lockfile_host::plugin::{add_to_linker, PluginLocks};
    use lockfile_host::Runtime;
    use wasmtime::component::{Component, Linker, ResourceTable};
    use wasmtime::{Engine, Store};
    use wasmtime_wasi::p2::bindings::sync::Command;
    use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

    pub struct State {
        wasi: WasiCtx,
        table: ResourceTable,
        locks: Option<PluginLocks>,
    }

    impl WasiView for State {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    fn wasi(dir: &Path, lock: &Path, iters: u64) -> WasiCtx {
        let dir = dir.to_str().expect("utf-8");
        let mut wasi = WasiCtxBuilder::new();
        // As `wasmtime run` and lockfile-host do: file system calls on this
        // thread, not handed to a blocking pool (about 20 us each).
        wasi.allow_blocking_current_thread(true);
        wasi.inherit_stderr()
            .args(&[
                "plugin",
                "--cycles",
                &iters.to_string(),
                lock.to_str().expect("utf-8"),
            ])
            .preopened_dir(dir, dir, FsPerms::ReadWrite)
            .expect("preopen");
        wasi.preopened_dir("/proc", "/proc", FsPerms::ReadOnly)
            .expect("preopen /proc");
        wasi.build()
    }

    fn run(store: &mut Store<State>, component: &Component, linker: &Linker<State>) -> Duration {
        let command = Command::instantiate(&mut *store, component, linker).expect("instantiate");
        let start = Instant::now();
        let result = command.wasi_cli_run().call_run(&mut *store);
        let elapsed = start.elapsed();
        match result {
            Ok(Ok(())) => {}
            Err(e) if e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|x| x.0) == Some(0) => {}
            other => panic!("the plugin failed: {other:?}"),
        }
        elapsed
    }

    fn load(engine: &Engine, path: &str) -> Component {
        // SAFETY: produced by lockfile-host's build script with this same
        // wasmtime; wasmtime refuses a mismatched artifact.
        unsafe { Component::deserialize_file(engine, path) }.expect("load the plugin")
    }

    pub fn composed(dir: &Path, lock: &Path, iters: u64) -> Duration {
        let engine = Engine::default();
        let component = load(&engine, lockfile_host::PRECOMPILED_PLUGIN_EXAMPLE_COMPOSED);
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("WASI");
        let state = State {
            wasi: wasi(dir, lock, iters),
            table: ResourceTable::new(),
            locks: None,
        };
        run(&mut Store::new(&engine, state), &component, &linker)
    }

    pub fn hosted(runtime: &Runtime, dir: &Path, lock: &Path, iters: u64) -> Duration {
        let engine = Engine::default();
        let component = load(&engine, lockfile_host::PRECOMPILED_PLUGIN_EXAMPLE);
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("WASI");
        add_to_linker(&mut linker, |s: &mut State| {
            s.locks.as_mut().expect("the plugin's locks")
        })
        .expect("the lock");
        let dir_str = dir.to_str().expect("utf-8");
        let locks = PluginLocks::builder(runtime)
            .dir(dir, dir_str)
            .build()
            .expect("locks");
        let state = State {
            wasi: wasi(dir, lock, iters),
            table: ResourceTable::new(),
            locks: Some(locks),
        };
        run(&mut Store::new(&engine, state), &component, &linker)
    }
}

fn open(c: &mut Criterion) {
    let dir = bench_dir();
    let runtime = Runtime::new().expect("runtime");
    let path = dir.path().join("open.lock");
    c.bench_function("open/instantiate", |b| {
        b.iter(|| runtime.open(&path).expect("open"))
    });
}

fn read(c: &mut Criterion) {
    let dir = bench_dir();
    let runtime = Runtime::new().expect("runtime");
    let path = dir.path().join("read.lock");
    let mut lock = runtime.open(&path).expect("open");
    lock.acquire(false, false).expect("acquire");
    let mut group = c.benchmark_group("read");
    group.bench_function("status", |b| b.iter(|| lock.status().expect("status")));
    group.bench_function("static-read", |b| {
        b.iter(|| runtime.read(&path).expect("read"))
    });
    group.finish();
}

/// The contention workers are this benchmark binary itself, run with
/// `--contend` and the arguments of the `contend` example, whose code it
/// includes: `cargo bench` does not build examples.
#[path = "../examples/contend.rs"]
mod contend;

const WORKER_FLAG: &str = "--contend";

fn contention(c: &mut Criterion) {
    const PROCS: usize = 8;
    const CYCLES: usize = 500;
    let bin = std::env::current_exe().expect("bench binary");
    let mut group = c.benchmark_group("contention");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("8x500", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = bench_dir();
                let start = Instant::now();
                let children: Vec<_> = (0..PROCS)
                    .map(|_| {
                        Command::new(&bin)
                            .arg(WORKER_FLAG)
                            .args([
                                "cycles",
                                dir.path().to_str().expect("utf-8"),
                                &CYCLES.to_string(),
                            ])
                            .spawn()
                            .expect("spawn")
                    })
                    .collect();
                for mut child in children {
                    let status = child.wait().expect("wait");
                    assert!(status.success(), "a worker saw two holders or failed");
                }
                total += start.elapsed();
                let counter = fs::read_to_string(dir.path().join("counter")).expect("counter");
                assert_eq!(counter.trim(), (PROCS * CYCLES).to_string(), "lost updates");
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, cycle, open, read, contention);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(WORKER_FLAG) {
        std::process::exit(i32::from(contend::run(&args[1..])));
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
