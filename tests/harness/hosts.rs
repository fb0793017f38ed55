//! Third-party hosts of the library component: their own wasmtime engine,
//! linker, `process` and `files` (one without a native form), and a host
//! that names pid 0.

use crate::common::*;

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
