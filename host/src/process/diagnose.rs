//! What the component cannot see, told by the host, which can look: whose
//! file in a sticky directory refused a replace, and whether a bare I/O
//! error was a read-only file system. Each answers `None` when it cannot
//! tell, and the error keeps the component's words.

/// Whether the file system holding the lock at `path` is mounted
/// read-only: wasmtime reports EROFS to the component as a bare I/O error,
/// so the host, which can ask, tells the user what it was.
#[cfg(unix)]
pub(crate) fn read_only_mount(path: &std::path::Path) -> Option<bool> {
    let stat = rustix::fs::statvfs(path.parent()?).ok()?;
    Some(stat.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

#[cfg(not(unix))]
pub(crate) fn read_only_mount(_: &std::path::Path) -> Option<bool> {
    None
}

/// Why a file in a sticky directory cannot be replaced or removed, and what
/// would work; `None` when that is not the reason. The component cannot tell
/// (WASI shows neither modes nor owners), so the host looks, natively.
#[cfg(unix)]
pub(crate) fn sticky_owner(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dir = path.parent()?;
    let dir_meta = std::fs::metadata(dir).ok()?;
    let file = std::fs::symlink_metadata(path).ok()?;
    let me = rustix::process::geteuid().as_raw();
    const STICKY: u32 = 0o1000;
    if dir_meta.mode() & STICKY == 0 || me == 0 || file.uid() == me || dir_meta.uid() == me {
        return None;
    }
    let owner = match user_name(file.uid()) {
        Some(name) => format!("user `{name}` (uid {})", file.uid()),
        None => format!("uid {}", file.uid()),
    };
    Some(format!(
        "the directory `{}` is sticky and `{}` belongs to {owner}: only that user, the \
         directory's owner or root may replace or remove it (ask one of them to remove it, \
         or keep the lock in a directory that is not sticky)",
        dir.display(),
        path.display()
    ))
}

#[cfg(not(unix))]
pub(crate) fn sticky_owner(_: &std::path::Path) -> Option<String> {
    None
}

/// The name of user `uid`, from `/etc/passwd`.
#[cfg(unix)]
fn user_name(uid: u32) -> Option<String> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.parse::<u32>().ok()?;
            (id == uid).then(|| name.to_owned())
        })
}
