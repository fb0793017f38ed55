//! [`Dir`] over WASI descriptors: every call is relative to the lock's
//! directory and never follows a symlink at the lock's name.

use std::cell::OnceCell;
use std::io;

use crate::paths::locate;
use crate::protocol::{Dir, Error, Kind};
use wasi::filesystem::preopens::get_directories;
use wasi::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, ErrorCode, NewTimestamp, OpenFlags, PathFlags,
};

thread_local! {
    /// The preopened directories, fetched once per instance.
    static PREOPENS: OnceCell<Vec<(Descriptor, String)>> = const { OnceCell::new() };
}

/// The directory that holds a lock, reading and rewriting whole files
/// through `F`.
#[derive(Debug)]
pub struct WasiDir<F = Plain> {
    fd: Descriptor,
    files: F,
}

/// A [`WasiDir`]'s whole-file reads and rewrites: the `labm8:lockfile/files`
/// interface, with its semantics. [`Plain`] makes them of WASI's own calls;
/// the library component asks its host, which makes each one call.
pub trait Files {
    /// Up to `limit` bytes from the start of the file `name` in `dir`,
    /// never through a symlink at `name`.
    ///
    /// # Errors
    /// WASI's error code; `invalid` when `name` is not one path component
    /// or `limit` is over [`crate::FILES_READ_LIMIT`].
    fn read(&self, dir: &Descriptor, name: &str, limit: u64) -> Result<Vec<u8>, ErrorCode>;

    /// Overwrites the existing regular file `name` in `dir` with exactly
    /// `data` when `name` is its only link (`true`); otherwise writes
    /// nothing (`false`). Never through a symlink at `name`.
    ///
    /// # Errors
    /// WASI's error code; `invalid` when `name` is not one path component.
    fn rewrite(&self, dir: &Descriptor, name: &str, data: &[u8]) -> Result<bool, ErrorCode>;

    /// Links `existing` as `new` in `dir`, then whether `probe` exists in
    /// it (`None` when that look failed): see `files.link-and-probe`.
    ///
    /// # Errors
    /// WASI's error code for the link.
    fn link_probe(
        &self,
        dir: &Descriptor,
        existing: &str,
        new: &str,
        probe: &str,
    ) -> Result<Option<bool>, ErrorCode> {
        dir.link_at(PathFlags::empty(), existing, dir, new)?;
        Ok(match dir.stat_at(PathFlags::empty(), probe) {
            Ok(_) => Some(true),
            Err(ErrorCode::NoEntry) => Some(false),
            Err(_) => None,
        })
    }
}

/// [`Files`] made of WASI's own calls: open, stat, read or write, close.
#[derive(Debug, Default, Clone, Copy)]
pub struct Plain;

impl Files for Plain {
    fn read(&self, dir: &Descriptor, name: &str, limit: u64) -> Result<Vec<u8>, ErrorCode> {
        read_file(dir, name, limit)
    }

    fn rewrite(&self, dir: &Descriptor, name: &str, data: &[u8]) -> Result<bool, ErrorCode> {
        rewrite_file(dir, name, data)
    }
}

/// `files.read` over WASI: see [`Files::read`].
///
/// # Errors
/// WASI's error code; `invalid` when `name` is not one path component or
/// `limit` is over [`crate::FILES_READ_LIMIT`].
fn read_file(dir: &Descriptor, name: &str, limit: u64) -> Result<Vec<u8>, ErrorCode> {
    one_component(name)?;
    if limit > crate::FILES_READ_LIMIT {
        return Err(ErrorCode::Invalid);
    }
    let file = dir.open_at(
        PathFlags::empty(),
        name,
        OpenFlags::empty(),
        DescriptorFlags::READ,
    )?;
    read_all(&file, limit)
}

/// `files.rewrite` over WASI: see [`Files::rewrite`].
///
/// # Errors
/// WASI's error code; `invalid` when `name` is not one path component.
fn rewrite_file(dir: &Descriptor, name: &str, data: &[u8]) -> Result<bool, ErrorCode> {
    one_component(name)?;
    let file = dir.open_at(
        PathFlags::empty(),
        name,
        OpenFlags::empty(),
        DescriptorFlags::WRITE,
    )?;
    let stat = file.stat()?;
    if stat.type_ != DescriptorType::RegularFile || stat.link_count != 1 {
        return Ok(false);
    }
    write_all(&file, data)?;
    let len = data.len() as u64;
    if stat.size != len {
        file.set_size(len)?;
    }
    Ok(true)
}

/// `files` names one entry of the directory it is given, never a path.
fn one_component(name: &str) -> Result<(), ErrorCode> {
    crate::paths::is_entry_name(name)
        .then_some(())
        .ok_or(ErrorCode::Invalid)
}

/// Opens the directory of the lock at `path` and returns it with the lock's name.
///
/// # Errors
/// `Unreachable` when the path is outside the preopens, holds `..`, or its
/// directory does not exist.
pub fn resolve(path: &str) -> Result<(WasiDir, String), Error> {
    resolve_with(path, Plain)
}

/// As [`resolve`], with whole-file reads and rewrites through `files`.
///
/// # Errors
/// As [`resolve`].
pub fn resolve_with<F: Files>(path: &str, files: F) -> Result<(WasiDir<F>, String), Error> {
    let unreachable = |message: String| Error::Unreachable {
        path: path.to_owned(),
        message,
    };
    PREOPENS.with(|cell| {
        let preopens = cell.get_or_init(get_directories);
        let names: Vec<&str> = preopens.iter().map(|(_, name)| name.as_str()).collect();
        let located = locate(path, &names).map_err(unreachable)?;
        let (root, root_name) = &preopens[located.preopen];
        let open = |flags| {
            root.open_at(
                PathFlags::SYMLINK_FOLLOW,
                &located.dir,
                OpenFlags::DIRECTORY,
                flags,
            )
        };
        // `mutate-directory` says we will create and remove entries; some
        // hosts refuse the flag (jco's preview2-shim: "unsupported"), while
        // wasmtime ignores it. The directory works the same without it, so
        // where it is refused, open without.
        let fd = open(DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY)
            .or_else(|code| match code {
                ErrorCode::NoEntry | ErrorCode::NotDirectory => Err(code),
                _ => open(DescriptorFlags::READ).map_err(|_| code),
            })
            .map_err(|code| {
                let dir = match path.rsplit_once('/') {
                    Some(("", _)) => "/".to_owned(),
                    Some((dir, _)) => dir.to_owned(),
                    None => root_name.clone(),
                };
                match code {
                    ErrorCode::NoEntry | ErrorCode::NotDirectory => {
                        unreachable(format!("its directory `{dir}` does not exist"))
                    }
                    code => unreachable(format!(
                        "cannot open its directory `{dir}`: {}",
                        to_io(code)
                    )),
                }
            })?;
        Ok((WasiDir { fd, files }, located.name))
    })
}

/// Opens the directory `dir` itself (for a survey of its locks).
///
/// # Errors
/// As [`resolve_with`], naming `dir`.
pub fn resolve_dir_with<F: Files>(dir: &str, files: F) -> Result<WasiDir<F>, Error> {
    // A name inside it resolves to it: the one way in that `locate` knows.
    let inside = if dir.is_empty() { "." } else { dir };
    match resolve_with(&format!("{inside}/probe"), files) {
        Ok((d, _)) => Ok(d),
        Err(Error::Unreachable { message, .. }) => Err(Error::Unreachable {
            path: dir.to_owned(),
            message: message.replace("its directory", "the directory"),
        }),
        Err(e) => Err(e),
    }
}

fn to_io(code: ErrorCode) -> io::Error {
    use io::ErrorKind as K;
    let kind = match code {
        ErrorCode::Exist => K::AlreadyExists,
        ErrorCode::NoEntry => K::NotFound,
        ErrorCode::Access | ErrorCode::NotPermitted => K::PermissionDenied,
        ErrorCode::InsufficientSpace => K::StorageFull,
        ErrorCode::Quota => K::QuotaExceeded,
        ErrorCode::NameTooLong => K::InvalidFilename,
        ErrorCode::CrossDevice => K::CrossesDevices,
        ErrorCode::ReadOnly => K::ReadOnlyFilesystem,
        ErrorCode::IsDirectory => K::IsADirectory,
        ErrorCode::NotDirectory => K::NotADirectory,
        ErrorCode::Interrupted => K::Interrupted,
        ErrorCode::WouldBlock => K::WouldBlock,
        _ => K::Other,
    };
    let text = match code {
        ErrorCode::Access => crate::plain::EACCES.to_owned(),
        ErrorCode::NotPermitted => crate::plain::EPERM.to_owned(),
        ErrorCode::InsufficientSpace => crate::plain::ENOSPC.to_owned(),
        ErrorCode::Quota => crate::plain::EDQUOT.to_owned(),
        ErrorCode::ReadOnly => crate::plain::EROFS.to_owned(),
        ErrorCode::Loop => crate::plain::ELOOP.to_owned(),
        ErrorCode::NameTooLong => crate::plain::ENAMETOOLONG.to_owned(),
        ErrorCode::CrossDevice => crate::plain::EXDEV.to_owned(),
        ErrorCode::Io => crate::plain::EIO_UNDER_WASI.to_owned(),
        code => crate::plain::from_wasi_words(code.message()),
    };
    if code == ErrorCode::Io {
        // ESTALE, EIO, EFAULT, ... all arrive as `io`: mark it so that the
        // protocol can tell "the file changed under us" (see changed_under_us).
        return io::Error::new(kind, crate::protocol::HostIoError(text));
    }
    io::Error::new(kind, text)
}

/// Reads the whole (small) file: a short read of a regular file is its end,
/// so no extra call to see EOF.
fn read_all(file: &Descriptor, limit: u64) -> Result<Vec<u8>, ErrorCode> {
    let mut bytes = Vec::new();
    while (bytes.len() as u64) < limit {
        let want = limit - bytes.len() as u64;
        let (chunk, eof) = file.read(want, bytes.len() as u64)?;
        let short = (chunk.len() as u64) < want;
        bytes.extend_from_slice(&chunk);
        if eof || short {
            break;
        }
    }
    Ok(bytes)
}

impl<F> WasiDir<F> {
    /// Opens `name` in the directory, never through a symlink.
    fn open(&self, name: &str, open: OpenFlags, flags: DescriptorFlags) -> io::Result<Descriptor> {
        self.fd
            .open_at(PathFlags::empty(), name, open, flags)
            .map_err(to_io)
    }
}

/// Writes all of `data` to `file` from offset 0. A write that writes
/// nothing is an I/O error: a regular file takes at least one byte or fails.
fn write_all(file: &Descriptor, data: &[u8]) -> Result<(), ErrorCode> {
    let mut done = 0;
    while done < data.len() {
        match file.write(&data[done..], done as u64)? {
            0 => return Err(ErrorCode::Io),
            n => done += n as usize,
        }
    }
    Ok(())
}

impl<F: Files> Dir for WasiDir<F> {
    fn kind(&self, name: &str) -> io::Result<Option<Kind>> {
        match self.fd.stat_at(PathFlags::empty(), name) {
            Ok(stat) => Ok(Some(match stat.type_ {
                DescriptorType::RegularFile => Kind::File(stat.size),
                DescriptorType::Directory => Kind::Directory,
                DescriptorType::SymbolicLink => Kind::Symlink,
                DescriptorType::Fifo => Kind::Other("a FIFO"),
                DescriptorType::Socket => Kind::Other("a socket"),
                DescriptorType::BlockDevice | DescriptorType::CharacterDevice => {
                    Kind::Other("a device")
                }
                // wasmtime reports FIFOs and sockets as `unknown`.
                DescriptorType::Unknown => Kind::Other("a special file (FIFO, socket or device)"),
            })),
            Err(ErrorCode::NoEntry) => Ok(None),
            Err(code) => Err(to_io(code)),
        }
    }

    fn read(&self, name: &str, limit: usize) -> io::Result<Vec<u8>> {
        self.files.read(&self.fd, name, limit as u64).map_err(to_io)
    }

    fn read_modified(
        &self,
        name: &str,
        limit: usize,
    ) -> io::Result<(Vec<u8>, Option<crate::format::Timestamp>)> {
        let file = self.open(name, OpenFlags::empty(), DescriptorFlags::READ)?;
        let bytes = read_all(&file, limit as u64).map_err(to_io)?;
        let modified = file
            .stat()
            .map_err(to_io)?
            .data_modification_timestamp
            .map(|t| crate::format::Timestamp::new(t.seconds, t.nanoseconds));
        Ok((bytes, modified))
    }

    fn touch(&self, name: &str) -> io::Result<()> {
        // "Now" as the file system's clock says: on NFS the server sets it.
        // Both times, as `touch` does: a FUSE client (fuse-nfs) silently
        // ignores a change of the modification time alone.
        self.fd
            .set_times_at(
                PathFlags::empty(),
                name,
                NewTimestamp::Now,
                NewTimestamp::Now,
            )
            .map_err(to_io)
    }

    fn create(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let file = self.open(
            name,
            OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
            DescriptorFlags::WRITE,
        )?;
        write_all(&file, data).map_err(to_io).inspect_err(|_| {
            let _ = self.fd.unlink_file_at(name);
        })
    }

    fn rewrite(&self, name: &str, data: &[u8]) -> io::Result<bool> {
        self.files.rewrite(&self.fd, name, data).map_err(to_io)
    }

    fn link(&self, existing: &str, new: &str) -> io::Result<()> {
        self.fd
            .link_at(PathFlags::empty(), existing, &self.fd, new)
            .map_err(to_io)
    }

    fn link_probe(&self, existing: &str, new: &str, probe: &str) -> io::Result<Option<bool>> {
        self.files
            .link_probe(&self.fd, existing, new, probe)
            .map_err(to_io)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.fd.rename_at(from, &self.fd, to).map_err(to_io)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.fd.unlink_file_at(name).map_err(to_io)
    }

    fn names(&self) -> io::Result<Vec<String>> {
        let stream = self.fd.read_directory().map_err(to_io)?;
        let mut names = Vec::new();
        let mut skipped = 0;
        loop {
            match stream.read_directory_entry() {
                Ok(Some(entry)) => names.push(entry.name),
                Ok(None) => return Ok(names),
                // wasmtime looks at each entry as it lists it: one removed
                // meanwhile (another process's temporary file) fails with
                // `no-entry`, and a name that is not UTF-8 (anyone's file in
                // /tmp) with `illegal-byte-sequence`. Neither is a name of
                // ours; the listing goes on past them.
                Err(ErrorCode::NoEntry | ErrorCode::IllegalByteSequence)
                    if skipped < SKIPPED_ENTRIES_MAX =>
                {
                    skipped += 1;
                }
                Err(e) => return Err(to_io(e)),
            }
        }
    }
}

/// How many entries a listing skips before it gives up: a bound, in case a
/// runtime's stream fails on the same entry for ever.
const SKIPPED_ENTRIES_MAX: usize = 10_000_000;
