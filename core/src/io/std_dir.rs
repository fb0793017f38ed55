//! [`Dir`] over `std::fs`, for native code: the unit tests and the baseline
//! the component is benchmarked against. Same calls the component makes
//! through WASI, so the comparison is fair.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::format::Timestamp;
use crate::protocol::{Dir, Kind};

/// Reads up to `limit` bytes of a (small) file from where it stands: one
/// read, since a short read of a regular file is its end, so no second call
/// to see EOF. Also `lockfile_host`'s native `files.read`.
///
/// # Errors
/// The read's.
pub fn read_all(file: &mut fs::File, limit: usize) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; limit];
    let mut filled = 0;
    while filled < limit {
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled < limit {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// [`Dir::rewrite`] of a file opened for writing: writes `data` over it and
/// cuts it to that length if it is a regular file with one link (`true`),
/// else leaves it alone (`false`). Also `lockfile_host`'s native
/// `files.rewrite`.
///
/// # Errors
/// The `fstat`'s, the write's or the truncation's.
pub fn rewrite_open(file: &fs::File, data: &[u8]) -> io::Result<bool> {
    let meta = file.metadata()?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Ok(false);
    }
    file.write_all_at(data, 0)?;
    let len = data.len() as u64;
    if meta.len() != len {
        file.set_len(len)?;
    }
    Ok(true)
}

/// Linux/macOS/BSD value of `O_NOFOLLOW`, so a symlink swapped in after the
/// `lstat` is refused instead of followed.
#[cfg(any(target_os = "linux", target_os = "android"))]
const O_NOFOLLOW: i32 = 0o400_000;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const O_NOFOLLOW: i32 = 0x100;
#[cfg(any(target_os = "linux", target_os = "android"))]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const O_NONBLOCK: i32 = 0x4;

/// A directory on the native file system.
#[derive(Debug, Clone)]
pub struct StdDir {
    root: PathBuf,
}

impl StdDir {
    /// The directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn at(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Opens `name` for reading, never through a symlink, never blocking
    /// on a FIFO.
    fn open_read(&self, name: &str) -> io::Result<fs::File> {
        OpenOptions::new()
            .read(true)
            .custom_flags(O_NOFOLLOW | O_NONBLOCK)
            .open(self.at(name))
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.root
    }
}

impl Dir for StdDir {
    fn kind(&self, name: &str) -> io::Result<Option<Kind>> {
        match fs::symlink_metadata(self.at(name)) {
            Ok(m) => {
                let t = m.file_type();
                Ok(Some(if t.is_file() {
                    Kind::File(m.len())
                } else if t.is_dir() {
                    Kind::Directory
                } else if t.is_symlink() {
                    Kind::Symlink
                } else if t.is_fifo() {
                    Kind::Other("a FIFO")
                } else if t.is_socket() {
                    Kind::Other("a socket")
                } else {
                    Kind::Other("a device")
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read(&self, name: &str, limit: usize) -> io::Result<Vec<u8>> {
        read_all(&mut self.open_read(name)?, limit)
    }

    fn read_modified(&self, name: &str, limit: usize) -> io::Result<(Vec<u8>, Option<Timestamp>)> {
        let mut file = self.open_read(name)?;
        let bytes = read_all(&mut file, limit)?;
        let modified = file.metadata()?.modified().ok().and_then(|t| {
            let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
            Some(Timestamp::new(d.as_secs(), d.subsec_nanos()))
        });
        Ok((bytes, modified))
    }

    fn touch(&self, name: &str) -> io::Result<()> {
        // std sets an explicit time, this machine's (not UTIME_NOW, which
        // lets an NFS server use its own); the component, which locks
        // through WASI, asks for "now" and gets the server's.
        self.open_read(name)?
            .set_modified(std::time::SystemTime::now())
    }

    fn create(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let path = self.at(name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(O_NOFOLLOW)
            .open(&path)?;
        file.write_all(data).inspect_err(|_| {
            let _ = fs::remove_file(&path);
        })
    }

    fn rewrite(&self, name: &str, data: &[u8]) -> io::Result<bool> {
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(O_NOFOLLOW | O_NONBLOCK)
            .open(self.at(name))?;
        rewrite_open(&file, data)
    }

    fn link(&self, existing: &str, new: &str) -> io::Result<()> {
        fs::hard_link(self.at(existing), self.at(new))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.at(from), self.at(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.at(name))
    }

    fn names(&self) -> io::Result<Vec<String>> {
        fs::read_dir(&self.root)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }
}
