//! What `status` prints: text for people, one JSON object for programs.

use std::io::Write;

use lockfile_core::{display_time, rfc3339, Status, Timestamp, Verdict};

use crate::now;

/// The JSON object `status --json` prints (and `list --json`, one per lock).
pub fn status_json(s: &Status) -> serde_json::Value {
    let o = s.owner.as_ref();
    serde_json::json!({
        "path": s.path,
        "locked": !matches!(s.verdict, Verdict::Unlocked),
        "pid": o.map(|o| o.pid),
        "token": o.and_then(|o| o.token),
        "timestamp": o.map(|o| o.date.as_f64()),
        "acquired": o.and_then(|o| rfc3339(o.date)),
        "hostname": o.and_then(|o| o.hostname.clone()),
        "lease_ms": o.and_then(|o| o.lease_ms),
        "expires": o.and_then(|o| o.expires).and_then(rfc3339),
        "owned_by_self": s.verdict == Verdict::OwnedBySelf,
        "verdict": s.verdict.as_str(),
        "cause": s.cause.as_str(),
        "reason": s.reason,
    })
}

/// `30 s, runs out at 2026-… (in 12 s)`, or `… ran out 4 s ago`.
fn lease_line(lease_ms: u64, expires: Option<Timestamp>) -> String {
    let lease = lockfile_core::decide::human_duration(i128::from(lease_ms / 1000));
    let lease = if lease_ms < 10_000 {
        format!("{:.1} s", lease_ms as f64 / 1000.0)
    } else {
        lease
    };
    let Some(expires) = expires else {
        return lease;
    };
    let left = lockfile_core::decide::millis_since(expires, now()) / 1000;
    let when = display_time(expires);
    if left >= 0 {
        format!(
            "{lease}, runs out at {when} (in {}) unless renewed",
            lockfile_core::decide::human_duration(left)
        )
    } else {
        format!(
            "{lease}, ran out at {when} ({} ago)",
            lockfile_core::decide::human_duration(-left)
        )
    }
}

pub(crate) fn print_status(s: &Status, json: bool) -> std::io::Result<()> {
    let locked = !matches!(s.verdict, Verdict::Unlocked);
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", status_json(s))
    } else {
        writeln!(out, "path:     {}", s.path)?;
        writeln!(out, "locked:   {}", if locked { "yes" } else { "no" })?;
        if let Some(o) = &s.owner {
            writeln!(out, "pid:      {}", o.pid)?;
            writeln!(out, "acquired: {} ({})", display_time(o.date), o.date)?;
            if let Some(host) = &o.hostname {
                writeln!(out, "host:     {host}")?;
            }
            if let Some(ms) = o.lease_ms {
                writeln!(out, "lease:    {}", lease_line(ms, o.expires))?;
            }
            if let Some(token) = o.token {
                writeln!(out, "token:    {token}")?;
            }
        }
        writeln!(out, "verdict:  {}", s.verdict.as_str())?;
        writeln!(out, "reason:   {}", s.reason)
    }
}
