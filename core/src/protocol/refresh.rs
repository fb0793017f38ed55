//! Refresh: renew a leased lock's lease, only while it is still ours.
use super::{Dir, Error, Lock, State, System};
use crate::decide::{millis_since, Verdict, MTIME_GRANULARITY_MS};

impl<'a, D: Dir, S: System> Lock<'a, D, S> {
    /// Renews the lease of the lock this process holds: sets its file's
    /// modification time to now. Refused, and nothing touched, when the lock
    /// is gone, is not ours, or its lease ran out before this refresh: by
    /// then another host may have judged it stale and taken it, and a late
    /// refresh must not revive it. A lock without a lease is only checked.
    ///
    /// # Errors
    /// `Lost` as above; `Malformed`, `NotAFile`, `Io`.
    pub fn refresh(&self) -> Result<(), Error> {
        self.check_identity()?;
        let lost = |message: String| Error::Lost {
            path: self.path.to_owned(),
            message,
        };
        let record = match self.load()? {
            State::Absent => return Err(lost("it is gone (released or removed)".into())),
            State::Present { record, .. } => record.map_err(|e| self.malformed(e))?,
        };
        let judgement = self.judge(&record);
        if judgement.verdict != Verdict::OwnedBySelf {
            return Err(lost(format!(
                "it now belongs to pid {} ({}): {}",
                record.pid,
                judgement.verdict.as_str(),
                judgement.reason
            )));
        }
        let Some(lease) = record.lease_ms else {
            return Ok(());
        };
        if let Some(modified) = record.modified {
            // The file's time may read up to a second old; readers allow for
            // that and for 2 s of clock skew on top, so refusing only past
            // the lease plus the granularity still leaves the skew between a
            // refused refresh and the earliest takeover.
            let age = millis_since(self.sys.now(), modified) - i128::from(MTIME_GRANULARITY_MS);
            if age > i128::from(lease) {
                return Err(lost(format!(
                    "its lease of {lease} ms ran out {} ms ago, so another host may have \
                     taken it over",
                    age - i128::from(lease)
                )));
            }
        }
        self.sys.checkpoint("before-refresh");
        self.dir
            .touch(self.name)
            .map_err(|e| self.io_error(self.path, "refresh the lease of", &e))
    }
}
