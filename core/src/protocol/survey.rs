//! Every lock in a directory, and the private files beside them: what
//! `lockfile list` shows and `lockfile clean` sweeps.
use std::collections::BTreeSet;

use super::sweep::Leftover;
use super::{Dir, Error, Kind, Lock, Status, System};
use crate::decide::Verdict;

/// The locks in a directory and their private files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survey {
    /// Each lock's status, by name.
    pub locks: Vec<Status>,
    /// Files that look like locks but could not be read, and why: a
    /// `*.lock` name that is not a regular file, or that a read refused.
    pub unreadable: Vec<Error>,
    /// Temporary files, claims and token files, by name.
    pub leftovers: Vec<Leftover>,
}

/// The stem a private file's name gives its lock: `.STEM.PID.NONCE.tmp`,
/// `.STEM.break.FINGERPRINT` or a token file (`.STEM.token`,
/// `.STEM.token.NUMBER`, `.STEM.token.users`).
fn private_stem(name: &str) -> Option<&str> {
    let inner = name.strip_prefix('.')?;
    if let Some(rest) = inner.strip_suffix(".tmp") {
        let (rest, nonce) = rest.rsplit_once('.')?;
        let (stem, pid) = rest.rsplit_once('.')?;
        let hex = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
        let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
        return (hex(nonce) && digits && !stem.is_empty()).then_some(stem);
    }
    if let Some(stem) = inner.strip_suffix(".token") {
        return (!stem.is_empty()).then_some(stem);
    }
    if let Some((stem, rest)) = inner.rsplit_once(".token.") {
        if super::token::is_token_file_suffix(rest) && !stem.is_empty() {
            return Some(stem);
        }
    }
    let (stem, target) = inner.rsplit_once(".break.")?;
    (target.len() == 16 && !stem.is_empty()).then_some(stem)
}

/// What is in the directory `dir` (shown to people as `dir_path`), judged
/// from the point of view of `sys`. A regular file is a lock when it reads
/// as one, or is named `*.lock`, or has private files beside it (then a
/// file that does not parse is reported `malformed`); any other file is not
/// a lock and is left out. Symlinks are never followed and FIFOs never
/// opened.
///
/// # Errors
/// `Io` when the directory cannot be listed.
pub fn survey<D: Dir, S: System>(dir: &D, dir_path: &str, sys: &S) -> Result<Survey, Error> {
    let names = dir.names().map_err(|e| Error::Io {
        path: dir_path.to_owned(),
        message: format!("cannot list the directory: {e}"),
    })?;
    let stems: BTreeSet<&str> = names.iter().filter_map(|n| private_stem(n)).collect();
    let mut survey = Survey {
        locks: Vec::new(),
        unreadable: Vec::new(),
        leftovers: Vec::new(),
    };
    // Every lock with private files, by the name its private files use.
    let mut owners: BTreeSet<String> = BTreeSet::new();
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    for name in sorted {
        if private_stem(name).is_some() {
            continue;
        }
        let path = join(dir_path, name);
        let lock = Lock::new(dir, name, &path, sys);
        let referenced = stems.contains(&*lock.temp_stem) || stems.contains(&*lock.claim_stem);
        let named = name.ends_with(".lock");
        if referenced {
            owners.insert(name.clone());
        }
        match dir.kind(name) {
            Ok(Some(Kind::File(_))) => {}
            Ok(Some(kind)) if named => {
                survey.unreadable.push(Error::NotAFile {
                    path,
                    message: super::not_a_file(kind),
                });
                continue;
            }
            Ok(_) => continue,
            Err(e) if named || referenced => {
                survey.unreadable.push(lock.io_error(&path, "read", &e));
                continue;
            }
            Err(_) => continue,
        }
        match lock.status() {
            Ok(s) if s.verdict == Verdict::Malformed && !(named || referenced) => {}
            Ok(s) => survey.locks.push(s),
            Err(e) if named || referenced => survey.unreadable.push(e),
            Err(_) => {}
        }
    }
    // Private files whose lock is absent belong to the name their stem
    // spells (a shortened stem of an absent lock stands for itself).
    for stem in &stems {
        let known = owners.iter().any(|name| {
            let lock = Lock::new(dir, name, "", sys);
            *lock.temp_stem == **stem || *lock.claim_stem == **stem
        });
        if !known {
            owners.insert((*stem).to_owned());
        }
    }
    for name in &owners {
        let path = join(dir_path, name);
        survey
            .leftovers
            .extend(Lock::new(dir, name, &path, sys).leftovers(&names));
    }
    survey.leftovers.sort_by(|a, b| a.name.cmp(&b.name));
    survey.leftovers.dedup_by(|a, b| a.name == b.name);
    Ok(survey)
}

/// Removes every private file in `dir` that [`survey`] judges gone, and
/// returns those it removed. Locks are not touched: a stale lock is taken
/// over (and then released) through the protocol, never deleted by a sweep.
///
/// # Errors
/// As [`survey`].
pub fn sweep_dir<D: Dir, S: System>(
    dir: &D,
    dir_path: &str,
    sys: &S,
) -> Result<Vec<Leftover>, Error> {
    let mut removed = Vec::new();
    for leftover in survey(dir, dir_path, sys)?.leftovers {
        if leftover.gone && dir.remove(&leftover.name).is_ok() {
            removed.push(leftover);
        }
    }
    Ok(removed)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::private_stem;

    #[test]
    fn private_names_give_their_stem() {
        assert_eq!(
            private_stem(".x.lock.123.0123456789abcdef.tmp"),
            Some("x.lock")
        );
        assert_eq!(
            private_stem(".x.lock.break.0123456789abcdef"),
            Some("x.lock")
        );
        assert_eq!(private_stem(".x.lock.token"), Some("x.lock"));
        assert_eq!(private_stem(".x.lock.token.12"), Some("x.lock"));
        assert_eq!(private_stem(".x.lock.token.users"), Some("x.lock"));
        assert_eq!(private_stem(".x.lock.token.1x"), None);
        assert_eq!(private_stem(".token.12"), None);
        assert_eq!(private_stem("x.lock"), None);
        assert_eq!(private_stem(".x.lock"), None);
        assert_eq!(private_stem(".x.lock.12.0123.tmp"), None);
        assert_eq!(private_stem(".token"), None);
    }
}
