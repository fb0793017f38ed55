//! How to acquire: what to do about a lock someone else holds, and how long
//! to keep trying, with the retry schedule every front end shares.

use std::time::{Duration, Instant};

/// A lease in whole milliseconds (at least 1), as a lock record keeps it.
pub fn lease_millis(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// What to do about a lock that another owner holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Take it only if it is free (or already ours).
    #[default]
    Free,
    /// Also take over a stale lock (its owner is gone).
    ReplaceStale,
    /// Take it whoever holds it, replacing even a malformed file.
    Force,
}

impl Mode {
    /// labm8's positional form: `(replace_stale, force)`.
    pub fn flags(self) -> (bool, bool) {
        match self {
            Mode::Free => (false, false),
            Mode::ReplaceStale => (true, false),
            Mode::Force => (false, true),
        }
    }
}

/// How long to keep trying while the lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Not at all: one attempt.
    #[default]
    No,
    /// Up to this long.
    For(Duration),
    /// Until the lock is free.
    Forever,
}

/// How to acquire a lock: `AcquireOptions::default()` takes a free lock at
/// once or fails; `AcquireOptions::default().replace_stale().wait_for(d)`
/// also takes over stale locks and retries for up to `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AcquireOptions {
    /// What to do about another owner's lock.
    pub mode: Mode,
    /// How long to keep trying.
    pub wait: Wait,
    /// The lease to record: another host may take the lock once it has not
    /// been refreshed for this long (see `refresh`). `None`: no lease.
    pub lease: Option<Duration>,
    /// Issue a fencing token with the acquisition (see `token`).
    pub token: bool,
}

impl AcquireOptions {
    /// Also take over stale locks.
    #[must_use]
    pub fn replace_stale(self) -> Self {
        Self {
            mode: Mode::ReplaceStale,
            ..self
        }
    }

    /// Take the lock whoever holds it.
    #[must_use]
    pub fn force(self) -> Self {
        Self {
            mode: Mode::Force,
            ..self
        }
    }

    /// Record a lease of `lease` (keep it with `refresh`).
    #[must_use]
    pub fn lease(self, lease: Duration) -> Self {
        Self {
            lease: Some(lease),
            ..self
        }
    }

    /// Issue a fencing token: one more than every earlier acquisition's of
    /// this lock name, for the storage the holder writes to to check.
    #[must_use]
    pub fn token(self) -> Self {
        Self {
            token: true,
            ..self
        }
    }

    /// The lease in whole milliseconds, as the record keeps it.
    pub fn lease_ms(&self) -> Option<u64> {
        self.lease.map(lease_millis)
    }

    /// Retry for up to `limit` while the lock is held.
    #[must_use]
    pub fn wait_for(self, limit: Duration) -> Self {
        Self {
            wait: Wait::For(limit),
            ..self
        }
    }

    /// Retry until the lock is free.
    #[must_use]
    pub fn wait_forever(self) -> Self {
        Self {
            wait: Wait::Forever,
            ..self
        }
    }
}

/// The pauses between attempts on a held lock: 5 ms, growing by half each
/// time, to at most 250 ms, so a short hold is noticed soon and a long one
/// costs a few checks a second.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(5),
        }
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (now * 3 / 2).min(Duration::from_millis(250));
        Some(now)
    }
}

impl Wait {
    /// Runs `attempt` until it succeeds, fails with an error that `busy`
    /// does not call retryable, or the wait is over (then the last error),
    /// pausing between attempts as [`Wait::pause`] says; `waiting` sees
    /// each busy error before its pause. The one wait loop of every front
    /// end that waits in its own thread (the Rust host, the CLI).
    ///
    /// # Errors
    /// The attempt's error, as above.
    pub fn retry<T, E>(
        self,
        mut attempt: impl FnMut() -> Result<T, E>,
        busy: impl Fn(&E) -> bool,
        mut waiting: impl FnMut(&E),
    ) -> Result<T, E> {
        let start = Instant::now();
        let mut backoff = Backoff::default();
        loop {
            match attempt() {
                Err(e) if busy(&e) => match self.pause(start.elapsed(), &mut backoff) {
                    Some(pause) => {
                        waiting(&e);
                        std::thread::sleep(pause);
                    }
                    None => return Err(e),
                },
                done => return done,
            }
        }
    }

    /// How long to pause before the next attempt, given how long we have
    /// waited and the backoff's next pause; `None` when the wait is over.
    pub fn pause(self, waited: Duration, backoff: &mut Backoff) -> Option<Duration> {
        let left = match self {
            Wait::No => return None,
            Wait::Forever => Duration::MAX,
            Wait::For(limit) => limit.checked_sub(waited).filter(|l| !l.is_zero())?,
        };
        backoff.next().map(|p| p.min(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_quarter_second() {
        let pauses: Vec<u128> = Backoff::default().take(12).map(|d| d.as_millis()).collect();
        assert_eq!(&pauses[..4], &[5, 7, 11, 16]);
        assert_eq!(pauses[11], 250);
    }

    #[test]
    fn a_wait_ends_when_its_time_is_up() {
        let mut b = Backoff::default();
        assert_eq!(Wait::No.pause(Duration::ZERO, &mut b), None);
        let w = Wait::For(Duration::from_millis(6));
        assert_eq!(
            w.pause(Duration::ZERO, &mut b),
            Some(Duration::from_millis(5))
        );
        assert_eq!(
            w.pause(Duration::from_millis(5), &mut b),
            Some(Duration::from_millis(1))
        );
        assert_eq!(w.pause(Duration::from_millis(6), &mut b), None);
        assert!(Wait::Forever
            .pause(Duration::from_secs(1_000_000), &mut b)
            .is_some());
    }
}
