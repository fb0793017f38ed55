//! Where a lock path lies among the directories a sandbox can reach.
//!
//! Resolution is lexical and refuses `..` outright: a path that climbs out of
//! one preopened directory must not be read as a path into another, and
//! wasmtime would refuse the escape anyway, with a vaguer message.

/// A lock path, located inside one of the preopened directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Index of the preopen (the longest one that contains the path).
    pub preopen: usize,
    /// The lock's directory relative to that preopen (`.` for the preopen itself).
    pub dir: String,
    /// The lock file's name.
    pub name: String,
}

fn components(path: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err("the path contains `..`; lock paths must stay inside the \
                            preopened directories"
                    .into())
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Whether `name` names one entry of a directory, never a path: not empty,
/// `.` or `..`, and without `/` or NUL. The rule of `labm8:lockfile/files`,
/// for its WASI form (`wasi_dir`) and `lockfile_host`'s native one alike.
pub fn is_entry_name(name: &str) -> bool {
    !(name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']))
}

/// Finds the preopen (by guest path, e.g. `/var/lock` or `.`) that holds the
/// lock at `path`.
///
/// # Errors
/// A sentence saying why the path cannot be used.
pub fn locate(path: &str, preopens: &[&str]) -> Result<Located, String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.contains('\0') {
        return Err("the path contains a NUL byte".into());
    }
    let absolute = path.starts_with('/');
    let mut parts = components(path)?;
    let Some(name) = parts.pop() else {
        return Err("the path names a directory, not a file".into());
    };
    let mut best: Option<(usize, usize)> = None;
    for (i, preopen) in preopens.iter().enumerate() {
        if preopen.starts_with('/') != absolute {
            continue;
        }
        let Ok(prefix) = components(preopen) else {
            continue;
        };
        if parts.starts_with(&prefix) && best.is_none_or(|(_, len)| prefix.len() > len) {
            best = Some((i, prefix.len()));
        }
    }
    let Some((preopen, len)) = best else {
        let list = if preopens.is_empty() {
            "none".to_owned()
        } else {
            preopens
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // A relative path resolves against a relative preopen only, and
        // `wasmtime run --dir D::D` preopens absolute ones: say so.
        let hint = if absolute {
            ""
        } else {
            "; give the lock's absolute path (a relative path resolves only against a \
             relative preopen such as `--dir .::.`)"
        };
        return Err(format!(
            "it is outside every directory this component may use (preopened: {list}){hint}"
        ));
    };
    let rest = &parts[len..];
    Ok(Located {
        preopen,
        dir: if rest.is_empty() {
            ".".into()
        } else {
            rest.join("/")
        },
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(preopen: usize, dir: &str, name: &str) -> Located {
        Located {
            preopen,
            dir: dir.into(),
            name: name.into(),
        }
    }

    #[test]
    fn picks_the_longest_preopen() {
        let pre = ["/", "/var/lock", "/var"];
        assert_eq!(locate("/var/lock/x.lock", &pre), Ok(at(1, ".", "x.lock")));
        assert_eq!(locate("/var/lock/a/b/x", &pre), Ok(at(1, "a/b", "x")));
        assert_eq!(locate("/var/x", &pre), Ok(at(2, ".", "x")));
        assert_eq!(locate("/etc/x", &pre), Ok(at(0, "etc", "x")));
        assert_eq!(locate("//var/./lock//x", &pre), Ok(at(1, ".", "x")));
    }

    #[test]
    fn relative_paths_use_relative_preopens() {
        assert_eq!(locate("x.lock", &["/tmp", "."]), Ok(at(1, ".", "x.lock")));
        assert_eq!(locate("./sub/x.lock", &["."]), Ok(at(0, "sub", "x.lock")));
        assert!(locate("x.lock", &["/tmp"]).is_err());
    }

    #[test]
    fn an_entry_name_is_one_component() {
        for ok in ["x.lock", ".x.lock.1.2.tmp", "..x", "a b"] {
            assert!(is_entry_name(ok), "{ok:?}");
        }
        for bad in ["", ".", "..", "a/b", "/x", "x/", "../x", "x\0y"] {
            assert!(!is_entry_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn refuses_escapes_and_nonsense() {
        let pre = ["/var/lock"];
        let e = locate("/var/lock/../x.lock", &pre).expect_err("escape");
        assert!(e.contains("`..`"), "{e}");
        let e = locate("/tmp/x.lock", &pre).expect_err("outside");
        assert!(e.contains("`/var/lock`"), "{e}");
        assert!(locate("", &pre).is_err());
        assert!(locate("/", &["/"]).is_err());
        assert!(locate("/var/lock/a\0b", &pre).is_err());
        assert!(
            locate("/var/lockfile", &pre).is_err(),
            "prefix by component, not by string"
        );
    }
}
