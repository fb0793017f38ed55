//! The records and options that cross to JavaScript.

use std::time::Duration;

use lockfile_host::{AcquireOptions, Mode, Owner, Wait};
use napi::bindgen_prelude::BigInt;
use napi_derive::napi;

use crate::errors::invalid;

/// A recorded owner.
#[napi(object)]
#[derive(Debug)]
pub struct OwnerRecord {
    /// The owner's pid (0 when planted so by labm8's `write`).
    pub pid: u32,
    /// When it acquired the lock, in milliseconds since the epoch.
    pub date_ms: f64,
    /// The host it acquired the lock on, when recorded.
    pub hostname: Option<String>,
    /// The fencing token its acquisition issued, if any.
    pub token: Option<BigInt>,
    /// Its lease, in milliseconds, if any.
    pub lease_ms: Option<f64>,
}

pub(crate) fn owner(o: Owner) -> OwnerRecord {
    OwnerRecord {
        pid: o.pid,
        date_ms: millis(o.date),
        hostname: o.hostname,
        token: o.token.map(BigInt::from),
        lease_ms: o.lease_ms.map(|ms| ms as f64),
    }
}

pub(crate) fn millis(t: lockfile_host::Timestamp) -> f64 {
    t.seconds as f64 * 1000.0 + f64::from(t.nanos / 1_000_000)
}

/// How a lock stands for this process.
#[napi(object)]
#[derive(Debug)]
pub struct StatusRecord {
    /// The lock's path.
    pub path: String,
    /// The recorded owner; absent when unlocked or malformed.
    pub owner: Option<OwnerRecord>,
    /// `unlocked`, `owned-by-self`, `held`, `stale`, `foreign` or `malformed`.
    pub verdict: String,
    /// Why, as a word (`running`, `dead`, `recycled`, ...).
    pub cause: String,
    /// Why, as a sentence.
    pub reason: String,
}

/// What `acquire` may be told.
#[napi(object)]
#[derive(Debug, Default)]
pub struct AcquireArgs {
    /// Take the lock over when its owner is certainly gone.
    pub replace_stale: Option<bool>,
    /// Take the lock whoever holds it.
    pub force: Option<bool>,
    /// Retry while the lock is held, for up to this many milliseconds
    /// (`Infinity`: until it is free).
    pub wait_ms: Option<f64>,
    /// Record a lease of this many milliseconds (for locks shared by hosts).
    pub lease_ms: Option<f64>,
    /// Issue a fencing token.
    pub token: Option<bool>,
}

fn duration_ms(what: &str, ms: f64) -> napi::Result<Duration> {
    if ms.is_nan() || ms < 0.0 {
        let shown = if ms.is_nan() {
            "NaN".to_owned()
        } else if ms.is_infinite() {
            "-Infinity".to_owned()
        } else {
            ms.to_string()
        };
        return Err(invalid(format!(
            "{what}: {shown}: give a number of milliseconds, 0 or more"
        )));
    }
    Ok(Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX))
}

impl AcquireArgs {
    pub(crate) fn options(&self) -> napi::Result<AcquireOptions> {
        let mode = match (self.force, self.replace_stale) {
            (Some(true), _) => Mode::Force,
            (_, Some(true)) => Mode::ReplaceStale,
            _ => Mode::Free,
        };
        let wait = match self.wait_ms {
            None => Wait::No,
            Some(ms) if ms.is_infinite() && ms > 0.0 => Wait::Forever,
            Some(ms) => match duration_ms("waitMs", ms)? {
                d if d.is_zero() => Wait::No,
                d => Wait::For(d),
            },
        };
        let lease = match self.lease_ms {
            None => None,
            Some(ms) => match duration_ms("leaseMs", ms)? {
                d if d.is_zero() || ms.is_infinite() || ms >= 9_007_199_254_740_992.0 => {
                    let shown = if ms.is_infinite() {
                        "Infinity".to_owned()
                    } else {
                        ms.to_string()
                    };
                    return Err(invalid(format!(
                        "leaseMs: {shown}: give a positive number of milliseconds below 2^53"
                    )));
                }
                d => Some(d),
            },
        };
        Ok(AcquireOptions {
            mode,
            wait,
            lease,
            token: self.token.unwrap_or(false),
        })
    }
}

pub(crate) fn status_record(s: lockfile_host::Status) -> StatusRecord {
    StatusRecord {
        path: s.path,
        owner: s.owner.map(owner),
        verdict: s.verdict.as_str().to_owned(),
        cause: s.cause.as_str().to_owned(),
        reason: s.reason,
    }
}
