//! Publishing a record at a name only if nothing is there: from a fresh
//! temporary file, or from a cycling handle's spare; and replacing the lock
//! outright (`force`, labm8's `write`, the end of a takeover).
use std::cell::{Cell, RefCell};
use std::io;

use super::names::temp_owner;
use super::{Dir, Error, Kind, Lock, System};
use crate::decide::Identity;
use crate::format::{self, Record};

/// A lock handle's retained temporary file: the inode its next lock is
/// published from.
///
/// A fresh temporary file per acquire costs an inode allocation and two
/// directory updates more than the lock itself needs. A handle that releases
/// and re-acquires keeps the temporary file after linking it as the lock:
/// releasing unlinks only the lock's name, and the next acquire rewrites the
/// spare in place and links it again. It is rewritten only while it has no
/// other link, so a published lock is never written to. A handle that never
/// releases never keeps one, so one-shot uses (the CLI) leave nothing behind.
/// The owner of the `Spare` removes the file with [`Spare::discard`] when done.
///
/// The spare is rewritten only when this handle itself removed the lock it
/// last published (or its link failed): link counts, which the rewrite also
/// checks, can be stale in an NFS client's attribute cache, and a spare still
/// linked as the lock must never be written to.
/// After a crash the file stays until a sweep, which runs after every
/// takeover and whenever a handle starts keeping a spare, removes it like any
/// temporary file of a dead (or recycled) process.
#[derive(Debug, Default)]
pub struct Spare {
    pub(super) name: RefCell<Option<String>>,
    pub(super) cycling: Cell<bool>,
    /// Known not to be linked as the lock: set when this handle removes the
    /// lock or fails to link the spare, cleared when it links it.
    pub(super) free: Cell<bool>,
    /// The unleased lock this handle last published, until it releases it:
    /// its exact bytes, and for whom.
    pub(super) published: RefCell<Option<PublishedLock>>,
}

/// A lock a handle published: a lock file that still holds exactly these
/// bytes (unique by their nonce) is this lock, so the release of the same
/// owner compares bytes instead of parsing and judging the record.
#[derive(Debug)]
pub(super) struct PublishedLock {
    pub(super) bytes: Vec<u8>,
    /// The process it was taken for, and the holder within it: a handle's
    /// `Spare` may be shared, and only the same owner may take the shortcut.
    pub(super) owner: Identity,
    pub(super) holder: Option<u64>,
}

impl Spare {
    /// Removes the spare file, if any, from `dir`. Best effort.
    pub fn discard(&self, dir: &impl Dir) {
        if let Some(name) = self.name.take() {
            let _ = dir.remove(&name);
        }
    }

    /// The spare file's name, if one is kept.
    pub fn name(&self) -> Option<String> {
        self.name.borrow().clone()
    }
}

/// Why `publish` did not publish.
pub(super) enum Published {
    Exists,
    Failed(Error),
}

impl<'a, D: Dir, S: System> Lock<'a, D, S> {
    /// Writes `bytes` to a fresh temporary file beside the lock.
    pub(super) fn write_temp(&self, bytes: &[u8]) -> Result<String, Error> {
        let temp = format!(
            ".{}.{}.{:016x}.tmp",
            self.temp_stem,
            self.sys.runner().pid,
            self.sys.random()
        );
        match self.dir.create(&temp, bytes) {
            Ok(()) => Ok(temp),
            Err(e) => {
                let _ = self.dir.remove(&temp);
                Err(self.io_error(&self.sibling(&temp), "create a temporary lock file", &e))
            }
        }
    }

    /// Publishes our record as the lock if nothing is there, from the spare
    /// when this handle keeps one.
    pub(super) fn publish_lock(&self) -> Result<(), Published> {
        let record = format::serialize(&self.my_record());
        let published = self.publish_record(&record);
        if let (Ok(()), Some(spare)) = (&published, self.spare) {
            // A leased lock is released under a claim: nothing to compare.
            let unleased = self.lease_ms.is_none();
            spare.published.replace(unleased.then(|| PublishedLock {
                bytes: record.into_bytes(),
                owner: self.sys.current(),
                holder: self.sys.holder(),
            }));
        }
        published
    }

    fn publish_record(&self, record: &str) -> Result<(), Published> {
        let Some(spare) = self.spare.filter(|s| s.cycling.get()) else {
            return self.publish(self.name, record.as_bytes(), None);
        };
        if let Some(name) = spare.name.take() {
            // A spare that may still be the lock (we hold it and acquire
            // again, or another process removed the lock rather than us), one
            // kept for another lock name, or one no longer ours to write is
            // not rewritten: drop its name, keep the file's other links, start
            // a fresh spare.
            if !spare.free.replace(false)
                || !self.is_temp_name(&name)
                || !matches!(self.dir.rewrite(&name, record.as_bytes()), Ok(true))
            {
                let _ = self.dir.remove(&name);
            } else {
                self.sys.checkpoint("before-publish");
                match self.link_lock(&name, self.name) {
                    // Removed under us (a sweeper that cannot see our pid):
                    // publish afresh below.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    linked => {
                        spare.name.replace(Some(name));
                        let result = self.linked(self.name, linked, record.as_bytes());
                        spare.free.set(result.is_err());
                        return result;
                    }
                }
            }
        }
        self.publish(self.name, record.as_bytes(), Some(spare))
    }

    /// Links `temp` as `name`; when `name` is the lock, also looks (in the
    /// same host call where there is one) whether the lock has a token
    /// sequence, for `record_token`, which must know once the lock is ours.
    fn link_lock(&self, temp: &str, name: &str) -> io::Result<()> {
        if name != self.name {
            return self.dir.link(temp, name);
        }
        let seen = self.dir.link_probe(temp, name, &self.token_name())?;
        self.sequence_seen.set(seen);
        Ok(())
    }

    /// Whether `name` is one of our temporary files' names for this lock.
    pub(super) fn is_temp_name(&self, name: &str) -> bool {
        name.strip_prefix('.')
            .and_then(|rest| rest.strip_prefix(&*self.temp_stem))
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| temp_owner(rest).is_some())
    }

    /// Publishes `bytes` at `name` only if nothing is there, from a fresh
    /// temporary file, which `keep` retains as its spare (else it is removed).
    pub(super) fn publish(
        &self,
        name: &str,
        bytes: &[u8],
        keep: Option<&Spare>,
    ) -> Result<(), Published> {
        let temp = self.write_temp(bytes).map_err(Published::Failed)?;
        self.sys.checkpoint("before-publish");
        let linked = self.link_lock(&temp, name);
        let result = self.linked(name, linked, bytes);
        match keep {
            Some(spare) => {
                spare.name.replace(Some(temp));
                spare.free.set(result.is_err());
                // A handle starts keeping a file beside the lock: first clear
                // away what dead processes' handles kept, which no takeover
                // may ever sweep.
                self.sweep();
            }
            None => {
                let _ = self.dir.remove(&temp);
            }
        }
        result
    }

    /// What a `link` of our record `bytes` to `name` did. A link can report
    /// failure although it succeeded: over NFS, a reply lost and the request
    /// retransmitted finds the name taken, by us. So a failed link whose
    /// name holds exactly our record (unique by its nonce) is a success.
    pub(super) fn linked(
        &self,
        name: &str,
        linked: io::Result<()>,
        bytes: &[u8],
    ) -> Result<(), Published> {
        let Err(e) = linked else {
            return Ok(());
        };
        if self.holds(name, bytes) {
            return Ok(());
        }
        // EEXIST: the name is taken. EIO and ESTALE (NFS: the server or the
        // client lost track of the request; userspace clients say EIO): the
        // link may or may not have happened, and the name does not hold our
        // record, so whatever is there (or nothing) is looked at again, as
        // for a name taken: a transient reply must not fail the acquisition.
        if e.kind() == io::ErrorKind::AlreadyExists {
            return Err(Published::Exists);
        }
        if super::changed_under_us(&e) {
            self.link_failure.replace(Some(self.io_error(
                &self.sibling(name),
                "link the lock file into place",
                &e,
            )));
            return Err(Published::Exists);
        }
        Err(Published::Failed(self.io_error(
            &self.sibling(name),
            "link the lock file into place",
            &e,
        )))
    }

    /// Whether `name` holds exactly `bytes`. Only a regular file of that
    /// length is opened: whatever else is in the way (a FIFO, which WASI
    /// would open blocking) is looked at by the caller as it always was.
    pub(super) fn holds(&self, name: &str, bytes: &[u8]) -> bool {
        matches!(self.dir.kind(name), Ok(Some(Kind::File(len))) if len == bytes.len() as u64)
            && self
                .dir
                .read(name, format::MAX_LEN + 1)
                .is_ok_and(|now| now == bytes)
    }

    /// Puts `record` at the lock path whatever is there (a regular file).
    pub(super) fn replace(&self, record: &Record) -> Result<(), Error> {
        let temp = self.write_temp(format::serialize(record).as_bytes())?;
        self.sys.checkpoint("before-publish");
        self.dir.rename(&temp, self.name).map_err(|e| {
            let _ = self.dir.remove(&temp);
            self.io_error(self.path, "replace", &e)
        })
    }
}
