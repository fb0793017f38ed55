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
//!
//! In a sticky directory (`/tmp`) only the user who wrote `.NAME.token` can
//! replace it. Every other user continues the sequence in a file of their
//! own, `.NAME.token.T` (the number is in the name, so finding the highest
//! takes one listing and no reads), after creating `.NAME.token.users`, the
//! note that tells readers to look for such files. Each writer then removes
//! its own older ones, so a directory holds at most one per user.
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

    pub(super) fn token_name(&self) -> String {
        format!(".{}.token", self.temp_stem)
    }

    /// The note that the sequence goes on in token files of several users.
    fn shared_note_name(&self) -> String {
        format!(".{}.token.{SHARED_NOTE}", self.temp_stem)
    }

    /// The highest token issued so far (0 before the first), where it was
    /// found, and the token files of single users.
    fn token_floor(&self) -> Result<(Floor, Vec<OwnTokenFile>), Error> {
        let own = self.own_token_files()?;
        let mut floor = Floor {
            number: self.main_token_file()?,
            file: self.token_name(),
        };
        if let Some(top) = own.iter().max_by_key(|f| f.number) {
            if top.number > floor.number {
                floor = Floor {
                    number: top.number,
                    file: top.name.clone(),
                };
            }
        }
        Ok((floor, own))
    }

    /// The token files of single users (`.NAME.token.T`), when the note
    /// says there are any: looked for in a listing of the directory. A
    /// regular file that holds its own name's number, as our writers make
    /// them, counts, and so does one we may not read (by its name); anything
    /// else at such a name (another lock named `.x.lock.token.3`, a
    /// directory, garbage another user planted) was never a token issued,
    /// is ignored and never removed.
    fn own_token_files(&self) -> Result<Vec<OwnTokenFile>, Error> {
        let note = self.shared_note_name();
        match self.dir.kind(&note) {
            Ok(None) => return Ok(Vec::new()),
            Ok(Some(_)) => {}
            Err(e) => return Err(self.io_error(&self.sibling(&note), "inspect", &e)),
        }
        let names = self
            .dir
            .names()
            .map_err(|e| self.io_error(self.path, "list the directory for its token files", &e))?;
        let prefix = format!(".{}.token.", self.temp_stem);
        let mut found = Vec::new();
        for name in names {
            let Some(digits) = name.strip_prefix(&prefix) else {
                continue;
            };
            let Some(number) = is_number(digits)
                .then(|| digits.parse::<u64>().ok())
                .flatten()
            else {
                continue;
            };
            // Never open anything but a regular file (WASI opens a FIFO blocking).
            if !matches!(self.dir.kind(&name), Ok(Some(Kind::File(_)))) {
                continue;
            }
            match self.dir.read(&name, TOKEN_FILE_MAX + 1) {
                Ok(bytes) if parse_token_file(&bytes) == Some(number) => {
                    found.push(OwnTokenFile {
                        name,
                        number,
                        verified: true,
                    });
                }
                // Not one of ours (another lock's record, garbage, an
                // empty file): ignored.
                Ok(_) => {}
                // Removed meanwhile: its writer's newer one replaces it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // Unreadable (its user's umask is 077): it counts by its
                // name. A number too high only makes the sequence jump;
                // ignoring a real one would issue its token again.
                Err(_) => found.push(OwnTokenFile {
                    name,
                    number,
                    verified: false,
                }),
            }
        }
        Ok(found)
    }

    /// What `.NAME.token` says (0 without it). Replaced by rename on every
    /// acquisition, possibly by another host: a read that finds it changed
    /// under us (NFS `ESTALE`, `EIO`) looks again.
    fn main_token_file(&self) -> Result<u64, Error> {
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
            // One byte more than a token file may hold: a file read in part
            // could make the sequence go backwards.
            match self.dir.read(&name, TOKEN_FILE_MAX + 1) {
                Ok(bytes) => break bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) if super::changed_under_us(&e) && looks < 16 => looks += 1,
                Err(e) => return Err(self.io_error(&self.sibling(&name), "read", &e)),
            }
        };
        parse_token_file(&bytes).ok_or_else(|| Error::Malformed {
            path: self.sibling(&name),
            message: "the fencing-token file does not hold one decimal number (and an optional \
                      newline); it is left as it is (remove it by hand to restart the \
                      sequence, which re-issues old tokens)"
                .into(),
        })
    }

    /// The token after `floor`: an error when the sequence is exhausted,
    /// never a repeated token.
    fn next_token(&self, floor: &Floor) -> Result<u64, Error> {
        floor.number.checked_add(1).ok_or_else(|| Error::Io {
            path: self.path.to_owned(),
            message: format!(
                "the fencing-token sequence is exhausted (`{}` says token {} was issued, the \
                 largest there is); nothing was published (restarting it by removing the \
                 token files would re-issue old tokens)",
                floor.file, floor.number
            ),
        })
    }

    /// Picks the token of the record about to be published: one more than
    /// the floor and than the record it replaces, if any.
    ///
    /// Replacing a record that carries a token or a lease issues one even
    /// when not asked: the sequence goes on (dropping it would let the next
    /// acquisition re-issue the replaced holder's token), and a breaker of a
    /// leased lock may be the one a paused holder's writes race.
    pub(super) fn issue_token(&self, replacing: Option<&Record>) -> Result<(), Error> {
        let replaced = replacing.and_then(|r| r.token);
        let leased = replacing.is_some_and(|r| r.lease_ms.is_some());
        if !(self.issues_tokens() || replaced.is_some() || leased) {
            self.issued.set(None);
            return Ok(());
        }
        let mut floor = self.token_floor()?.0;
        if let Some(replaced) = replaced.filter(|r| *r > floor.number) {
            floor = Floor {
                number: replaced,
                file: self.path.to_owned(),
            };
        }
        self.issued.set(Some(self.next_token(&floor)?));
        Ok(())
    }

    /// Once the lock is ours: makes sure no earlier acquisition issued our
    /// token (re-issuing if one did), then records it as the floor. If that
    /// fails, the lock we just published is withdrawn before the failure is
    /// reported: an acquisition that says it failed must not leave the lock
    /// held (unless it was taken over meanwhile, and so is not ours).
    pub(super) fn confirm_token(&self) -> Result<(), Error> {
        self.record_token().map_err(|e| {
            if matches!(e, Error::Lost { .. }) {
                return e;
            }
            match self.release(false) {
                Ok(()) => e,
                // Both failed (a full disk fails the claim a leased release
                // needs, too): say the lock is still held, not only why.
                Err(w) => Error::Io {
                    path: self.path.to_owned(),
                    message: format!(
                        "{e}; and the lock it had published could not be withdrawn ({w}): it is \
                         still held for this process, so release it once the cause is fixed"
                    ),
                },
            }
        })
    }

    fn record_token(&self) -> Result<(), Error> {
        // The publishing link of this acquisition saw no sequence: nothing
        // to issue or record. (Takeovers publish by rename, and look below.)
        let seen = self.sequence_seen.take();
        if self.issued.get().is_none() && seen == Some(false) {
            return Ok(());
        }
        let (floor, own) = self.token_floor()?;
        let token = match self.issued.get() {
            Some(token) if floor.number < token => token,
            Some(_) => {
                let token = self.next_token(&floor)?;
                self.reissue(token)?;
                token
            }
            // Not asked for, but the lock has a sequence: continue it, or
            // this holder's writes would carry no token after others' did.
            // Looked at once the lock is ours, so that no acquisition can
            // slip in between the look and our publish.
            None if floor.number > 0 => {
                let token = self.next_token(&floor)?;
                self.reissue(token)?;
                token
            }
            None => return Ok(()),
        };
        let temp = self.write_temp(format!("{token}\n").as_bytes())?;
        let written = match self.dir.rename(&temp, &self.token_name()) {
            Ok(()) => Ok(()),
            // A sticky directory, and `.NAME.token` is another user's.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                self.write_own_token_file(&temp, token)
            }
            Err(e) => Err(self.io_error(&self.sibling(&self.token_name()), "write", &e)),
        };
        if written.is_err() {
            let _ = self.dir.remove(&temp);
            return written;
        }
        // Every file listed is below `token`: those of this user go (the
        // kernel refuses the others' in a sticky directory, which is fine).
        // Only files that read as ours: one that could not be read stays.
        for file in own.into_iter().filter(|f| f.verified) {
            let _ = self.dir.remove(&file.name);
        }
        Ok(())
    }

    /// Records `token` (written to `temp`) as `.NAME.token.T`, after the
    /// note that makes every reader look for such files: created if it is
    /// missing (a cleaner of old files removed it, say), else made as
    /// recent as the file where we may (its owner may), so that a cleaner
    /// that ages files, as systemd-tmpfiles ages /tmp, does not take it
    /// before the files it announces.
    fn write_own_token_file(&self, temp: &str, token: u64) -> Result<(), Error> {
        let note = self.shared_note_name();
        match self.dir.create(&note, SHARED_NOTE_TEXT.as_bytes()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = self.dir.touch(&note);
            }
            Err(e) => return Err(self.io_error(&self.sibling(&note), "create", &e)),
        }
        let own = format!(".{}.token.{token}", self.temp_stem);
        self.dir
            .rename(temp, &own)
            .map_err(|e| self.io_error(&self.sibling(&own), "write", &e))
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
        match self.replace_claimed(&self.my_record(), &claim) {
            Ok(true) => {
                self.settle(&claim, true);
                Ok(())
            }
            // Stepped over: not ours to remove, and the lock is not ours.
            Ok(false) => Err(lost()),
            Err(e) => {
                self.settle(&claim, false);
                Err(e)
            }
        }
    }
}

/// The highest token issued, as a file says.
struct Floor {
    number: u64,
    /// The file that says so (the lock itself for a replaced record).
    file: String,
}

/// A user's token file, `.NAME.token.NUMBER`.
struct OwnTokenFile {
    name: String,
    number: u64,
    /// Whether it read as ours (its own number, and a newline); only those
    /// are removed once a higher token is recorded.
    verified: bool,
}

/// The last part of the note's name, `.NAME.token.users`.
const SHARED_NOTE: &str = "users";

/// Whether `rest`, what follows `.STEM.token.` in a name, makes it one of
/// the lock's token files: a user's (a number) or the note.
pub(super) fn is_token_file_suffix(rest: &str) -> bool {
    rest == SHARED_NOTE || is_number(rest)
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// What the note says, for a person who finds it.
const SHARED_NOTE_TEXT: &str = "The fencing tokens of this lock are also recorded in \
    .NAME.token.NUMBER files of single users (in a sticky directory only the user who \
    wrote .NAME.token can replace it). Remove none of them: tokens would be re-issued.\n";

/// The most a token file may hold: 20 digits and a newline, with room for
/// leading zeros.
const TOKEN_FILE_MAX: usize = 64;

/// A token file's number: decimal digits and an optional newline, nothing
/// else (no sign, no spaces), within `u64`.
fn parse_token_file(bytes: &[u8]) -> Option<u64> {
    if bytes.len() > TOKEN_FILE_MAX {
        return None;
    }
    let digits = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_token_file;

    #[test]
    fn a_token_file_is_one_number_and_an_optional_newline() {
        assert_eq!(parse_token_file(b"41\n"), Some(41));
        assert_eq!(parse_token_file(b"41"), Some(41));
        assert_eq!(parse_token_file(b"0041\n"), Some(41));
        assert_eq!(parse_token_file(b"18446744073709551615\n"), Some(u64::MAX));
        let long = format!("{}41\n", "0".repeat(69));
        for bad in [
            long.as_bytes(),
            b"18446744073709551616",
            b"",
            b"\n",
            b" 41",
            b"41 ",
            b"41\n\n",
            b"+41",
            b"-1",
            b"4x1",
        ] {
            assert_eq!(parse_token_file(bad), None, "{bad:?}");
        }
    }
}
