//! File-system errors in plain words, each with the errno a user would
//! search for: what `lockfile` says, natively and under WASI alike.
use std::io;

/// EACCES.
pub const EACCES: &str = "permission denied (EACCES)";
/// EPERM.
pub const EPERM: &str = "the operation is not permitted (EPERM)";
/// ENOSPC.
pub const ENOSPC: &str = "no space left on device (ENOSPC)";
/// EDQUOT.
pub const EDQUOT: &str = "the disk quota is exceeded (EDQUOT)";
/// EROFS.
pub const EROFS: &str = "the file system is read-only (EROFS)";
/// ELOOP.
pub const ELOOP: &str = "too many levels of symbolic links (ELOOP)";
/// ENAMETOOLONG.
pub const ENAMETOOLONG: &str =
    "the name is too long (ENAMETOOLONG): most file systems take at most 255 bytes per name";
/// EXDEV.
pub const EXDEV: &str = "the files are on different file systems (EXDEV)";
/// EIO, natively.
pub const EIO: &str = "an input/output error (EIO)";
/// EIO as a WASI runtime reports it: wasmtime turns every errno it has no
/// WASI code for into `io`, so these are EIO or one of those.
pub const EIO_UNDER_WASI: &str = "an input/output error (EIO; wasmtime reports a read-only \
     file system (EROFS), an exceeded disk quota (EDQUOT) and a link across file systems \
     (EXDEV) this way too)";

/// Linux's errno values for the errors said above.
const TABLE: [(i32, &str); 9] = [
    (1, EPERM),
    (5, EIO),
    (13, EACCES),
    (18, EXDEV),
    (28, ENOSPC),
    (30, EROFS),
    (36, ENAMETOOLONG),
    (40, ELOOP),
    (122, EDQUOT),
];

/// What `e` means, in plain words: a known errno by its table above (Linux
/// only: the numbers differ elsewhere), anything else as the error says it,
/// without std's "(os error N)".
pub fn words(e: &io::Error) -> String {
    if cfg!(target_os = "linux") {
        if let Some((_, said)) = e
            .raw_os_error()
            .and_then(|n| TABLE.iter().find(|(code, _)| *code == n))
        {
            return (*said).to_owned();
        }
    }
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) => {
            let mut plain = text[..at].to_owned();
            if let Some(first) = plain.get_mut(..1) {
                first.make_ascii_lowercase();
            }
            plain
        }
        None => text,
    }
}

/// WASI's description of an error code ("Filename too long, similar to
/// `ENAMETOOLONG` in POSIX.") as we say things: "filename too long
/// (ENAMETOOLONG)".
pub fn from_wasi_words(message: &str) -> String {
    let message = message.trim_end_matches('.');
    let Some((what, rest)) = message.split_once(", similar to `") else {
        return message.to_owned();
    };
    let errno = rest.split('`').next().unwrap_or_default();
    let mut what = what.to_owned();
    if let Some(first) = what.get_mut(..1) {
        first.make_ascii_lowercase();
    }
    format!("{what} ({errno})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn errnos_are_said_in_plain_words() {
        for (errno, words_of) in TABLE {
            assert_eq!(words(&io::Error::from_raw_os_error(errno)), words_of);
        }
        // Anything else: std's words, without "(os error N)".
        assert_eq!(
            words(&io::Error::from_raw_os_error(16)),
            "device or resource busy"
        );
    }

    #[test]
    fn wasi_words_lose_their_posix_comparison() {
        assert_eq!(
            from_wasi_words("Filename too long, similar to `ENAMETOOLONG` in POSIX."),
            "filename too long (ENAMETOOLONG)"
        );
        assert_eq!(from_wasi_words("Something else."), "Something else");
    }
}
