//! Plugins: `lockfile-wasi.wasm` (the lock from WASI alone), the example
//! plugin composed with it under the stock `wasmtime run`, and the
//! application API that hands the lock to plugins (`lockfile_host::plugin`).

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use lockfile_host::plugin::{self, PluginLocks};
use lockfile_host::{
    Runtime, PLUGIN_EXAMPLE_COMPONENT, PRECOMPILED_PLUGIN_EXAMPLE, PRECOMPILED_WASI,
};
use wasmtime::component::{Component, Linker, ResourceTable, Val};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::common::*;

fn engine() -> Engine {
    let mut config = Config::new();
    config.wasm_component_model(true);
    Engine::new(&config).expect("engine")
}

mod wasi_only {
    use super::*;

    pub struct State {
        pub wasi: WasiCtx,
        pub table: ResourceTable,
    }

    impl WasiView for State {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    /// `lockfile-wasi.wasm` in a store with nothing but WASI: `dir` and
    /// (if `proc`) `/proc` preopened, `env` in its environment.
    pub struct Lock {
        store: Store<State>,
        instance: wasmtime::component::Instance,
        iface: wasmtime::component::ComponentExportIndex,
        handle: Val,
    }

    impl Lock {
        pub fn open(dir: &Path, path: &Path, proc: bool, env: &[(&str, &str)]) -> Self {
            let engine = engine();
            // SAFETY: produced by lockfile-host's build script with this same
            // wasmtime; wasmtime refuses a mismatched artifact.
            let component = unsafe { Component::deserialize_file(&engine, PRECOMPILED_WASI) }
                .expect("load lockfile-wasi");
            for (name, _) in component.component_type().imports(&engine) {
                assert!(
                    name.starts_with("wasi:"),
                    "lockfile-wasi.wasm imports `{name}`, which is not WASI"
                );
            }
            // Only WASI: instantiation fails if anything else is imported.
            let mut linker = Linker::<State>::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("WASI");
            let mut wasi = WasiCtxBuilder::new();
            wasi.preopened_dir(dir, s(dir), FsPerms::ReadWrite)
                .expect("preopen");
            if proc {
                wasi.preopened_dir("/proc", "/proc", FsPerms::ReadOnly)
                    .expect("preopen /proc");
            }
            for (k, v) in env {
                wasi.env(k, v);
            }
            let mut store = Store::new(
                &engine,
                State {
                    wasi: wasi.build(),
                    table: ResourceTable::new(),
                },
            );
            let instance = linker
                .instantiate(&mut store, &component)
                .expect("lockfile-wasi instantiates with WASI alone");
            let iface = instance
                .get_export_index(&mut store, None, "labm8:lockfile/lockfile@0.3.0")
                .expect("it exports the lockfile interface");
            let mut lock = Lock {
                store,
                instance,
                iface,
                handle: Val::Bool(false),
            };
            let mut handle = [Val::Bool(false)];
            lock.func("[constructor]lock-file")
                .call(&mut lock.store, &[Val::String(s(path).into())], &mut handle)
                .expect("construct");
            lock.handle = handle[0].clone();
            lock
        }

        fn func(&mut self, name: &str) -> wasmtime::component::Func {
            let index = self
                .instance
                .get_export_index(&mut self.store, Some(&self.iface), name)
                .unwrap_or_else(|| panic!("export {name}"));
            self.instance
                .get_func(&mut self.store, index)
                .expect("a function")
        }

        /// Calls a method; its `result` as `Ok(ok-value)` or `Err(error)`.
        pub fn call(&mut self, method: &str, args: &[Val]) -> Result<Option<Val>, Val> {
            let func = self.func(&format!("[method]lock-file.{method}"));
            let mut params = vec![self.handle.clone()];
            params.extend_from_slice(args);
            let mut result = [Val::Bool(false)];
            func.call(&mut self.store, &params, &mut result)
                .expect("no trap");
            match &result[0] {
                Val::Result(Ok(v)) => Ok(v.as_deref().cloned()),
                Val::Result(Err(e)) => Err(e.as_deref().cloned().expect("an error value")),
                other => panic!("not a result: {other:?}"),
            }
        }
    }
}

/// Only the library `lockfile_host` embeds imports `files`; the one other
/// runtimes get (`lockfile-wasi.wasm`, and so the composed plugin) is the
/// portable build, with no `files` anywhere in it: its file operations are
/// WASI's calls, with no hop to a provider between components for each.
#[test]
fn only_the_embedded_library_uses_the_files_interface() {
    const FILES: &[u8] = b"labm8:lockfile/files";
    let mentions = |path: &str| {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("read `{path}`: {e}"));
        bytes.windows(FILES.len()).any(|w| w == FILES)
    };
    assert!(mentions(lockfile_host::LIBRARY_COMPONENT));
    assert!(!mentions(lockfile_host::WASI_COMPONENT));
    assert!(!mentions(PLUGIN_EXAMPLE_COMPONENT));
    let engine = engine();
    // SAFETY: produced by lockfile-host's build script with this same
    // wasmtime; wasmtime refuses a mismatched artifact.
    let library =
        unsafe { Component::deserialize_file(&engine, lockfile_host::PRECOMPILED_LIBRARY) }
            .expect("load the library");
    let imports: Vec<String> = library
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    assert!(
        imports.iter().any(|n| n == "labm8:lockfile/files@0.3.0"),
        "{imports:?}"
    );
}

#[test]
fn lockfile_wasi_imports_only_wasi_and_locks_for_the_process_running_it() {
    let dir = sandbox();
    let path = dir.path().join("service.lock");
    let mut lock = wasi_only::Lock::open(dir.path(), &path, true, &[]);
    lock.call("acquire", &[Val::Bool(false), Val::Bool(false)])
        .expect("acquire");
    // The owner is the process running the runtime (this test), not its parent.
    let other = Sleeper::new();
    let st = status_json(&path, &["--pid", &other.pid_str()]);
    assert_eq!(st["pid"], std::process::id(), "{st}");
    assert_eq!(st["verdict"], "held", "{st}");
    assert_eq!(st["cause"], "running", "{st}");
    expect_code(
        &lockfile(&["acquire", "--pid", &other.pid_str(), s(&path)]),
        1,
    );
    lock.call("release", &[Val::Bool(false)]).expect("release");
    assert!(!path.exists());
}

#[test]
fn lockfile_wasi_acts_for_lockfile_pid() {
    let dir = sandbox();
    let path = dir.path().join("job.lock");
    let owner = Sleeper::new();
    let mut lock = wasi_only::Lock::open(
        dir.path(),
        &path,
        true,
        &[("LOCKFILE_PID", &owner.pid_str())],
    );
    lock.call("acquire", &[Val::Bool(false), Val::Bool(false)])
        .expect("acquire");
    let st = status_json(&path, &[]);
    assert_eq!(st["pid"], owner.pid(), "{st}");
    assert_eq!(st["verdict"], "held", "{st}");
    // The lock's owner is checked by start time too: the record has it.
    let text = fs::read_to_string(&path).expect("lock");
    assert!(
        text.contains(&format!("start={}", start_ticks(owner.pid()))),
        "{text}"
    );
    // A LOCKFILE_PID that is not a pid acts for nobody: refused, nothing written.
    let other = dir.path().join("other.lock");
    let mut bad = wasi_only::Lock::open(dir.path(), &other, true, &[("LOCKFILE_PID", "12abc")]);
    let err = bad
        .call("acquire", &[Val::Bool(false), Val::Bool(false)])
        .expect_err("refused");
    assert!(
        matches!(&err, Val::Variant(case, _) if case == "invalid-identity"),
        "{err:?}"
    );
    assert!(!other.exists());
}

#[test]
fn lockfile_wasi_without_proc_judges_nobody_stale() {
    let dir = sandbox();
    let path = dir.path().join("x.lock");
    fs::write(&path, format!("{DEAD_PID} 1700000000.0\n")).expect("plant");
    let mut lock = wasi_only::Lock::open(dir.path(), &path, false, &[]);
    let status = lock.call("status", &[]).expect("status").expect("a status");
    let Val::Record(fields) = status else {
        panic!("not a record: {status:?}")
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .expect("field")
    };
    assert_eq!(field("verdict"), Val::Enum("held".into()));
    assert_eq!(field("cause"), Val::Enum("unknown-liveness".into()));
    // And it cannot tell whom to lock for: refused, the lock left alone.
    let err = lock
        .call("acquire", &[Val::Bool(true), Val::Bool(false)])
        .expect_err("refused");
    assert!(matches!(&err, Val::Variant(..)), "{err:?}");
    assert_eq!(
        fs::read_to_string(&path).expect("kept"),
        format!("{DEAD_PID} 1700000000.0\n")
    );
}

/// `wasmtime run --dir DIR::DIR --dir /proc::/proc lockfile-plugin-example.wasm ARGS`.
fn plugin_command(wasmtime: &str, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(wasmtime);
    cmd.arg("run")
        .arg("--dir")
        .arg(format!("{0}::{0}", s(dir)))
        .args(["--dir", "/proc::/proc"])
        .arg(PLUGIN_EXAMPLE_COMPONENT)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn run_plugin(wasmtime: &str, dir: &Path, args: &[&str]) -> Output {
    plugin_command(wasmtime, dir, args)
        .output()
        .expect("run wasmtime")
}

#[test]
fn the_composed_plugin_runs_under_stock_wasmtime_and_excludes_the_cli() {
    let wt = wasmtime_cli();
    let dir = sandbox();
    let lock = dir.path().join("journal.lock");
    let journal = dir.path().join("journal");
    let out = run_plugin(&wt, dir.path(), &[s(&lock), s(&journal), "first"]);
    expect_code(&out, 0);
    assert_eq!(fs::read_to_string(&journal).expect("journal"), "1 first\n");
    assert!(!lock.exists(), "released");

    // While the CLI holds the lock, the plugin is refused with a clear message.
    let holder = Sleeper::new();
    expect_code(
        &lockfile(&["acquire", "--pid", &holder.pid_str(), s(&lock)]),
        0,
    );
    let out = run_plugin(&wt, dir.path(), &[s(&lock), s(&journal), "second"]);
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("the lock is held")
            && err.contains(&format!("held by pid {}", holder.pid()))
            && err.contains("is running"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&journal).expect("journal"), "1 first\n");
    expect_code(
        &lockfile(&["release", "--pid", &holder.pid_str(), s(&lock)]),
        0,
    );

    // While the plugin holds it, the CLI is refused: its owner is the
    // wasmtime process running the plugin.
    let mut child = plugin_command(
        &wt,
        dir.path(),
        &["--hold-ms", "4000", s(&lock), s(&journal), "third"],
    )
    .stdout(Stdio::null())
    .spawn()
    .expect("spawn");
    wait_for_file(&lock);
    let st = status_json(&lock, &[]);
    assert_eq!(st["pid"], child.id(), "{st}");
    assert_eq!(st["verdict"], "held", "{st}");
    let out = lockfile(&["acquire", "--pid", &holder.pid_str(), s(&lock)]);
    expect_code(&out, 1);
    expect_stderr(&out, &format!("held by pid {}", child.id()));
    assert!(child.wait().expect("wait").success());
    assert_eq!(
        fs::read_to_string(&journal).expect("journal"),
        "1 first\n2 third\n"
    );
    assert!(!lock.exists());
}

#[test]
fn plugins_and_native_processes_contend_without_losing_an_update() {
    let wt = wasmtime_cli();
    let dir = sandbox();
    let lock = dir.path().join("journal.lock");
    let journal = dir.path().join("journal");
    fs::write(&journal, "").expect("journal");
    const PLUGINS: usize = 8;
    const NATIVES: usize = 8;
    let mut children = Vec::new();
    for i in 0..PLUGINS.max(NATIVES) {
        if i < PLUGINS {
            let child = plugin_command(
                &wt,
                dir.path(),
                &["--wait-ms", "120000", s(&lock), s(&journal), "plugin"],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn plugin");
            children.push(("plugin", child));
        }
        if i < NATIVES {
            // The same read-number-append under `lockfile run`.
            let script = r#"n=$(wc -l < "$1"); echo "$((n + 1)) native" >> "$1""#;
            let child = Command::new(lockfile_bin())
                .args([
                    "run",
                    "--wait",
                    "120",
                    s(&lock),
                    "--",
                    "sh",
                    "-c",
                    script,
                    "sh",
                ])
                .arg(&journal)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn native");
            children.push(("native", child));
        }
    }
    for (who, child) in children {
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{who} failed: {}", stderr(&out));
    }
    let text = fs::read_to_string(&journal).expect("journal");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), PLUGINS + NATIVES, "{text}");
    for (i, line) in lines.iter().enumerate() {
        assert!(
            line.starts_with(&format!("{} ", i + 1)),
            "line {} is `{line}`: an update was lost or doubled\n{text}",
            i + 1
        );
    }
    assert_eq!(
        lines.iter().filter(|l| l.ends_with(" plugin")).count(),
        PLUGINS
    );
    assert!(!lock.exists());
}

#[test]
fn a_killed_plugins_lock_is_stale_and_replace_stale_takes_it() {
    let wt = wasmtime_cli();
    let dir = sandbox();
    let lock = dir.path().join("journal.lock");
    let journal = dir.path().join("journal");
    let mut child = plugin_command(
        &wt,
        dir.path(),
        &["--hold-ms", "120000", s(&lock), s(&journal), "killed"],
    )
    .stdout(Stdio::null())
    .spawn()
    .expect("spawn");
    // Killed once it wrote its line, while it holds the lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while fs::read_to_string(&journal).unwrap_or_default() != "1 killed\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "the plugin never wrote"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    let st = status_json(&lock, &[]);
    assert_eq!(st["verdict"], "stale", "{st}");
    // Without --replace-stale the plugin is refused; with it, it takes over.
    let out = run_plugin(&wt, dir.path(), &[s(&lock), s(&journal), "after"]);
    expect_code(&out, 1);
    expect_stderr(&out, "stale");
    let out = run_plugin(
        &wt,
        dir.path(),
        &["--replace-stale", s(&lock), s(&journal), "after"],
    );
    expect_code(&out, 0);
    assert_eq!(
        fs::read_to_string(&journal).expect("journal"),
        "1 killed\n2 after\n"
    );
    // And the CLI takes a killed plugin's lock the same way.
    let mut child = plugin_command(
        &wt,
        dir.path(),
        &["--hold-ms", "120000", s(&lock), s(&journal), "killed"],
    )
    .stdout(Stdio::null())
    .spawn()
    .expect("spawn");
    wait_for_file(&lock);
    child.kill().expect("kill");
    child.wait().expect("reap");
    let holder = Sleeper::new();
    expect_code(
        &lockfile(&[
            "acquire",
            "--replace-stale",
            "--pid",
            &holder.pid_str(),
            s(&lock),
        ]),
        0,
    );
}

/// An application that runs the example plugin (as built: it imports the
/// lock from its host) with `lockfile_host::plugin`.
mod app {
    use super::*;

    pub struct State {
        wasi: WasiCtx,
        table: ResourceTable,
        pub locks: PluginLocks,
    }

    impl WasiView for State {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    /// How a plugin run ended.
    #[derive(Debug)]
    pub enum End {
        Exit(i32),
        Trap(String),
    }

    pub struct Run {
        pub end: End,
        pub stderr: String,
        /// The store, still alive: its locks are released when it drops.
        pub store: Store<State>,
    }

    /// Runs the plugin with `args`; it sees `dirs` (host, guest) through
    /// WASI, and may lock in `grants` (host, guest).
    pub fn run(dirs: &[(&Path, &str)], grants: &[(&Path, &str)], args: &[&str]) -> Run {
        let engine = engine();
        // SAFETY: produced by lockfile-host's build script with this same
        // wasmtime; wasmtime refuses a mismatched artifact.
        let component = unsafe { Component::deserialize_file(&engine, PRECOMPILED_PLUGIN_EXAMPLE) }
            .expect("load the example plugin");
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("WASI");
        plugin::add_to_linker(&mut linker, |s| &mut s.locks).expect("the lock");
        let runtime = Runtime::new().expect("runtime");
        let mut locks = PluginLocks::builder(&runtime);
        for (host, guest) in grants {
            locks = locks.dir(*host, *guest);
        }
        let locks = locks.build().expect("the plugin's locks");
        let stderr = MemoryOutputPipe::new(64 << 10);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stderr(stderr.clone());
        let mut argv = vec!["plugin"];
        argv.extend_from_slice(args);
        wasi.args(&argv);
        for (host, guest) in dirs {
            wasi.preopened_dir(host, guest, FsPerms::ReadWrite)
                .expect("preopen");
        }
        let mut store = Store::new(
            &engine,
            State {
                wasi: wasi.build(),
                table: ResourceTable::new(),
                locks,
            },
        );
        let command = wasmtime_wasi::p2::bindings::sync::Command::instantiate(
            &mut store, &component, &linker,
        )
        .expect("instantiate the plugin");
        let end = match command.wasi_cli_run().call_run(&mut store) {
            Ok(Ok(())) => End::Exit(0),
            Ok(Err(())) => End::Exit(1),
            Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => End::Exit(exit.0),
                None => End::Trap(format!("{e:#}")),
            },
        };
        Run {
            end,
            stderr: String::from_utf8_lossy(&stderr.contents()).into_owned(),
            store,
        }
    }
}

fn exit_code(run: &app::Run) -> i32 {
    match run.end {
        app::End::Exit(code) => code,
        app::End::Trap(ref e) => panic!("the plugin trapped: {e}\n{}", run.stderr),
    }
}

#[test]
fn two_plugins_of_one_application_exclude_each_other_and_the_cli() {
    let dir = sandbox();
    let host = dir.path().to_path_buf();
    let lock = host.join("journal.lock");
    let a = {
        let host = host.clone();
        std::thread::spawn(move || {
            let run = app::run(
                &[(&host, "/data")],
                &[(&host, "/data")],
                &[
                    "--hold-ms",
                    "3000",
                    "/data/journal.lock",
                    "/data/journal",
                    "a",
                ],
            );
            exit_code(&run)
        })
    };
    wait_for_file(&lock);
    // The owner is this application's process, with plugin A's holder tag.
    let text = fs::read_to_string(&lock).expect("lock");
    assert!(
        text.starts_with(&format!("{} ", std::process::id())),
        "{text}"
    );
    assert!(text.contains("holder="), "{text}");
    // Plugin B, in the same process, is refused: another holder.
    let b = app::run(
        &[(&host, "/data")],
        &[(&host, "/data")],
        &["/data/journal.lock", "/data/journal", "b"],
    );
    assert_eq!(exit_code(&b), 1, "{}", b.stderr);
    assert!(
        b.stderr.contains("the lock is held") && b.stderr.contains("another plugin"),
        "{}",
        b.stderr
    );
    drop(b);
    // The native CLI sees the application's process holding it, and is refused.
    let st = status_json(&lock, &[]);
    assert_eq!(st["pid"], std::process::id(), "{st}");
    assert_eq!(st["verdict"], "held", "{st}");
    let holder = Sleeper::new();
    expect_code(
        &lockfile(&["acquire", "--pid", &holder.pid_str(), s(&lock)]),
        1,
    );
    assert_eq!(a.join().expect("plugin A"), 0);
    assert!(!lock.exists());
    // And while the CLI holds it, a plugin is refused.
    expect_code(
        &lockfile(&["acquire", "--pid", &holder.pid_str(), s(&lock)]),
        0,
    );
    let c = app::run(
        &[(&host, "/data")],
        &[(&host, "/data")],
        &["/data/journal.lock", "/data/journal", "c"],
    );
    assert_eq!(exit_code(&c), 1, "{}", c.stderr);
    assert!(
        c.stderr.contains(&format!("held by pid {}", holder.pid())),
        "{}",
        c.stderr
    );
    expect_code(
        &lockfile(&["release", "--pid", &holder.pid_str(), s(&lock)]),
        0,
    );
    let d = app::run(
        &[(&host, "/data")],
        &[(&host, "/data")],
        &["/data/journal.lock", "/data/journal", "d"],
    );
    assert_eq!(exit_code(&d), 0, "{}", d.stderr);
    assert_eq!(
        fs::read_to_string(host.join("journal")).expect("journal"),
        "1 a\n2 d\n"
    );
}

#[test]
fn a_plugin_cannot_lock_outside_its_grant() {
    let granted = sandbox();
    let other = sandbox();
    // The plugin may write in both directories, but lock only in the first.
    let dirs = [(granted.path(), "/data"), (other.path(), "/other")];
    let grants = [(granted.path(), "/data")];
    for lock in [
        "/other/x.lock",
        "/data/../other/x.lock",
        "relative.lock",
        "/x.lock",
    ] {
        let run = app::run(&dirs, &grants, &[lock, "/other/journal", "outside"]);
        // WASI 0.2 exits with success or failure only: the message says which.
        assert_eq!(exit_code(&run), 1, "{lock}: {}", run.stderr);
        assert!(run.stderr.contains("cannot lock"), "{lock}: {}", run.stderr);
        assert!(
            names(granted.path()).is_empty(),
            "{lock}: {:?}",
            names(granted.path())
        );
        assert!(
            names(other.path()).is_empty(),
            "{lock}: {:?}",
            names(other.path())
        );
    }
    // Inside the grant it works, under the path the plugin knows.
    let run = app::run(
        &dirs,
        &grants,
        &["/data/x.lock", "/other/journal", "inside"],
    );
    assert_eq!(exit_code(&run), 0, "{}", run.stderr);
    assert_eq!(names(granted.path()), Vec::<String>::new());
    assert_eq!(
        fs::read_to_string(other.path().join("journal")).expect("journal"),
        "1 inside\n"
    );
}

#[test]
fn a_trapping_plugins_locks_are_released_with_its_store() {
    let dir = sandbox();
    let lock = dir.path().join("journal.lock");
    let run = app::run(
        &[(dir.path(), "/data")],
        &[(dir.path(), "/data")],
        &["--crash", "/data/journal.lock", "/data/journal", "crash"],
    );
    assert!(matches!(run.end, app::End::Trap(_)), "{:?}", run.end);
    // The trap left the lock held by the application for that plugin...
    assert!(lock.exists());
    assert_eq!(
        run.store.data().locks.held().collect::<Vec<_>>(),
        ["/data/journal.lock"]
    );
    let st = status_json(&lock, &[]);
    assert_eq!(st["verdict"], "held", "{st}");
    // ... until the application drops the plugin's store.
    drop(run);
    assert!(!lock.exists(), "the store's drop released the lock");
    assert_eq!(
        fs::read_to_string(dir.path().join("journal")).expect("journal"),
        "1 crash\n"
    );
    // The same without a trap: a lock the plugin never released is released
    // with release_all, another plugin's lock is left alone.
    let mut run = app::run(
        &[(dir.path(), "/data")],
        &[(dir.path(), "/data")],
        &["--crash", "/data/journal.lock", "/data/journal", "again"],
    );
    assert!(lock.exists());
    run.store
        .data_mut()
        .locks
        .release_all()
        .expect("release_all");
    assert!(!lock.exists());
}

#[test]
fn the_plugin_application_example_runs_two_plugins_in_turn() {
    let dir = sandbox();
    let out = Command::new(example_bin("plugins"))
        .arg(dir.path())
        .output()
        .expect("run the example");
    expect_code(&out, 0);
    assert_eq!(
        fs::read_to_string(dir.path().join("journal")).expect("journal"),
        "1 first plugin\n2 second plugin\n"
    );
    assert!(!dir.path().join("journal.lock").exists());
}
