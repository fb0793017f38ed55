//! `list` and `clean`: every lock in a directory, and what gone processes
//! left beside them.

use std::io::Write;
use std::path::{Path, PathBuf};

use lockfile_core::decide::{human_duration, millis_since};
use lockfile_core::protocol::{Leftover, LeftoverKind};
use lockfile_core::{display_time, Cause, Status, Verdict};

use crate::{now, Backend, Failure, Lock};

/// The locks in a directory and the private files beside them, as a
/// backend's survey finds them.
#[derive(Debug, Default)]
pub struct Listing {
    /// The directory, as the statuses' paths name it.
    pub dir: String,
    /// Each lock's status, by name.
    pub locks: Vec<Status>,
    /// Files that look like locks but could not be read: what and why.
    pub unreadable: Vec<String>,
    /// Temporary files, claims and token files, by name.
    pub leftovers: Vec<Leftover>,
}

/// One lock and its private files: a line of `list`.
struct Entry {
    status: Status,
    leftovers: Vec<Leftover>,
}

/// What `list` found: entries, and problems to report after them.
struct Found {
    entries: Vec<Entry>,
    problems: Vec<String>,
    /// A path given could not be listed at all.
    failed: bool,
}

fn unlocked(path: String) -> Status {
    Status {
        reason: format!("there is no lock file at `{path}`"),
        path,
        owner: None,
        verdict: Verdict::Unlocked,
        cause: Cause::NoLockFile,
    }
}

/// Groups a directory's listing by lock: each lock file, and each lock
/// whose file is gone but whose private files remain.
fn entries(listing: Listing) -> Vec<Entry> {
    let dir = Path::new(&listing.dir);
    let mut entries: Vec<Entry> = listing
        .locks
        .into_iter()
        .map(|status| Entry {
            status,
            leftovers: Vec::new(),
        })
        .collect();
    for leftover in listing.leftovers {
        let path = dir.join(&leftover.lock).to_string_lossy().into_owned();
        match entries.iter_mut().find(|e| e.status.path == path) {
            Some(entry) => entry.leftovers.push(leftover),
            None => entries.push(Entry {
                status: unlocked(path),
                leftovers: vec![leftover],
            }),
        }
    }
    entries.sort_by(|a, b| a.status.path.cmp(&b.status.path));
    entries
}

fn survey<B: Backend>(backend: &B, paths: &[PathBuf], pid: Option<u32>) -> Found {
    let mut found = Found {
        entries: Vec::new(),
        problems: Vec::new(),
        failed: false,
    };
    let default = [PathBuf::from(".")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    for path in paths {
        // A directory is surveyed whole, and so is a prefix of keys in a
        // store (`etcd://HOST:PORT/PREFIX`); anything else is one lock,
        // shown with the private files its directory holds for it.
        let in_store = path
            .to_str()
            .is_some_and(|p| p.starts_with("etcd://") || p.starts_with("etcds://"));
        let is_dir = in_store || std::fs::metadata(path).is_ok_and(|m| m.is_dir());
        let result = if is_dir {
            backend
                .list(path, pid)
                .map(|listing| entries(listing.into_problems(&mut found.problems)))
        } else {
            one_lock(backend, path, pid, &mut found.problems)
        };
        match result {
            Ok(mut e) => found.entries.append(&mut e),
            Err(f) => {
                found.problems.push(f.message());
                found.failed = true;
            }
        }
    }
    found
}

impl Listing {
    /// Moves the unreadable files' reports to `problems`.
    fn into_problems(mut self, problems: &mut Vec<String>) -> Self {
        problems.append(&mut self.unreadable);
        self
    }
}

fn one_lock<B: Backend>(
    backend: &B,
    path: &Path,
    pid: Option<u32>,
    problems: &mut Vec<String>,
) -> Result<Vec<Entry>, Failure> {
    let status = backend.inspect(path, pid)?.status()?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let leftovers = match backend.list(&dir, pid) {
        Ok(listing) => listing
            .leftovers
            .into_iter()
            .filter(|l| l.lock == name)
            .collect(),
        Err(f) => {
            problems.push(f.message());
            Vec::new()
        }
    };
    Ok(vec![Entry { status, leftovers }])
}

/// `lockfile list`: prints every lock in `paths` (directories, or lock
/// files), one line each, then the private files beside them.
///
/// # Errors
/// [`Failure::Other`] when a path could not be listed (after listing the
/// others) or the output cannot be written.
pub fn list<B: Backend>(
    backend: &B,
    paths: &[PathBuf],
    pid: Option<u32>,
    json: bool,
) -> Result<(), Failure> {
    let found = survey(backend, paths, pid);
    let printed = if json {
        print_json(&found.entries)
    } else {
        print_table(&found.entries)
    };
    match printed {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.map_err(|e| Failure::Other(format!("cannot print: {e}")))?,
    }
    for problem in &found.problems {
        eprintln!("lockfile: {problem}");
    }
    if found.failed {
        return Err(Failure::Silent(crate::OTHER));
    }
    Ok(())
}

fn print_json(entries: &[Entry]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for e in entries {
        let mut value = crate::status_json(&e.status);
        value["leftovers"] = e
            .leftovers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "name": l.name,
                    "kind": l.kind.as_str(),
                    "pid": l.pid,
                    "gone": l.gone,
                })
            })
            .collect();
        writeln!(out, "{value}")?;
    }
    Ok(())
}

/// How long is left of a lease, `expired`, or `-`.
fn lease_left(s: &Status) -> String {
    let Some(expires) = s.owner.as_ref().and_then(|o| o.expires) else {
        return "-".into();
    };
    let left = millis_since(expires, now());
    if left <= 0 || s.cause == Cause::LeaseExpired {
        "expired".into()
    } else {
        human_duration(left / 1000)
    }
}

fn print_table(entries: &[Entry]) -> std::io::Result<()> {
    let mut rows = vec![[
        "PATH", "PID", "HOST", "SINCE", "VERDICT", "CAUSE", "LEASE", "TOKEN",
    ]
    .map(String::from)];
    for e in entries {
        let s = &e.status;
        let o = s.owner.as_ref();
        let dash = || "-".to_owned();
        rows.push([
            s.path.clone(),
            o.map_or_else(dash, |o| o.pid.to_string()),
            o.and_then(|o| o.hostname.clone()).unwrap_or_else(dash),
            o.map_or_else(dash, |o| display_time(o.date)),
            s.verdict.as_str().to_owned(),
            s.cause.as_str().to_owned(),
            lease_left(s),
            o.and_then(|o| o.token).map_or_else(dash, |t| t.to_string()),
        ]);
    }
    let mut out = std::io::stdout().lock();
    if entries.is_empty() {
        return writeln!(out, "no locks");
    }
    write_columns(&mut out, &rows)?;
    let mut files = vec![["PRIVATE FILE", "LOCK", "KIND", "PID", "PROCESS"].map(String::from)];
    for e in entries {
        for l in &e.leftovers {
            files.push([
                l.name.clone(),
                l.lock.clone(),
                l.kind.as_str().to_owned(),
                l.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                match (l.kind, l.gone) {
                    (LeftoverKind::Token, _) => "-",
                    (_, true) => "gone",
                    (_, false) => "running",
                }
                .to_owned(),
            ]);
        }
    }
    if files.len() > 1 {
        writeln!(out)?;
        write_columns(&mut out, &files)?;
    }
    Ok(())
}

fn write_columns<const N: usize>(
    out: &mut impl Write,
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// `lockfile clean`: takes over and removes each stale lock in `dirs`
/// through the protocol, then sweeps private files of processes that are
/// gone; prints what it removed (or, with `dry_run`, would remove).
///
/// # Errors
/// [`Failure::Other`] when a directory could not be listed (after cleaning
/// the others).
pub fn clean<B: Backend>(backend: &B, dirs: &[PathBuf], dry_run: bool) -> Result<(), Failure> {
    let mut failed = false;
    let verb = if dry_run { "would remove" } else { "removed" };
    for dir in dirs {
        let listing = match backend.list(dir, None) {
            Ok(l) => l,
            Err(f) => {
                eprintln!("lockfile: {}", f.message());
                failed = true;
                continue;
            }
        };
        for problem in &listing.unreadable {
            eprintln!("lockfile: {problem}");
        }
        for s in listing.locks.iter().filter(|s| s.verdict == Verdict::Stale) {
            let who = format!(" (stale: {})", s.reason);
            if dry_run {
                println!("{verb} {}{who}", s.path);
                continue;
            }
            match take_and_release(backend, Path::new(&s.path)) {
                Ok(()) => println!("{verb} {}{who}", s.path),
                // Taken (or judged otherwise) since we looked: never ours to remove.
                Err(f @ (Failure::Refused(_) | Failure::Busy(_))) => {
                    println!("kept {}: {}", s.path, f.message());
                }
                Err(f) => {
                    eprintln!("lockfile: {}", f.message());
                    failed = true;
                }
            }
        }
        let gone: Vec<Leftover> = listing.leftovers.into_iter().filter(|l| l.gone).collect();
        // A takeover sweeps its lock's files itself; what was gone before
        // and is no longer there was removed, by the takeover or the sweep.
        let swept = if dry_run {
            Ok(gone)
        } else {
            backend
                .sweep(dir)
                .and_then(|_| backend.list(dir, None))
                .map(|after| {
                    gone.into_iter()
                        .filter(|l| !after.leftovers.iter().any(|a| a.name == l.name))
                        .collect()
                })
        };
        match swept {
            Ok(removed) => {
                for l in removed {
                    let whose = l.pid.map(|p| format!(" of pid {p}")).unwrap_or_default();
                    println!(
                        "{verb} {} ({}{whose}, which is gone; beside {})",
                        Path::new(&listing.dir).join(&l.name).display(),
                        l.kind.as_str(),
                        l.lock
                    );
                }
            }
            Err(f) => {
                eprintln!("lockfile: {}", f.message());
                failed = true;
            }
        }
    }
    if failed {
        return Err(Failure::Silent(crate::OTHER));
    }
    Ok(())
}

/// Takes a stale lock over for this process, then releases it: the
/// protocol's own takeover, so a lock taken by anyone meanwhile is refused,
/// never removed.
fn take_and_release<B: Backend>(backend: &B, path: &Path) -> Result<(), Failure> {
    let mut lock = backend.open(path, Some(backend.own_pid()?))?;
    lock.acquire(&lockfile_core::AcquireOptions::default().replace_stale())?;
    lock.release(false)
}
