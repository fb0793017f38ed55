//! Release: by the owner itself, or, for another process, under a claim.
use std::io;

use super::claim::Purpose;
use super::{Dir, Error, Lock, Refusal, State, System, MAX_ATTEMPTS};
use crate::decide::Verdict;

impl<'a, D: Dir, S: System> Lock<'a, D, S> {
    /// Releases the lock.
    ///
    /// # Errors
    /// `UnableToRelease` naming the owner; `Malformed` (unless `force`);
    /// `NotAFile`; `Io`.
    pub fn release(&self, force: bool) -> Result<(), Error> {
        self.check_identity()?;
        if !force && self.runs_in_owner() {
            let mine = self
                .spare
                .and_then(|s| s.published.take())
                .filter(|p| p.owner == self.sys.current() && p.holder == self.sys.holder());
            // The lock this handle published for this same owner: if the
            // file is still a regular file of exactly those bytes (unique by
            // their nonce), the judgement below would find it ours and
            // remove it, so remove it without parsing and judging. The
            // file's kind is looked at first, as always, so that a FIFO
            // never blocks the open. Anything else takes the full look.
            if mine.is_some_and(|mine| self.holds(self.name, &mine.bytes)) {
                self.sys.checkpoint("before-remove");
                return self.remove_lock();
            }
        }
        for _ in 0..MAX_ATTEMPTS {
            let (bytes, record) = match self.load()? {
                State::Absent => return Ok(()),
                State::Present { bytes, record } => (bytes, record),
            };
            if force {
                self.sys.checkpoint("before-remove");
                return self.remove_lock();
            }
            let record = record.map_err(|e| self.malformed(e))?;
            let judgement = self.judge(&record);
            if judgement.verdict != Verdict::OwnedBySelf {
                return Err(Error::UnableToRelease(Box::new(Refusal::new(
                    self.path, &record, judgement,
                ))));
            }
            if self.runs_in_owner() && record.lease_ms.is_none() {
                // Nobody replaces a live owner's lock without `force`, and the
                // owner is alive for as long as this code runs: remove it.
                // Not so with a lease: another host takes the lock once the
                // lease runs out, and an owner paused between its look and
                // its unlink would remove that host's lock. A leased lock is
                // released under a claim, as for another process.
                self.sys.checkpoint("before-remove");
                return self.remove_lock();
            }
            // We act for another process, which may die at any moment; then a
            // breaker may replace its lock and our removal would delete the
            // breaker's. Claim the record first, as a breaker would: while our
            // claim stands nobody else can replace it.
            self.sys.checkpoint("after-judge");
            let Some(claim) = self.claim(bytes, Purpose::Release)? else {
                continue;
            };
            self.sys.checkpoint("before-remove");
            match self.claim_stands(&claim) {
                Ok(true) => {}
                // Stepped over (we were paused past the lease it carries):
                // what is there now is not what we judged. Look again.
                Ok(false) => continue,
                Err(e) => {
                    self.settle(&claim, false);
                    return Err(e);
                }
            }
            let removed = self.remove_lock();
            self.settle(&claim, removed.is_ok());
            // Stepping over an abandoned claim means a breaker or releaser
            // died mid-way and may have left its temporary file: sweep then.
            // Not on every release: listing the directory costs a system
            // call per entry under WASI (wasmtime stats each one), so in a
            // directory like /tmp a sweep would cost more than the release.
            // Leftovers are inert meanwhile, and the next takeover or
            // spare-keeping handle sweeps them.
            if claim.stepped_over_abandoned() {
                self.sweep();
            }
            return removed;
        }
        Err(Error::Contended {
            path: self.path.to_owned(),
            message: format!(
                "the lock changed hands {MAX_ATTEMPTS} times while releasing it; giving up"
            ),
        })
    }

    /// Whether the process the lock is taken for is the one running this code.
    pub(super) fn runs_in_owner(&self) -> bool {
        self.sys.current() == self.sys.runner()
    }

    /// Unlinks the lock; a handle that keeps a spare starts cycling.
    pub(super) fn remove_lock(&self) -> Result<(), Error> {
        match self.dir.remove(self.name) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(self.io_error(self.path, "remove", &e))
            }
            _ => {
                if let Some(spare) = self.spare {
                    spare.cycling.set(true);
                    spare.free.set(true);
                }
                Ok(())
            }
        }
    }
}
