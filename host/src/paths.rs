//! Lock paths as the host hands them to a sandbox: the directory made
//! absolute with its links resolved, and names WASI can carry.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// The path as WASI names it: UTF-8, or an error saying so.
pub(crate) fn utf8(path: &Path) -> Result<&str, Error> {
    path.to_str().ok_or_else(|| {
        Error::unreachable(path, "the path is not valid UTF-8, which WASI cannot name")
    })
}

/// The lock's directory, made absolute with links resolved (it is preopened
/// as itself, so messages show real paths), and the lock's full path in it.
pub(crate) fn locate(path: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let unreachable = |message: String| Error::unreachable(path, message);
    let name = match path.file_name() {
        Some(name) if !path.as_os_str().to_string_lossy().ends_with('/') => name,
        _ => return Err(unreachable("the path does not name a file".into())),
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&parent).map_err(|e| {
        unreachable(match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("its directory `{}` does not exist", parent.display())
            }
            _ => format!(
                "cannot resolve its directory `{}`: {}",
                parent.display(),
                lockfile_core::plain::words(&e)
            ),
        })
    })?;
    if !dir.is_dir() {
        return Err(unreachable(format!(
            "`{}` is not a directory",
            dir.display()
        )));
    }
    let full = dir.join(name);
    Ok((dir, full))
}
