//! What each sandbox's store holds, the tokio runtime its calls run in,
//! and the WASI interfaces it is linked with.

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::kv::KvCtx;
use crate::process_ctx::ProcessCtx;

/// The per-store state: WASI, and what the `process` import answers.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) process: ProcessCtx,
    /// What the `kv` import answers: a store for a lock kept in one.
    pub(crate) kv: KvCtx,
    /// Whether the sandbox may sleep (it has test pauses): see [`for_call`].
    pub(crate) sleeps: bool,
}

/// The tokio runtime calls into a sandbox run in, unless the caller is in
/// one already: wasmtime's WASI runs every call inside a tokio runtime, and
/// outside any it enters its own multi-threaded one (two threads, started
/// on the first call) and yields to it once per call. A current-thread
/// runtime, merely entered, costs neither, and serves every call that never
/// waits on a timer or a socket. The lock component's never do: its file
/// calls run inline (`allow_blocking_current_thread`) and it never sleeps,
/// except at the test pause hook, whose sleep such a runtime could not wake.
/// Never dropped: a static is not, and a process may call from any thread.
static CALL_RUNTIME: std::sync::LazyLock<Option<tokio::runtime::Runtime>> =
    std::sync::LazyLock::new(|| tokio::runtime::Builder::new_current_thread().build().ok());

/// Enters [`CALL_RUNTIME`] for one call into a sandbox, unless the caller
/// is in a tokio runtime already or the sandbox may sleep.
pub(crate) fn for_call(state: &HostState) -> Option<tokio::runtime::EnterGuard<'static>> {
    if state.sleeps || tokio::runtime::Handle::try_current().is_ok() {
        return None;
    }
    CALL_RUNTIME.as_ref().map(tokio::runtime::Runtime::enter)
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// `wasi:io` over the store's resource table, as wasmtime-wasi links it.
struct HasIo;

impl wasmtime::component::HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Links the WASI interfaces the lock component imports, and only those:
/// `wasmtime_wasi::p2::add_to_linker_sync` also links sockets and insecure
/// randomness, some sixty functions whose set-up (a name and a closure
/// each) every `lockfile` process would pay for nothing. A component that
/// imported more would fail to link when the runtime is created, never later.
pub(crate) fn link_wasi(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::p2::bindings::sync;
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView};

    type S = HostState;
    clocks::wall_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)?;
    clocks::monotonic_clock::add_to_linker::<S, WasiClocks>(l, S::clocks)?;
    filesystem::preopens::add_to_linker::<S, WasiFilesystem>(l, S::filesystem)?;
    sync::filesystem::types::add_to_linker::<S, WasiFilesystem>(l, S::filesystem)?;
    random::random::add_to_linker::<S, WasiRandom>(l, S::random)?;
    cli::exit::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::environment::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stdin::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stdout::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::stderr::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_input::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_output::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stdin::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stdout::add_to_linker::<S, WasiCli>(l, S::cli)?;
    cli::terminal_stderr::add_to_linker::<S, WasiCli>(l, S::cli)?;
    sync::io::error::add_to_linker::<S, HasIo>(l, |s| &mut s.table)?;
    sync::io::poll::add_to_linker::<S, HasIo>(l, |s| &mut s.table)?;
    sync::io::streams::add_to_linker::<S, HasIo>(l, |s| &mut s.table)?;
    Ok(())
}
