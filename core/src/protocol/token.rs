//! Fencing tokens: a number that grows by one with every acquisition of a
//! lock name that issues one, across releases and takeovers, so that
//! storage a holder writes to can refuse a holder that was paused past its
//! lease (it carries an older token than the one who took over).
//!
//! The record carries the token, so it is bound to the acquisition by the
//! same atomic `link`/`rename` that publishes the lock. The next token comes
//! from `.NAME.token` beside the lock (the highest token issued, written by
//! each holder right after it acquires) and, on a takeover or a forced
//! replace, from the replaced record too (its holder may have crashed before
//! writing the file). A holder that read the file just before another
//! acquired and released finds, once it holds the lock, the file at or above
//! its token: it then re-issues under a claim on its own record (so that a
//! takeover in between is never overwritten), or reports the lock lost.
use super::claim::Purpose;
use super::{Dir, Error, Kind, Lock, State, System};
use crate::format::Record;

impl<'a, D: Dir, S: System> Lock<'a, D, S> {
    /// The fencing token of the lock as it stands (the one the current
    /// holder's acquisition issued), `None` when unlocked or when it was
    /// taken without tokens.
    ///
    /// # Errors
    /// As [`Lock::owner`].
    pub fn token(&self) -> Result<Option<u64>, Error> {
        Ok(self.owner()?.and_then(|r| r.token))
    }

    fn token_name(&self) -> String {
        format!(".{}.token", self.temp_stem)
    }

    /// The highest token issued so far, as `.NAME.token` says (0 without it).
    /// Replaced by rename on every acquisition, possibly by another host:
    /// a read that finds it changed under us (NFS `ESTALE`, `EIO`) looks again.
    fn token_floor(&self) -> Result<u64, Error> {
        let name = self.token_name();
        // Never open anything but a regular file (WASI opens a FIFO blocking).
        match self.dir.kind(&name) {
            Ok(None) => return Ok(0),
            Ok(Some(Kind::File(_))) => {}
            Ok(Some(other)) => {
                return Err(Error::NotAFile {
                    path: self.sibling(&name),
                    message: super::not_a_file(other),
                })
            }
            Err(e) => return Err(self.io_error(&self.sibling(&name), "inspect", &e)),
        }
        let mut looks = 0;
        let bytes = loop {
            match self.dir.read(&name, 64) {
                Ok(bytes) => break bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) if super::changed_under_us(&e) && looks < 16 => looks += 1,
                Err(e) => return Err(self.io_error(&self.sibling(&name), "read", &e)),
            }
        };
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .ok_or_else(|| Error::Malformed {
                path: self.sibling(&name),
                message: "the fencing-token file does not hold a number; it is left as it is \
                          (remove it by hand to restart the sequence, which re-issues old \
                          tokens)"
                    .into(),
            })
    }

    /// Picks the token of the record about to be published: one more than
    /// the floor and than the record it replaces, if any.
    pub(super) fn issue_token(&self, replacing: Option<&Record>) -> Result<(), Error> {
        if !self.tokens {
            return Ok(());
        }
        let floor = self
            .token_floor()?
            .max(replacing.and_then(|r| r.token).unwrap_or(0));
        self.issued.set(Some(floor.saturating_add(1)));
        Ok(())
    }

    /// Once the lock is ours: makes sure no earlier acquisition issued our
    /// token (re-issuing if one did), then records it as the floor.
    pub(super) fn confirm_token(&self) -> Result<(), Error> {
        let Some(mut token) = self.issued.get().filter(|_| self.tokens) else {
            return Ok(());
        };
        let floor = self.token_floor()?;
        if floor >= token {
            token = floor.saturating_add(1);
            self.reissue(token)?;
        }
        let temp = self.write_temp(format!("{token}\n").as_bytes())?;
        self.dir.rename(&temp, &self.token_name()).map_err(|e| {
            let _ = self.dir.remove(&temp);
            self.io_error(&self.sibling(&self.token_name()), "write", &e)
        })
    }

    /// Replaces our own just-published record with one carrying `token`,
    /// under a claim: if the lock was taken over meanwhile, it is lost.
    fn reissue(&self, token: u64) -> Result<(), Error> {
        let lost = || Error::Lost {
            path: self.path.to_owned(),
            message: "it was taken over while its fencing token was issued".into(),
        };
        let bytes = match self.load()? {
            State::Present {
                bytes,
                record: Ok(record),
            } if record.token == self.issued.get() && record.pid == self.sys.current().pid => bytes,
            _ => return Err(lost()),
        };
        let Some(claim) = self.claim(bytes, Purpose::TakeOver)? else {
            return Err(lost());
        };
        self.issued.set(Some(token));
        let result = self.replace(&self.my_record());
        self.settle(&claim, result.is_ok());
        result
    }
}
