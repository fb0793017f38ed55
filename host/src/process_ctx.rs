//! The `labm8:lockfile/process` interface as a context any wasmtime host can
//! link into its own `Linker<T>`, in the style of `wasmtime-wasi-config`:
//!
//! ```
//! use lockfile_host::process_ctx::{self, ProcessCtx};
//! use wasmtime::component::{Linker, ResourceTable};
//! use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
//!
//! struct MyState {
//!     wasi: WasiCtx,
//!     table: ResourceTable,
//!     lockfile: ProcessCtx,
//! }
//!
//! impl WasiView for MyState {
//!     fn ctx(&mut self) -> WasiCtxView<'_> {
//!         WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
//!     }
//! }
//!
//! # fn main() -> wasmtime::Result<()> {
//! let engine = wasmtime::Engine::default();
//! let mut linker = Linker::<MyState>::new(&engine);
//! wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
//! process_ctx::add_to_linker(&mut linker, |s| &mut s.lockfile)?;
//! // The component's other import, its whole-file reads and rewrites:
//! lockfile_host::files::add_to_linker(&mut linker)?;
//! // ... instantiate `lockfile.wasm` with `MyState { lockfile: ProcessCtx::current(), .. }`
//! # Ok(())
//! # }
//! ```
//!
//! [`ProcessCtx`] answers from this machine: `kill(pid, 0)` and `/proc` on
//! Linux ([`crate::process`]). The component needs nothing else from its host
//! but WASI and [`crate::files`]; the test pause hook is not part of any interface
//! (see `lockfile_core::testing`).

use lockfile_core::{Identity, Machine, Timestamp};
use wasmtime::component::{HasData, Linker};

use crate::bindings::labm8::lockfile::process as wit;
use crate::process;
use crate::Error;

/// Who a lock is taken for and facts about this machine: what the
/// `process` import answers for one component instance.
#[derive(Debug, Clone)]
pub struct ProcessCtx {
    acting: Identity,
    runner: Identity,
    companion: Option<Identity>,
    machine: Machine,
    holder: Option<u64>,
}

/// This process, with its start time.
pub(crate) fn this_process() -> Identity {
    Identity {
        pid: std::process::id(),
        start_ticks: process::query(std::process::id()).start_ticks,
    }
}

/// `pid` with its start time, if it runs.
fn running(pid: u32) -> Result<Identity, Error> {
    let info = process::query(pid);
    if info.liveness == process::Liveness::Dead {
        return Err(Error::NoSuchProcess(pid));
    }
    Ok(Identity {
        pid,
        start_ticks: info.start_ticks,
    })
}

impl ProcessCtx {
    /// Locks are taken for the current process.
    pub fn current() -> Self {
        let me = this_process();
        Self::new(me, me, None, process::machine())
    }

    /// Locks are taken for process `pid` (as `lockfile --pid` does); this
    /// process runs the protocol.
    ///
    /// # Errors
    /// [`Error::NoSuchProcess`] when `pid` is not running.
    pub fn acting_for(pid: u32) -> Result<Self, Error> {
        Ok(Self::new(
            running(pid)?,
            this_process(),
            None,
            process::machine(),
        ))
    }

    /// Locks also name `pid`, a process this one started: they stay held
    /// while either runs (see `lockfile run`).
    ///
    /// # Errors
    /// [`Error::NoSuchProcess`] when `pid` is not running.
    pub fn with_companion(self, pid: u32) -> Result<Self, Error> {
        Ok(Self {
            companion: Some(running(pid)?),
            ..self
        })
    }

    /// Locks are taken by holder `tag` within the process: a lock of the
    /// same process with another tag (or none) is `held`, not
    /// `owned-by-self`. Applications give each plugin its own tag (see
    /// [`crate::plugin`]); without one, the process as a whole owns its
    /// locks, as in labm8.
    #[must_use]
    pub fn with_holder(self, tag: u64) -> Self {
        Self {
            holder: Some(tag),
            ..self
        }
    }

    pub(crate) fn new(
        acting: Identity,
        runner: Identity,
        companion: Option<Identity>,
        machine: Machine,
    ) -> Self {
        ProcessCtx {
            acting,
            runner,
            companion,
            machine,
            holder: None,
        }
    }
}

fn to_wit_identity(id: Identity) -> wit::Identity {
    wit::Identity {
        pid: id.pid,
        start_ticks: id.start_ticks,
    }
}

pub(crate) fn to_datetime(t: Timestamp) -> wit::Datetime {
    wit::Datetime {
        seconds: t.seconds,
        nanoseconds: t.nanos,
    }
}

impl wit::Host for ProcessCtx {
    fn current(&mut self) -> wit::Identity {
        to_wit_identity(self.acting)
    }

    fn runner(&mut self) -> wit::Identity {
        to_wit_identity(self.runner)
    }

    fn companion(&mut self) -> Option<wit::Identity> {
        self.companion.map(to_wit_identity)
    }

    fn machine(&mut self) -> wit::MachineFacts {
        wit::MachineFacts {
            hostname: self.machine.hostname.clone(),
            boot_id: self.machine.boot_id.clone(),
            pid_namespace: self.machine.pid_namespace,
        }
    }

    fn pid_namespace_alive(&mut self, inode: u64) -> Option<bool> {
        process::pid_namespace_alive(inode)
    }

    fn holder(&mut self) -> Option<u64> {
        self.holder
    }

    fn query(&mut self, pid: u32) -> wit::ProcessInfo {
        let info = process::query(pid);
        wit::ProcessInfo {
            liveness: match info.liveness {
                process::Liveness::Alive => wit::Liveness::Alive,
                process::Liveness::Dead => wit::Liveness::Dead,
                process::Liveness::Unknown => wit::Liveness::Unknown,
            },
            start_ticks: info.start_ticks,
            start_time: info.start_time.map(to_datetime),
        }
    }
}

struct HasProcess;

impl HasData for HasProcess {
    type Data<'a> = &'a mut ProcessCtx;
}

/// Adds the `labm8:lockfile/process` interface to `linker`, answered by the
/// [`ProcessCtx`] that `get` finds in the store's state.
///
/// # Errors
/// When the linker already defines the interface.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ProcessCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasProcess>(linker, get)
}
