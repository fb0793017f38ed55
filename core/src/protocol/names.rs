//! Private names beside a lock: temporary files and claims, and the stem
//! that stands for the lock's name in them.
use std::borrow::Cow;

use crate::format;

/// The longest name a file system takes for one path component (Linux's
/// NAME_MAX, and that of every common file system).
pub(super) const NAME_MAX: usize = 255;
/// How much longer than its stem a temporary file's name is at most:
/// `.STEM.4294967295.0123456789abcdef.tmp`.
pub(super) const TEMP_OVERHEAD: usize = ".".len() + ".4294967295.".len() + 16 + ".tmp".len();
/// How much longer than its stem a claim's name is: `.STEM.break.0123456789abcdef`.
pub(super) const CLAIM_OVERHEAD: usize = ".".len() + ".break.".len() + 16;

/// The stem of a lock's private names of `overhead` bytes more than it: the
/// name itself when they then fit in [`NAME_MAX`] bytes (so claims are named
/// as by earlier versions wherever those could name them at all); otherwise
/// as much of the name as fits beside the longest overhead, `~`, and a hash
/// of the whole name, so that every process derives the same private names
/// for the same lock, and sweeps recognise them.
pub(super) fn stem(name: &str, overhead: usize) -> Cow<'_, str> {
    if name.len() + overhead <= NAME_MAX {
        return Cow::Borrowed(name);
    }
    let room = NAME_MAX - TEMP_OVERHEAD;
    let mut keep = room - "~".len() - 16;
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    Cow::Owned(format!(
        "{}~{:016x}",
        &name[..keep],
        format::fingerprint(name.as_bytes())
    ))
}

/// The pid in a temporary file's name (`PID.NONCE.tmp`).
pub(super) fn temp_owner(rest: &str) -> Option<u32> {
    let inner = rest.strip_suffix(".tmp")?;
    let (pid, nonce) = inner.split_once('.')?;
    (nonce.len() == 16).then_some(())?;
    pid.parse().ok()
}
