//! The wasmtime embedding: one engine and pre-instantiated component per
//! [`Runtime`], one cheap store per lock.

use std::path::{Path, PathBuf};

use lockfile_core::testing::{self, PAUSE_VAR};
use lockfile_core::{Identity, Machine, Owner, Status, Timestamp};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::bindings::coordinated::{CoordinatedLibrary, CoordinatedLibraryPre};
use crate::bindings::exports::labm8::lockfile::lockfile as wit;
use crate::bindings::{Library, LibraryPre};
use crate::code_memory::{InPlaceCode, IN_PLACE_TAKEN, PRECOMPILED, PRECOMPILED_COORDINATED};
use crate::engine_config::Allocation;
use crate::error::{Error, LockError};
use crate::kv::KvCtx;
use crate::lock::LockFile;
use crate::paths::{locate, utf8};
use crate::process;
use crate::process_ctx::{self, to_datetime, ProcessCtx};
use crate::store::{for_call, link_wasi, HostState};

/// The loaded component, ready to open locks. Build it once and share it:
/// creating it costs milliseconds, opening a lock from it microseconds.
pub struct Runtime {
    engine: Engine,
    pre: LibraryPre<HostState>,
    /// Links the coordinated component when a lock in a store is first
    /// opened.
    linker: Linker<HostState>,
    /// The coordinated component, loaded then.
    kv_pre: std::sync::OnceLock<CoordinatedLibraryPre<HostState>>,
    machine: Machine,
    runner: Identity,
    /// The test pause hook's value, passed to each sandbox (see
    /// [`Runtime::with_test_pauses`]).
    test_pauses: Option<String>,
    /// Whether the component's code runs where it lies in the binary.
    in_place: bool,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// Loads the component, with sandboxes allocated from a pool of
    /// [`DEFAULT_POOL`](crate::DEFAULT_POOL): the fastest opens, for
    /// applications that open many locks.
    ///
    /// # Errors
    /// [`Error::Runtime`] if wasmtime cannot load or link the component.
    pub fn new() -> Result<Self, Error> {
        // The pool reserves address space up front (several TiB of it,
        // untouched); where a limit on address space forbids that, fall back
        // to allocating each sandbox on demand rather than failing.
        Self::with_allocation(Allocation::Pooled(crate::DEFAULT_POOL))
            .or_else(|_| Self::with_allocation(Allocation::OnDemand))
    }

    /// Loads the component, allocating sandboxes as `allocation` says.
    /// [`Allocation::OnDemand`] starts fastest: for one-shot processes.
    ///
    /// # Errors
    /// [`Error::Runtime`] if wasmtime cannot load or link the component.
    pub fn with_allocation(allocation: Allocation) -> Result<Self, Error> {
        let engine = Engine::new(&crate::engine_config::config(allocation))
            .map_err(|e| Error::runtime("cannot create the wasmtime engine", e))?;
        // SAFETY: `PRECOMPILED` was produced by `Engine::precompile_component`
        // in build.rs, by this same pinned wasmtime with the same code
        // generation settings, and is embedded read-only in this binary;
        // wasmtime checks its version and settings and refuses a mismatch.
        let component = unsafe { Component::deserialize(&engine, &PRECOMPILED.0) }
            .map_err(|e| Error::runtime("cannot load the precompiled lockfile component", e))?;
        Self::from_component(engine, &component)
    }

    fn from_component(engine: Engine, component: &Component) -> Result<Self, Error> {
        let mut linker = Linker::<HostState>::new(&engine);
        link_wasi(&mut linker).map_err(|e| Error::runtime("cannot link WASI", e))?;
        process_ctx::add_to_linker(&mut linker, |s| &mut s.process)
            .map_err(|e| Error::runtime("cannot link the process interface", e))?;
        crate::files::add_to_linker(&mut linker)
            .map_err(|e| Error::runtime("cannot link the files interface", e))?;
        let pre = linker
            .instantiate_pre(component)
            .and_then(LibraryPre::new)
            .map_err(|e| Error::runtime("cannot prepare the lockfile component", e))?;
        Ok(Self {
            engine,
            pre,
            linker,
            kv_pre: std::sync::OnceLock::new(),
            machine: process::machine(),
            runner: process_ctx::this_process(),
            test_pauses: None,
            in_place: false,
        })
    }

    /// Loads the component for a one-shot command like `lockfile`: the
    /// fastest start, for a process that opens a lock or two and exits.
    ///
    /// Sandboxes are allocated on demand ([`Allocation::OnDemand`]). On Linux
    /// the first such runtime of a process runs the component's code where it
    /// lies in this binary's read-only data (made executable in place),
    /// instead of in a copy; wasmtime registers code by its address, once,
    /// so any later runtime of the process (this one still alive or not)
    /// loads a copy, as [`Runtime::with_allocation`] does, and so does the
    /// first where the pages cannot be made executable. Behaviour is the
    /// same either way.
    ///
    /// # Errors
    /// [`Error::Runtime`] if wasmtime cannot load or link the component.
    pub fn for_command() -> Result<Self, Error> {
        #[cfg(target_os = "linux")]
        if let Some(runtime) = Self::in_place() {
            return Ok(runtime);
        }
        Self::with_allocation(Allocation::OnDemand)
    }

    /// The component's code run where it lies in the binary, for the first
    /// caller in the process; `None` for later callers, or wherever making
    /// those pages executable is refused (then a copy serves).
    #[cfg(target_os = "linux")]
    fn in_place() -> Option<Self> {
        use std::sync::atomic::Ordering;
        let bytes: &[u8] = &PRECOMPILED.0;
        let aligned = (bytes.as_ptr() as usize).is_multiple_of(rustix::param::page_size());
        if !aligned || IN_PLACE_TAKEN.swap(true, Ordering::SeqCst) {
            return None;
        }
        let mut config = crate::engine_config::config(Allocation::OnDemand);
        config.with_custom_code_memory(Some(std::sync::Arc::new(InPlaceCode)));
        let engine = Engine::new(&config).ok()?;
        // SAFETY: as in `with_allocation`; besides, `PRECOMPILED` is a
        // static, so it outlives the component and nothing writes to it.
        let component =
            unsafe { Component::deserialize_raw(&engine, std::ptr::NonNull::from(bytes)) }.ok()?;
        let runtime = Self::from_component(engine, &component).ok()?;
        Some(Self {
            in_place: true,
            ..runtime
        })
    }

    /// A runtime sharing this one's engine and loaded component that acts
    /// for the calling process. A runtime records the process that created
    /// it, and locks opened from it are taken for that process: a child
    /// made by `fork` must use one of these (cheap: nothing is loaded
    /// again), and must [`LockFile::abandon`] the handles it inherited.
    #[must_use]
    pub fn for_current_process(&self) -> Self {
        Self {
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            linker: self.linker.clone(),
            kv_pre: self.kv_pre.clone(),
            machine: self.machine.clone(),
            runner: process_ctx::this_process(),
            test_pauses: self.test_pauses.clone(),
            in_place: self.in_place,
        }
    }

    /// Whether this runtime runs the component's code where it lies in the
    /// binary ([`Runtime::for_command`]): for tests, since a copy behaves
    /// the same and only costs start-up time.
    #[doc(hidden)]
    pub fn runs_in_place(&self) -> bool {
        self.in_place
    }

    /// For test harnesses: every sandbox of this runtime gets
    /// `LOCKFILE_TEST_PAUSE=spec` in its WASI environment, and the
    /// directories of the files it names preopened, so the component pauses
    /// at the checkpoints it names (see `lockfile_core::testing`). The
    /// `lockfile` binary passes its own environment's value; nothing else
    /// reads the environment.
    #[doc(hidden)]
    #[must_use]
    pub fn with_test_pauses(mut self, spec: &str) -> Self {
        self.test_pauses = Some(spec.to_owned());
        self
    }

    /// Opens the lock at `path` for the current process.
    ///
    /// # Errors
    /// [`LockError::Unreachable`] when the lock's directory does not exist.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<LockFile, Error> {
        self.open_with(path.as_ref(), self.runner, None)
    }

    /// Opens the lock at `path` for the current process and `companion`, a
    /// process it started: locks it takes record both, and stay held while
    /// either runs (`lockfile run` names its command, which may outlive it).
    ///
    /// # Errors
    /// [`Error::NoSuchProcess`] when `companion` is not running; as [`Runtime::open`].
    pub fn open_with_companion(
        &self,
        path: impl AsRef<Path>,
        companion: u32,
    ) -> Result<LockFile, Error> {
        let info = process::query(companion);
        if info.liveness == process::Liveness::Dead {
            return Err(Error::NoSuchProcess(companion));
        }
        let companion = Identity {
            pid: companion,
            start_ticks: info.start_ticks,
        };
        self.open_with(path.as_ref(), self.runner, Some(companion))
    }

    /// Opens the lock at `path` on behalf of process `pid` (as `lockfile
    /// --pid` does): locks it takes record `pid`, and `owned_by_self` means
    /// owned by `pid`.
    ///
    /// # Errors
    /// [`Error::NoSuchProcess`] when `pid` is not running; as [`Runtime::open`].
    pub fn open_as(&self, path: impl AsRef<Path>, pid: u32) -> Result<LockFile, Error> {
        let info = process::query(pid);
        if info.liveness == process::Liveness::Dead {
            return Err(Error::NoSuchProcess(pid));
        }
        let acting = Identity {
            pid,
            start_ticks: info.start_ticks,
        };
        self.open_with(path.as_ref(), acting, None)
    }

    /// Opens the lock at `path` only to look at it from process `pid`'s
    /// point of view, as `lockfile status --pid` does: unlike
    /// [`Runtime::open_as`], a `pid` that is not running is accepted (a
    /// report must not fail because of whose view it takes).
    ///
    /// # Errors
    /// As [`Runtime::open`].
    pub fn inspect_as(&self, path: impl AsRef<Path>, pid: u32) -> Result<LockFile, Error> {
        let acting = Identity {
            pid,
            start_ticks: process::query(pid).start_ticks,
        };
        self.open_with(path.as_ref(), acting, None)
    }

    /// Opens the lock at `path` for the current process as holder `tag`
    /// within it: a lock is `owned-by-self` only for the handles opened with
    /// the same tag, so handles with different tags exclude each other as
    /// processes do (a Node addon gives each `LockFile` its own).
    ///
    /// # Errors
    /// As [`Runtime::open`].
    pub fn open_for_holder(&self, path: impl AsRef<Path>, tag: u64) -> Result<LockFile, Error> {
        self.open_in(path.as_ref(), self.runner, None, Some(tag))
    }

    fn open_with(
        &self,
        path: &Path,
        acting: Identity,
        companion: Option<Identity>,
    ) -> Result<LockFile, Error> {
        self.open_in(path, acting, companion, None)
    }

    fn open_in(
        &self,
        path: &Path,
        acting: Identity,
        companion: Option<Identity>,
        holder: Option<u64>,
    ) -> Result<LockFile, Error> {
        let (dir, full) = locate(path)?;
        let mut store = self.store(&dir, acting, companion)?;
        if let Some(tag) = holder {
            let process = store.data().process.clone().with_holder(tag);
            store.data_mut().process = process;
        }
        let _runtime = for_call(store.data());
        let lib = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| Error::runtime("cannot instantiate the lockfile component", e))?;
        let guest_path = utf8(&full)?.to_owned();
        let resource = lib
            .labm8_lockfile_lockfile()
            .lock_file()
            .call_constructor(&mut store, &guest_path)
            .map_err(|e| Error::runtime("the component trapped", e))?;
        Ok(LockFile {
            store,
            lib,
            resource,
            path: full,
            clean_up: true,
        })
    }

    /// labm8's `LockFile.read`: the owner recorded at `path`; `None` when unlocked.
    ///
    /// # Errors
    /// [`LockError::Malformed`], [`LockError::NotAFile`], [`LockError::Unreachable`], [`LockError::Io`].
    pub fn read(&self, path: impl AsRef<Path>) -> Result<Option<crate::Owner>, Error> {
        self.with_static(path.as_ref(), |lib, store, p| {
            lib.labm8_lockfile_lockfile()
                .lock_file()
                .call_read(store, p)
        })
        .map(|o| o.map(Owner::from))
    }

    /// labm8's `LockFile.write`: plants `PID TIMESTAMP` at `path`, atomically
    /// replacing a regular file there.
    ///
    /// # Errors
    /// [`LockError::NotAFile`], [`LockError::Unreachable`], [`LockError::Io`] (also for a pid
    /// beyond the largest; pid 0 is written, as labm8 allows it).
    pub fn write(
        &self,
        path: impl AsRef<Path>,
        pid: u32,
        timestamp: Timestamp,
    ) -> Result<(), Error> {
        self.with_static(path.as_ref(), |lib, store, p| {
            lib.labm8_lockfile_lockfile().lock_file().call_write(
                store,
                p,
                pid,
                to_datetime(timestamp),
            )
        })
    }

    /// Every lock in the directory `dir`, as `pid` (default: this process)
    /// sees it, and the private files beside them; see [`Listing`]. A `pid`
    /// that is not running is a point of view all the same.
    ///
    /// # Errors
    /// [`LockError::Unreachable`] when `dir` is not a directory; [`LockError::Io`]
    /// when it cannot be listed.
    pub fn list_locks(&self, dir: impl AsRef<Path>, pid: Option<u32>) -> Result<Listing, Error> {
        let acting = match pid {
            Some(pid) => Identity {
                pid,
                start_ticks: process::query(pid).start_ticks,
            },
            None => self.runner,
        };
        self.with_dir(dir.as_ref(), acting, |lib, store, d| {
            lib.labm8_lockfile_lockfile().call_list_locks(store, d)
        })
        .map(|l| Listing {
            locks: l.locks.into_iter().map(Status::from).collect(),
            unreadable: l.unreadable.into_iter().map(LockError::from).collect(),
            leftovers: l.leftovers.into_iter().map(crate::Leftover::from).collect(),
        })
    }

    /// Removes the private files in `dir` whose processes are gone (those
    /// [`Runtime::list_locks`] reports `gone`), and returns them. Locks
    /// are never removed here: take a stale one over with `acquire`.
    ///
    /// # Errors
    /// As [`Runtime::list_locks`].
    pub fn sweep_leftovers(&self, dir: impl AsRef<Path>) -> Result<Vec<crate::Leftover>, Error> {
        self.with_dir(dir.as_ref(), self.runner, |lib, store, d| {
            lib.labm8_lockfile_lockfile().call_sweep_leftovers(store, d)
        })
        .map(|v| v.into_iter().map(crate::Leftover::from).collect())
    }

    fn with_dir<T>(
        &self,
        dir: &Path,
        acting: Identity,
        call: impl FnOnce(
            &Library,
            &mut Store<HostState>,
            &str,
        ) -> wasmtime::Result<Result<T, wit::Error>>,
    ) -> Result<T, Error> {
        let real = std::fs::canonicalize(dir).map_err(|e| {
            Error::unreachable(
                dir,
                match e.kind() {
                    std::io::ErrorKind::NotFound => "the directory does not exist".into(),
                    _ => format!(
                        "cannot resolve the directory: {}",
                        lockfile_core::plain::words(&e)
                    ),
                },
            )
        })?;
        if !real.is_dir() {
            return Err(Error::unreachable(dir, "not a directory"));
        }
        self.call_once(&real, acting, &real, call)
    }

    fn with_static<T>(
        &self,
        path: &Path,
        call: impl FnOnce(
            &Library,
            &mut Store<HostState>,
            &str,
        ) -> wasmtime::Result<Result<T, wit::Error>>,
    ) -> Result<T, Error> {
        let (dir, full) = locate(path)?;
        self.call_once(&dir, self.runner, &full, call)
    }

    /// One call of the interface in a throwaway sandbox that preopens
    /// `dir` and acts for `acting`, with `arg` (a path in `dir`) as the
    /// path it names.
    fn call_once<T>(
        &self,
        dir: &Path,
        acting: Identity,
        arg: &Path,
        call: impl FnOnce(
            &Library,
            &mut Store<HostState>,
            &str,
        ) -> wasmtime::Result<Result<T, wit::Error>>,
    ) -> Result<T, Error> {
        let mut store = self.store(dir, acting, None)?;
        let _runtime = for_call(store.data());
        let lib = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| Error::runtime("cannot instantiate the lockfile component", e))?;
        call(&lib, &mut store, utf8(arg)?)
            .map_err(|e| Error::runtime("the component trapped", e))?
            .map_err(Error::from)
    }

    /// A sandbox for one plugin's locks: the directories it may lock in,
    /// under the names it uses, and this process as the owner with the
    /// plugin's holder tag.
    pub(crate) fn plugin_sandbox(
        &self,
        dirs: &[(PathBuf, String)],
        holder: u64,
    ) -> Result<(Store<HostState>, Library), Error> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(true);
        for (host, guest) in dirs {
            wasi.preopened_dir(host, guest, FsPerms::ReadWrite)
                .map_err(|e| {
                    Error::unreachable(
                        host,
                        format!("cannot open the directory granted as `{guest}`: {e}"),
                    )
                })?;
        }
        let process = ProcessCtx::new(self.runner, self.runner, None, self.machine.clone())
            .with_holder(holder);
        let mut store = self.sandbox_store(wasi.build(), process, KvCtx::default(), false);
        let lib = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| Error::runtime("cannot instantiate the lockfile component", e))?;
        Ok((store, lib))
    }

    /// Who created this runtime: the process locks are taken for by default.
    pub(crate) fn runner(&self) -> Identity {
        self.runner
    }

    /// A sandbox for a lock kept in a store: no directory, the store `kv`,
    /// acting for `acting` (and `companion`).
    pub(crate) fn kv_sandbox(
        &self,
        acting: Identity,
        companion: Option<Identity>,
        kv: KvCtx,
    ) -> Result<(Store<HostState>, CoordinatedLibrary), Error> {
        let pre = match self.kv_pre.get() {
            Some(pre) => pre,
            None => {
                // SAFETY: as in `with_allocation`: `PRECOMPILED_COORDINATED`
                // was made by build.rs with this wasmtime and these settings,
                // and wasmtime refuses a mismatch.
                let component =
                    unsafe { Component::deserialize(&self.engine, PRECOMPILED_COORDINATED) }
                        .map_err(|e| Error::runtime("cannot load the coordinated component", e))?;
                // `kv` is linked here, not at start: a process that locks
                // only files never sets it up.
                let mut linker = self.linker.clone();
                crate::kv::add_to_linker(&mut linker)
                    .map_err(|e| Error::runtime("cannot link the kv interface", e))?;
                let pre = linker
                    .instantiate_pre(&component)
                    .and_then(CoordinatedLibraryPre::new)
                    .map_err(|e| Error::runtime("cannot prepare the coordinated component", e))?;
                self.kv_pre.get_or_init(|| pre)
            }
        };
        let process = ProcessCtx::new(acting, self.runner, companion, self.machine.clone());
        let mut store = self.sandbox_store(WasiCtxBuilder::new().build(), process, kv, false);
        let _runtime = for_call(store.data());
        let lib = pre
            .instantiate(&mut store)
            .map_err(|e| Error::runtime("cannot instantiate the lockfile component", e))?;
        Ok((store, lib))
    }

    fn store(
        &self,
        dir: &Path,
        acting: Identity,
        companion: Option<Identity>,
    ) -> Result<Store<HostState>, Error> {
        let mut wasi = WasiCtxBuilder::new();
        // Must precede `preopened_dir`: each preopen captures the setting.
        wasi.allow_blocking_current_thread(true);
        wasi.preopened_dir(dir, utf8(dir)?, FsPerms::ReadWrite)
            .map_err(|e| {
                Error::unreachable(
                    dir,
                    format!(
                        "cannot open the directory: {}",
                        match e.downcast_ref::<std::io::Error>() {
                            Some(io) => lockfile_core::plain::words(io),
                            None => format!("{e:#}"),
                        }
                    ),
                )
            })?;
        if let Some(spec) = &self.test_pauses {
            wasi.env(PAUSE_VAR, spec);
            for (_, file) in testing::parse(spec) {
                if let Some(flags) = file.parent().and_then(Path::to_str) {
                    // Best effort: a test knob must not break a real lock.
                    let _ = wasi.preopened_dir(flags, flags, FsPerms::ReadWrite);
                }
            }
        }
        let process = ProcessCtx::new(acting, self.runner, companion, self.machine.clone());
        Ok(self.sandbox_store(
            wasi.build(),
            process,
            KvCtx::default(),
            self.test_pauses.is_some(),
        ))
    }

    /// A store for one sandbox: its WASI, whom it acts for, its key-value
    /// store, whether it may sleep (see `store::for_call`).
    fn sandbox_store(
        &self,
        wasi: wasmtime_wasi::WasiCtx,
        process: ProcessCtx,
        kv: KvCtx,
        sleeps: bool,
    ) -> Store<HostState> {
        Store::new(
            &self.engine,
            HostState {
                wasi,
                table: ResourceTable::new(),
                process,
                kv,
                sleeps,
            },
        )
    }
}

/// The locks in a directory and the private files beside them
/// ([`Runtime::list_locks`]).
#[derive(Debug)]
pub struct Listing {
    /// Each lock's status, by name: every regular file that reads as a lock,
    /// is named `*.lock`, or has private files beside it.
    pub locks: Vec<crate::Status>,
    /// Files that look like locks but could not be read, and why.
    pub unreadable: Vec<LockError>,
    /// Temporary files, claims and token files, by name.
    pub leftovers: Vec<crate::Leftover>,
}
