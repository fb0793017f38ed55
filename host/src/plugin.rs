//! The lock for plugins: an application that runs third-party components
//! gives them the `labm8:lockfile/lockfile` import, backed by the lockfile
//! component, in its own `Linker`, the way `wasmtime_wasi::p2::add_to_linker_sync`
//! gives them WASI.
//!
//! ```no_run
//! use lockfile_host::plugin::{self, PluginLocks};
//! use lockfile_host::Runtime;
//! use wasmtime::component::{Linker, ResourceTable};
//! use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
//!
//! struct PluginState {
//!     wasi: WasiCtx,
//!     table: ResourceTable,
//!     locks: PluginLocks,
//! }
//!
//! impl WasiView for PluginState {
//!     fn ctx(&mut self) -> WasiCtxView<'_> {
//!         WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = wasmtime::Engine::default();
//! let mut linker = Linker::<PluginState>::new(&engine);
//! wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
//! plugin::add_to_linker(&mut linker, |s| &mut s.locks)?;
//!
//! // One `PluginLocks` per plugin instance: where it may lock, under the
//! // paths it sees.
//! let runtime = Runtime::new()?;
//! let locks = PluginLocks::builder(&runtime).dir("/srv/app/plugins/a", "/data").build()?;
//! // ... Store::new(&engine, PluginState { wasi, table, locks }), instantiate, run ...
//! # Ok(())
//! # }
//! ```
//!
//! What the plugin gets:
//! - **Its own directories only.** The lock logic runs in a sandbox of its
//!   own (one per [`PluginLocks`]) that sees only the directories granted
//!   with [`PluginLocksBuilder::dir`], under the paths the plugin uses. A
//!   lock anywhere else fails with `unreachable`, and nothing is created.
//! - **Its own holder.** Locks record the application's pid (the process
//!   that runs the plugin), plus a holder tag of this plugin instance: two
//!   plugins of one application exclude each other, and neither can release
//!   the other's lock without `force` (see `process.holder` in the WIT).
//! - **Cleanup.** Locks the plugin acquired and did not release are released
//!   when its [`PluginLocks`] is dropped (with the store that holds it, after
//!   the plugin finished or trapped), or at once with
//!   [`PluginLocks::release_all`]. Dropping a `lock-file` handle does not
//!   release its lock (labm8's rule), so a plugin may acquire with one
//!   handle and release with another.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;

use wasmtime::component::{HasData, Linker, Resource, ResourceAny};
use wasmtime::Store;

use crate::bindings::exports::labm8::lockfile::lockfile as lib;
use crate::bindings::plugin_world::labm8::lockfile::lockfile as pw;
use crate::bindings::Library;
use crate::convert::plugin_world::{acquire_options, error, leftover, owner, status};
use crate::error::{Error, LockError};
use crate::runtime::Runtime;
use crate::store::{for_call, HostState};

pub use crate::bindings::PluginLock;

/// One open `lock-file` of a plugin: its path and the lock in our sandbox.
struct Slot {
    path: String,
    lock: Option<ResourceAny>,
}

/// The locks of one plugin instance: a sandbox running the lockfile
/// component with the directories the plugin may lock in, and what the
/// plugin holds. Keep it in the plugin's store state; see the
/// [module documentation](self).
pub struct PluginLocks {
    store: Store<HostState>,
    lib: Library,
    slots: Vec<Option<Slot>>,
    /// Paths the plugin acquired and has not released: released on drop.
    held: BTreeSet<String>,
}

impl std::fmt::Debug for PluginLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLocks")
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

/// Grants directories to a plugin's locks; see [`PluginLocks::builder`].
#[derive(Debug)]
pub struct PluginLocksBuilder<'r> {
    runtime: &'r Runtime,
    dirs: Vec<(PathBuf, String)>,
}

impl PluginLocksBuilder<'_> {
    /// Lets the plugin lock inside `host_dir`, which it names `guest_path`
    /// (as in `WasiCtxBuilder::preopened_dir`): a lock at
    /// `{guest_path}/job.lock` is the file `{host_dir}/job.lock`. Usually
    /// the same pair the plugin's WASI context preopens.
    #[must_use]
    pub fn dir(mut self, host_dir: impl Into<PathBuf>, guest_path: impl Into<String>) -> Self {
        self.dirs.push((host_dir.into(), guest_path.into()));
        self
    }

    /// Creates the plugin's sandbox, with a holder tag of its own.
    ///
    /// # Errors
    /// [`LockError::Unreachable`] when a directory cannot be opened;
    /// [`Error::Runtime`] when the component cannot be instantiated.
    pub fn build(self) -> Result<PluginLocks, Error> {
        let (store, lib) = self.runtime.plugin_sandbox(&self.dirs, holder_tag())?;
        Ok(PluginLocks {
            store,
            lib,
            slots: Vec::new(),
            held: BTreeSet::new(),
        })
    }
}

/// A fresh random tag (std's per-process hash keys, which the OS seeds, and
/// the time): unique among the plugins of a process, which is all it needs.
fn holder_tag() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

impl PluginLocks {
    /// Starts granting directories to one plugin instance's locks.
    pub fn builder(runtime: &Runtime) -> PluginLocksBuilder<'_> {
        PluginLocksBuilder {
            runtime,
            dirs: Vec::new(),
        }
    }

    /// The paths (as the plugin named them) of the locks it acquired and has
    /// not released.
    pub fn held(&self) -> impl Iterator<Item = &str> {
        self.held.iter().map(String::as_str)
    }

    /// Releases every lock the plugin acquired and has not released (for
    /// this plugin only: another holder's lock is left alone). Dropping the
    /// `PluginLocks` does the same, ignoring errors.
    ///
    /// # Errors
    /// The last failure, after trying every lock; a lock that is gone or
    /// taken over since is not a failure.
    pub fn release_all(&mut self) -> Result<(), Error> {
        let mut result = Ok(());
        let _runtime = for_call(self.store.data());
        for path in std::mem::take(&mut self.held) {
            let guest = self.lib.labm8_lockfile_lockfile().lock_file();
            let released = guest
                .call_constructor(&mut self.store, &path)
                .and_then(|lock| {
                    let r = guest.call_release(&mut self.store, lock, false);
                    lock.resource_drop(&mut self.store)?;
                    r
                })
                .map_err(|e| Error::runtime("the component trapped", e))
                .and_then(|r| r.map_err(Error::from));
            match released {
                Ok(()) | Err(Error::Lock(LockError::UnableToRelease(_))) => {}
                Err(e) => result = Err(e),
            }
        }
        result
    }

    fn slot(&self, handle: &Resource<PluginLock>) -> Option<&Slot> {
        self.slots
            .get(usize::try_from(handle.rep()).ok()?)
            .and_then(Option::as_ref)
    }

    /// Runs `call` on the handle's lock in our sandbox.
    // The error is the interface's own, handed to the plugin as it is: the
    // generated bindings' trait returns it unboxed.
    #[allow(clippy::result_large_err)]
    fn with<T>(
        &mut self,
        handle: &Resource<PluginLock>,
        call: impl FnOnce(
            &Library,
            &mut Store<HostState>,
            ResourceAny,
        ) -> wasmtime::Result<Result<T, lib::Error>>,
    ) -> Result<T, pw::Error> {
        let Some(slot) = self.slot(handle) else {
            return Err(trapped("?", "a lock-file handle this plugin does not have"));
        };
        let path = slot.path.clone();
        let Some(lock) = slot.lock else {
            return Err(trapped(&path, "the lock could not be opened"));
        };
        let _runtime = for_call(self.store.data());
        match call(&self.lib, &mut self.store, lock) {
            Ok(result) => result.map_err(error),
            Err(e) => Err(trapped(&path, &format!("{e:#}"))),
        }
    }

    /// A static function of the interface, on a throwaway handle.
    #[allow(clippy::result_large_err)] // as `with`
    fn once<T>(
        &mut self,
        path: &str,
        call: impl FnOnce(&Library, &mut Store<HostState>) -> wasmtime::Result<Result<T, lib::Error>>,
    ) -> Result<T, pw::Error> {
        let _runtime = for_call(self.store.data());
        match call(&self.lib, &mut self.store) {
            Ok(result) => result.map_err(error),
            Err(e) => Err(trapped(path, &format!("{e:#}"))),
        }
    }
}

impl Drop for PluginLocks {
    fn drop(&mut self) {
        let _ = self.release_all();
    }
}

/// Our sandbox trapped (a bug): the plugin sees an I/O error, not a trap of its own.
fn trapped(path: &str, what: &str) -> pw::Error {
    pw::Error::Io(pw::Failure {
        path: path.to_owned(),
        message: format!("the lockfile component failed: {what}"),
    })
}

impl pw::HostLockFile for PluginLocks {
    fn new(&mut self, path: String) -> Resource<PluginLock> {
        let _runtime = for_call(self.store.data());
        let guest = self.lib.labm8_lockfile_lockfile().lock_file();
        let lock = guest.call_constructor(&mut self.store, &path).ok();
        let slot = Slot { path, lock };
        let index = match self.slots.iter().position(Option::is_none) {
            Some(free) => {
                self.slots[free] = Some(slot);
                free
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        // The slot count is bounded by the plugin's own handle table, far below u32::MAX.
        Resource::new_own(u32::try_from(index).unwrap_or(u32::MAX))
    }

    fn path(&mut self, handle: Resource<PluginLock>) -> String {
        self.slot(&handle)
            .map(|s| s.path.clone())
            .unwrap_or_default()
    }

    fn acquire(
        &mut self,
        handle: Resource<PluginLock>,
        replace_stale: bool,
        force: bool,
    ) -> Result<(), pw::Error> {
        // The library's `acquire` is `acquire-with` without lease or token;
        // `force` wins, as in labm8.
        let mode = match (replace_stale, force) {
            (_, true) => pw::Mode::Force,
            (true, false) => pw::Mode::ReplaceStale,
            (false, false) => pw::Mode::Free,
        };
        let options = pw::AcquireOptions {
            mode,
            lease_ms: None,
            token: false,
        };
        self.acquire_with(handle, options)
    }

    fn acquire_with(
        &mut self,
        handle: Resource<PluginLock>,
        options: pw::AcquireOptions,
    ) -> Result<(), pw::Error> {
        let options = acquire_options(options);
        let result = self.with(&handle, |lib, store, lock| {
            lib.labm8_lockfile_lockfile()
                .lock_file()
                .call_acquire_with(store, lock, options)
        });
        if result.is_ok() {
            if let Some(slot) = self.slot(&handle) {
                let path = slot.path.clone();
                self.held.insert(path);
            }
        }
        result
    }

    fn token(&mut self, handle: Resource<PluginLock>) -> Result<Option<u64>, pw::Error> {
        self.with(&handle, |lib, store, lock| {
            lib.labm8_lockfile_lockfile()
                .lock_file()
                .call_token(store, lock)
        })
    }

    fn refresh(&mut self, handle: Resource<PluginLock>) -> Result<(), pw::Error> {
        self.with(&handle, |lib, store, lock| {
            lib.labm8_lockfile_lockfile()
                .lock_file()
                .call_refresh(store, lock)
        })
    }

    fn release(&mut self, handle: Resource<PluginLock>, force: bool) -> Result<(), pw::Error> {
        let result = self.with(&handle, |lib, store, lock| {
            lib.labm8_lockfile_lockfile()
                .lock_file()
                .call_release(store, lock, force)
        });
        if result.is_ok() {
            if let Some(slot) = self.slot(&handle) {
                let path = slot.path.clone();
                self.held.remove(&path);
            }
        }
        result
    }

    fn pid(&mut self, handle: Resource<PluginLock>) -> Result<Option<u32>, pw::Error> {
        self.with(&handle, |lib, store, lock| {
            lib.labm8_lockfile_lockfile()
                .lock_file()
                .call_pid(store, lock)
        })
    }

    fn date(&mut self, handle: Resource<PluginLock>) -> Result<Option<pw::Datetime>, pw::Error> {
        self.with(&handle, |lib, store, lock| {
            lib.labm8_lockfile_lockfile()
                .lock_file()
                .call_date(store, lock)
        })
    }

    fn is_locked(&mut self, handle: Resource<PluginLock>) -> Result<bool, pw::Error> {
        self.with(&handle, |lib, store, lock| {
            lib.labm8_lockfile_lockfile()
                .lock_file()
                .call_is_locked(store, lock)
        })
    }

    fn owned_by_self(&mut self, handle: Resource<PluginLock>) -> Result<bool, pw::Error> {
        self.with(&handle, |lib, store, lock| {
            lib.labm8_lockfile_lockfile()
                .lock_file()
                .call_owned_by_self(store, lock)
        })
    }

    fn status(&mut self, handle: Resource<PluginLock>) -> Result<pw::Status, pw::Error> {
        self.with(&handle, |lib, store, lock| {
            lib.labm8_lockfile_lockfile()
                .lock_file()
                .call_status(store, lock)
        })
        .map(status)
    }

    fn read(&mut self, path: String) -> Result<Option<pw::Owner>, pw::Error> {
        self.once(&path, |lib, store| {
            lib.labm8_lockfile_lockfile()
                .lock_file()
                .call_read(store, &path)
        })
        .map(|o| o.map(owner))
    }

    fn write(&mut self, path: String, pid: u32, timestamp: pw::Datetime) -> Result<(), pw::Error> {
        self.once(&path, |lib, store| {
            lib.labm8_lockfile_lockfile()
                .lock_file()
                .call_write(store, &path, pid, timestamp)
        })
    }

    fn drop(&mut self, handle: Resource<PluginLock>) -> wasmtime::Result<()> {
        let taken = usize::try_from(handle.rep())
            .ok()
            .and_then(|i| self.slots.get_mut(i))
            .and_then(Option::take);
        if let Some(Slot {
            lock: Some(lock), ..
        }) = taken
        {
            // Lets the component drop its spare; the lock itself stays (labm8's rule).
            let _runtime = for_call(self.store.data());
            lock.resource_drop(&mut self.store)?;
        }
        Ok(())
    }
}

impl pw::Host for PluginLocks {
    fn list_locks(&mut self, dir: String) -> Result<pw::Listing, pw::Error> {
        self.once(&dir, |lib, store| {
            lib.labm8_lockfile_lockfile().call_list_locks(store, &dir)
        })
        .map(|l| pw::Listing {
            locks: l.locks.into_iter().map(status).collect(),
            unreadable: l.unreadable.into_iter().map(error).collect(),
            leftovers: l.leftovers.into_iter().map(leftover).collect(),
        })
    }

    fn sweep_leftovers(&mut self, dir: String) -> Result<Vec<pw::Leftover>, pw::Error> {
        self.once(&dir, |lib, store| {
            lib.labm8_lockfile_lockfile()
                .call_sweep_leftovers(store, &dir)
        })
        .map(|v| v.into_iter().map(leftover).collect())
    }
}

struct HasPluginLocks;

impl HasData for HasPluginLocks {
    type Data<'a> = &'a mut PluginLocks;
}

/// Adds the `labm8:lockfile/lockfile` interface to `linker`, answered by
/// the [`PluginLocks`] that `get` finds in the plugin's store state.
///
/// # Errors
/// When the linker already defines the interface.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut PluginLocks,
) -> wasmtime::Result<()> {
    pw::add_to_linker::<T, HasPluginLocks>(linker, get)
}
