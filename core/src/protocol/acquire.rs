//! Acquire (publish first, then look), and labm8's static `write`.
use super::publish::Published;
use super::{not_a_file, Dir, Error, Kind, Lock, Refusal, State, System, MAX_ATTEMPTS};
use crate::decide::{Cause, Verdict};
use crate::format::{self, Record, Timestamp};

impl<'a, D: Dir, S: System> Lock<'a, D, S> {
    /// Claims the lock for the current process.
    ///
    /// # Errors
    /// `UnableToAcquire` naming the owner; `Malformed` (unless `force`);
    /// `NotAFile`; `Io`.
    pub fn acquire(&self, replace_stale: bool, force: bool) -> Result<(), Error> {
        self.sequence_seen.set(None);
        self.check_identity()?;
        // The common case is a free lock: publish before looking, which saves
        // a `stat`. Whatever is in the way (a lock, a directory, a symlink)
        // makes the link fail, and is then looked at below. So does any other
        // failure: a lock held by someone else is reported as held even where
        // we could not have written one, and a real failure recurs below.
        if !force {
            self.issue_token(None)?;
            if self.publish_lock().is_ok() {
                return self.confirm_token();
            }
        }
        for _ in 0..MAX_ATTEMPTS {
            let (bytes, record) = match self.load()? {
                State::Absent => {
                    self.issue_token(None)?;
                    match self.publish_lock() {
                        Ok(()) => return self.confirm_token(),
                        Err(Published::Exists) => continue,
                        Err(Published::Failed(e)) => return Err(e),
                    }
                }
                State::Present { bytes, record } => (bytes, record),
            };
            if force {
                self.issue_token(record.as_ref().ok())?;
                self.replace(&self.my_record())?;
                return self.confirm_token();
            }
            let record = record.map_err(|e| self.malformed(e))?;
            let judgement = self.judge(&record);
            match judgement.verdict {
                // The record we just published (its token is the one this
                // acquisition issued), though the link reported failure:
                // ours, and its token still to be confirmed.
                Verdict::OwnedBySelf
                    if self.issued.get().is_some() && record.token == self.issued.get() =>
                {
                    return self.confirm_token()
                }
                // Ours, but its lease ran out: another host may take it at
                // any moment, so "already ours" would be a false promise.
                // Taken anew as any lock no one holds, with a fresh record
                // (and token); should another host have taken it meanwhile,
                // the claim on the bytes we read fails and we look again.
                Verdict::OwnedBySelf if judgement.cause == Cause::LeaseExpired => {
                    self.issue_token(Some(&record))?;
                    if self.take_over(bytes)? {
                        return self.confirm_token();
                    }
                }
                Verdict::OwnedBySelf => return Ok(()),
                Verdict::Stale if replace_stale => {
                    self.issue_token(Some(&record))?;
                    if self.take_over(bytes)? {
                        return self.confirm_token();
                    }
                }
                _ => {
                    return Err(Error::UnableToAcquire(Box::new(Refusal::new(
                        self.path, &record, judgement,
                    ))))
                }
            }
        }
        if let Some(failed) = self.link_failure.take() {
            return Err(failed);
        }
        Err(Error::Contended {
            path: self.path.to_owned(),
            message: format!(
                "the lock changed hands {MAX_ATTEMPTS} times while acquiring it; giving up"
            ),
        })
    }

    /// labm8's static `write`: plants `PID TIMESTAMP` as given, atomically
    /// replacing a regular file at the path.
    ///
    /// # Errors
    /// `NotAFile` for anything but a regular file at the path; `Io`.
    pub fn write(&self, pid: u32, timestamp: Timestamp) -> Result<(), Error> {
        format::check_recorded_pid(pid).map_err(|message| Error::Io {
            path: self.path.to_owned(),
            message,
        })?;
        if timestamp.seconds > format::MAX_SECONDS {
            // Every reader would call such a file malformed.
            return Err(Error::Io {
                path: self.path.to_owned(),
                message: format!("timestamp {timestamp} is after the year 9999"),
            });
        }
        self.load_kind_only()?;
        self.replace(&Record {
            pid,
            timestamp,
            ..Record::default()
        })
    }

    /// Fails unless the path holds nothing or a regular file.
    pub(super) fn load_kind_only(&self) -> Result<(), Error> {
        match self.dir.kind(self.name) {
            Ok(None | Some(Kind::File(_))) => Ok(()),
            Ok(Some(other)) => Err(Error::NotAFile {
                path: self.path.to_owned(),
                message: not_a_file(other),
            }),
            Err(e) => Err(self.io_error(self.path, "inspect", &e)),
        }
    }
}
