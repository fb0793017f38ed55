//! The `labm8:lockfile/files` interface, natively: a whole-file read or
//! rewrite in one call from the component, where WASI takes three or four
//! (open, stat, read or write, close), each a crossing of the sandbox that
//! costs more than its system call. The lock component reads the lock and
//! rewrites its temporary file on every cycle.
//!
//! The sandbox is the same as WASI's: the directory is a `wasi:filesystem`
//! descriptor the component holds, its permissions are the descriptor's
//! (a read-only preopen refuses `rewrite`), and `name` must be one entry of
//! it (never `..`, never a path, never through a symlink). Any host that
//! links the library component (`lockfile.wasm`) into its own `Linker` adds
//! this beside WASI and [`crate::process_ctx`]:
//!
//! ```
//! use lockfile_host::{files, process_ctx::{self, ProcessCtx}};
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
//! files::add_to_linker(&mut linker)?;
//! # Ok(())
//! # }
//! ```
//!
//! Where it differs from WASI's calls: a file is opened without waiting
//! (`O_NONBLOCK`), so a FIFO put where a file was expected is never waited
//! on (a read of one with no writer is empty; a rewrite fails), and a file
//! under another process's lease is `would-block` at once. Off
//! Unix both calls are `unsupported`, and the component falls back to
//! WASI's calls. Reads are limited to `lockfile_core::FILES_READ_LIMIT`
//! bytes (`invalid` beyond), which bounds what a component makes its host
//! allocate. The calls run on the calling thread, like the component's other
//! file calls under [`crate::Runtime`].

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::filesystem::Descriptor;
#[cfg(unix)]
use wasmtime_wasi::p2::bindings::filesystem::types as wasi_types;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::ErrorCode;
use wasmtime_wasi::WasiView;

use crate::bindings::labm8::lockfile::files as wit;

/// The store's resource table, where the component's descriptors are.
struct HasFiles;

impl HasData for HasFiles {
    type Data<'a> = &'a mut ResourceTable;
}

/// Adds `labm8:lockfile/files` to `linker`, over the descriptors of the
/// store's WASI resource table.
///
/// # Errors
/// When the linker already defines the interface.
pub fn add_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasFiles>(linker, |state| state.ctx().table)
}

/// The directory `dir` names, with whether it may be written to.
fn directory<'t>(
    table: &'t ResourceTable,
    dir: &Resource<Descriptor>,
) -> Result<(&'t std::fs::File, bool), ErrorCode> {
    match table.get(dir) {
        Ok(Descriptor::Dir(d)) => Ok((&d.dir, !d.perms.write_not_permitted())),
        Ok(Descriptor::File(_)) => Err(ErrorCode::NotDirectory),
        Err(_) => Err(ErrorCode::BadDescriptor),
    }
}

/// WASI's code for an OS error, as wasmtime-wasi maps it for its own calls
/// (`ESTALE` is `io`, `ELOOP` is `loop`, ...): errors read the same whichever
/// way the component reached the file.
#[cfg(unix)]
fn code(error: std::io::Error) -> ErrorCode {
    wasi_types::ErrorCode::from(error).into()
}

/// `files` names one entry of the directory it is given, never a path: the
/// rule of its WASI form too (`lockfile_core::paths::is_entry_name`).
fn one_component(name: &str) -> Result<(), ErrorCode> {
    lockfile_core::paths::is_entry_name(name)
        .then_some(())
        .ok_or(ErrorCode::Invalid)
}

impl wit::Host for ResourceTable {
    fn read(
        &mut self,
        dir: Resource<Descriptor>,
        name: String,
        limit: u64,
    ) -> Result<Vec<u8>, ErrorCode> {
        one_component(&name)?;
        if limit > lockfile_core::FILES_READ_LIMIT {
            return Err(ErrorCode::Invalid);
        }
        let (dir, _) = directory(self, &dir)?;
        native::read(dir, &name, limit)
    }

    fn rewrite(
        &mut self,
        dir: Resource<Descriptor>,
        name: String,
        data: Vec<u8>,
    ) -> Result<bool, ErrorCode> {
        one_component(&name)?;
        let (dir, writable) = directory(self, &dir)?;
        if !writable {
            return Err(ErrorCode::NotPermitted);
        }
        native::rewrite(dir, &name, &data)
    }

    fn link_and_probe(
        &mut self,
        dir: Resource<Descriptor>,
        existing: String,
        new: String,
        probe: String,
    ) -> Result<Option<bool>, ErrorCode> {
        for name in [&existing, &new, &probe] {
            one_component(name)?;
        }
        let (dir, writable) = directory(self, &dir)?;
        if !writable {
            return Err(ErrorCode::NotPermitted);
        }
        native::link_and_probe(dir, &existing, &new, &probe)
    }
}

#[cfg(unix)]
mod native {
    use std::fs::File;

    use lockfile_core::std_dir::{read_all, rewrite_open};
    use rustix::fs::{Mode, OFlags};

    use super::{code, ErrorCode};

    /// Opens the entry `name` of `dir` (one component, checked by the
    /// caller): never through a symlink (`ELOOP`), and never waiting, so
    /// that a FIFO is never waited on. An open that would wait for another
    /// reason (a lease another process holds on the file: Samba, `F_SETLEASE`)
    /// is `would-block` at once, where WASI's open waits for the lease to
    /// break (45 s by default); waiting here would let the lease's holder
    /// swap a FIFO in while we wait.
    fn open(dir: &File, name: &str, access: OFlags) -> Result<File, ErrorCode> {
        let flags = access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => Ok(File::from(fd)),
            // wasmtime-wasi has no code for EAGAIN (it would be `io`, which
            // the protocol takes for "changed under us" and looks again).
            Err(rustix::io::Errno::AGAIN) => Err(ErrorCode::WouldBlock),
            Err(e) => Err(code(e.into())),
        }
    }

    /// Reads up to `limit` bytes (at most `FILES_READ_LIMIT`, checked by the
    /// caller), as `lockfile_core`'s native directory does.
    pub(super) fn read(dir: &File, name: &str, limit: u64) -> Result<Vec<u8>, ErrorCode> {
        let limit = usize::try_from(limit).map_err(|_| ErrorCode::Invalid)?;
        read_all(&mut open(dir, name, OFlags::RDONLY)?, limit).map_err(code)
    }

    /// Rewrites the file, as `lockfile_core`'s native directory does.
    pub(super) fn rewrite(dir: &File, name: &str, data: &[u8]) -> Result<bool, ErrorCode> {
        rewrite_open(&open(dir, name, OFlags::WRONLY)?, data).map_err(code)
    }

    /// Links `existing` as `new` (never following a symlink at `existing`,
    /// as WASI's `link-at` without its follow flag), then looks at `probe`.
    pub(super) fn link_and_probe(
        dir: &File,
        existing: &str,
        new: &str,
        probe: &str,
    ) -> Result<Option<bool>, ErrorCode> {
        use rustix::fs::{linkat, statat, AtFlags};
        linkat(dir, existing, dir, new, AtFlags::empty()).map_err(|e| code(e.into()))?;
        Ok(match statat(dir, probe, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Some(true),
            Err(rustix::io::Errno::NOENT) => Some(false),
            Err(_) => None,
        })
    }
}

/// No native form off Unix yet: `unsupported`, on which the component
/// makes the same operation of WASI's own calls (and its sandbox).
#[cfg(not(unix))]
mod native {
    use std::fs::File;

    use super::ErrorCode;

    pub(super) fn read(_: &File, _: &str, _: u64) -> Result<Vec<u8>, ErrorCode> {
        Err(ErrorCode::Unsupported)
    }

    pub(super) fn rewrite(_: &File, _: &str, _: &[u8]) -> Result<bool, ErrorCode> {
        Err(ErrorCode::Unsupported)
    }

    pub(super) fn link_and_probe(
        _: &File,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<Option<bool>, ErrorCode> {
        Err(ErrorCode::Unsupported)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;
    use std::sync::mpsc;
    use std::time::Duration;

    use wasmtime::component::{Resource, ResourceTable};
    use wasmtime_wasi::filesystem::{Descriptor, Dir};
    use wasmtime_wasi::{FsPerms, OpenMode};

    use super::wit::Host;
    use super::ErrorCode;

    /// A table holding `path` as a directory descriptor, as WASI's preopen
    /// would, and a borrow of it.
    fn table_with(path: &Path, perms: FsPerms) -> (ResourceTable, u32) {
        let mut table = ResourceTable::new();
        let file = fs::File::open(path).expect("open the directory");
        let dir = Dir::new(file, perms, OpenMode::READ | OpenMode::WRITE, true);
        let owned = table.push(Descriptor::Dir(dir)).expect("push");
        let rep = owned.rep();
        (table, rep)
    }

    fn borrow(rep: u32) -> Resource<Descriptor> {
        Resource::new_borrow(rep)
    }

    #[test]
    fn a_rewrite_replaces_the_whole_file_longer_or_shorter() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join("spare"), b"0123456789").expect("write");
        let (mut table, dir) = table_with(tmp.path(), FsPerms::ReadWrite);
        assert_eq!(
            table.rewrite(borrow(dir), "spare".into(), b"abc".to_vec()),
            Ok(true)
        );
        assert_eq!(fs::read(tmp.path().join("spare")).expect("read"), b"abc");
        assert_eq!(
            table.read(borrow(dir), "spare".into(), 100),
            Ok(b"abc".to_vec())
        );
        let long = b"a longer record than before".to_vec();
        assert_eq!(
            table.rewrite(borrow(dir), "spare".into(), long.clone()),
            Ok(true)
        );
        assert_eq!(table.read(borrow(dir), "spare".into(), 100), Ok(long));
        assert_eq!(
            table.read(borrow(dir), "spare".into(), 4),
            Ok(b"a lo".to_vec())
        );
    }

    #[test]
    fn a_rewrite_never_creates_and_leaves_a_file_with_another_link_alone() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut table, dir) = table_with(tmp.path(), FsPerms::ReadWrite);
        assert_eq!(
            table.rewrite(borrow(dir), "absent".into(), b"x".to_vec()),
            Err(ErrorCode::NoEntry)
        );
        assert!(!tmp.path().join("absent").exists());
        assert_eq!(
            table.read(borrow(dir), "absent".into(), 10),
            Err(ErrorCode::NoEntry)
        );

        fs::write(tmp.path().join("spare"), b"the lock").expect("write");
        fs::hard_link(tmp.path().join("spare"), tmp.path().join("lock")).expect("link");
        assert_eq!(
            table.rewrite(borrow(dir), "spare".into(), b"other".to_vec()),
            Ok(false)
        );
        assert_eq!(
            fs::read(tmp.path().join("lock")).expect("read"),
            b"the lock"
        );
    }

    #[test]
    fn neither_call_follows_a_symlink_or_leaves_the_directory() {
        let outside = tempfile::tempdir().expect("tempdir");
        let target = outside.path().join("target");
        fs::write(&target, b"outside").expect("write");
        let tmp = tempfile::tempdir().expect("tempdir");
        symlink(&target, tmp.path().join("link")).expect("symlink");
        fs::write(outside.path().join("beside"), b"outside").expect("write");
        let (mut table, dir) = table_with(tmp.path(), FsPerms::ReadWrite);

        assert_eq!(
            table.read(borrow(dir), "link".into(), 100),
            Err(ErrorCode::Loop)
        );
        assert_eq!(
            table.rewrite(borrow(dir), "link".into(), b"in".to_vec()),
            Err(ErrorCode::Loop)
        );
        let escape = format!("../{}/beside", outside.path().display());
        for name in ["", ".", "..", "a/b", "../beside", escape.as_str(), "x\0y"] {
            assert_eq!(
                table.read(borrow(dir), name.into(), 100),
                Err(ErrorCode::Invalid),
                "read `{name:?}`"
            );
            assert_eq!(
                table.rewrite(borrow(dir), name.into(), b"in".to_vec()),
                Err(ErrorCode::Invalid),
                "rewrite `{name:?}`"
            );
        }
        assert_eq!(fs::read(&target).expect("read"), b"outside");
        assert_eq!(
            fs::read(outside.path().join("beside")).expect("read"),
            b"outside"
        );
    }

    /// A component cannot make its host allocate more than the limit, what
    /// ever the file's size.
    #[test]
    fn a_read_is_bounded_by_the_limit() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let big = fs::File::create(tmp.path().join("big")).expect("create");
        big.set_len(1 << 30).expect("a sparse 1 GiB file");
        let (mut table, dir) = table_with(tmp.path(), FsPerms::ReadWrite);
        let limit = lockfile_core::FILES_READ_LIMIT;
        let read = table.read(borrow(dir), "big".into(), limit).expect("read");
        assert_eq!(read.len() as u64, limit);
        for over in [limit + 1, u64::MAX] {
            assert_eq!(
                table.read(borrow(dir), "big".into(), over),
                Err(ErrorCode::Invalid)
            );
        }
    }

    #[test]
    fn a_read_only_directory_is_read_but_never_rewritten() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join("lock"), b"123 456").expect("write");
        let (mut table, dir) = table_with(tmp.path(), FsPerms::ReadOnly);
        assert_eq!(
            table.read(borrow(dir), "lock".into(), 100),
            Ok(b"123 456".to_vec())
        );
        assert_eq!(
            table.rewrite(borrow(dir), "lock".into(), b"mine".to_vec()),
            Err(ErrorCode::NotPermitted)
        );
        assert_eq!(fs::read(tmp.path().join("lock")).expect("read"), b"123 456");
    }

    #[test]
    fn a_descriptor_that_is_not_a_directory_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join("file"), b"x").expect("write");
        let mut table = ResourceTable::new();
        let file = fs::File::open(tmp.path().join("file")).expect("open");
        let file =
            wasmtime_wasi::filesystem::File::new(file, FsPerms::ReadWrite, OpenMode::READ, true);
        let rep = table.push(Descriptor::File(file)).expect("push").rep();
        assert_eq!(
            table.read(borrow(rep), "x".into(), 1),
            Err(ErrorCode::NotDirectory)
        );
        assert_eq!(
            table.read(borrow(rep + 1), "x".into(), 1),
            Err(ErrorCode::BadDescriptor)
        );
    }

    /// A file under another process's lease (Samba's oplocks, `F_SETLEASE`)
    /// is `would-block` at once, not a wait for the lease to break, during
    /// which the lease's holder could swap a FIFO in.
    #[test]
    fn a_file_under_another_process_lease_is_would_block_at_once() {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("leased");
        fs::write(&path, b"123 456").expect("write");
        // The lease's holder ignores SIGIO (the break notice) and holds on.
        let script = "import fcntl, os, signal, sys, time\n\
            signal.signal(signal.SIGIO, signal.SIG_IGN)\n\
            fd = os.open(sys.argv[1], os.O_RDONLY)\n\
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)\n\
            print('leased', flush=True)\n\
            time.sleep(60)\n";
        let mut holder = Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3: this test needs it to take a lease");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the holder's word");
        assert_eq!(line.trim(), "leased", "the holder could not take a lease");
        let (mut table, dir) = table_with(tmp.path(), FsPerms::ReadWrite);
        let started = std::time::Instant::now();
        let rewrite = table.rewrite(borrow(dir), "leased".into(), b"mine".to_vec());
        let _ = holder.kill();
        let _ = holder.wait();
        assert_eq!(rewrite, Err(ErrorCode::WouldBlock));
        assert!(started.elapsed() < Duration::from_secs(10), "it waited");
        assert_eq!(fs::read(&path).expect("read"), b"123 456");
    }

    /// Under WASI, opening a FIFO blocks until someone opens its other end;
    /// a FIFO put where the lock or the spare was must never hang a call.
    #[test]
    fn a_fifo_at_the_name_is_never_waited_on() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let status = std::process::Command::new("mkfifo")
            .arg(tmp.path().join("fifo"))
            .status()
            .expect("run mkfifo (coreutils): this test needs it");
        assert!(status.success(), "mkfifo failed");
        let path = tmp.path().to_path_buf();
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut table, dir) = table_with(&path, FsPerms::ReadWrite);
            let read = table.read(borrow(dir), "fifo".into(), 100);
            let rewrite = table.rewrite(borrow(dir), "fifo".into(), b"x".to_vec());
            let _ = done.send((read, rewrite));
        });
        let (read, rewrite) = finished
            .recv_timeout(Duration::from_secs(10))
            .expect("the calls returned instead of waiting for the FIFO's other end");
        assert_eq!(read, Ok(Vec::new()), "nothing to read: no writer");
        assert!(rewrite != Ok(true), "a FIFO is not rewritten: {rewrite:?}");
    }
}
