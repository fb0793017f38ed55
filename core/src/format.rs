//! The lock-file format: what a lock file says and how it is written.
//!
//! labm8 writes `PID TIMESTAMP` (`print(os.getpid(), time.time())`) and reads
//! the file by splitting it on whitespace and parsing the first two tokens as
//! an int and a float. We read exactly that, and write it as the first line,
//! followed by `key=value` lines that labm8 ignores:
//!
//! ```text
//! 4242 1796032931.123456
//! host=build-01
//! boot=6f1c0e36-4be0-4f5e-9a55-7a4f2a3c9f10
//! start=1234567
//! pidns=4026531836
//! nonce=9f2c4e1ab0d3c577
//! ```
//!
//! (and, for a lock that a holder within its process took, such as one
//! plugin of an application, `holder=00c0ffee00000042`.)
//!
//! A bare third token (labm8 2020 writes `PID TIMESTAMP HOSTNAME`) is read as
//! the hostname. Unknown keys and other tokens are ignored, so later versions
//! may add fields; a known key with a bad value makes the file malformed.

use std::fmt;

/// The most a lock file may hold. Anything larger is malformed; readers never
/// read more than this (plus one byte to notice the excess).
pub const MAX_LEN: usize = 4096;

/// The largest Unix time we accept: 9999-12-31T23:59:59Z.
pub const MAX_SECONDS: u64 = 253_402_300_799;

/// A moment as Unix time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub seconds: u64,
    /// Nanoseconds past `seconds`, below 1_000_000_000.
    pub nanos: u32,
}

impl Timestamp {
    /// A timestamp from seconds and nanoseconds, carrying excess nanoseconds.
    pub fn new(seconds: u64, nanos: u32) -> Self {
        Self {
            seconds: seconds.saturating_add(u64::from(nanos / 1_000_000_000)),
            nanos: nanos % 1_000_000_000,
        }
    }

    /// The same moment cut to whole microseconds: what the file format keeps.
    pub fn to_micros(self) -> Self {
        Self {
            seconds: self.seconds,
            nanos: self.nanos / 1000 * 1000,
        }
    }

    /// The moment `ms` milliseconds later (saturating: a lease is at most
    /// about 31 years, far from the end of `u64` seconds).
    pub fn plus_millis(self, ms: u64) -> Self {
        let nanos = u64::from(self.nanos) + (ms % 1000) * 1_000_000;
        Self {
            seconds: self
                .seconds
                .saturating_add(ms / 1000)
                .saturating_add(nanos / 1_000_000_000),
            nanos: (nanos % 1_000_000_000) as u32,
        }
    }

    /// Seconds as a float, as labm8 and `status --json` show them.
    pub fn as_f64(self) -> f64 {
        self.seconds as f64 + f64::from(self.nanos) / 1e9
    }

    /// Whole seconds from `earlier` to `self`, negative when `self` is earlier.
    pub fn seconds_since(self, earlier: Timestamp) -> i128 {
        let a = i128::from(self.seconds) * 1_000_000_000 + i128::from(self.nanos);
        let b = i128::from(earlier.seconds) * 1_000_000_000 + i128::from(earlier.nanos);
        (a - b) / 1_000_000_000
    }

    /// Parses a Unix time as labm8 writes it (`1796032931.123456`); exponent
    /// forms that Python's `float()` also accepts are read approximately.
    ///
    /// # Errors
    /// A message saying what is wrong with the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("timestamp `{}` is not a number", shorten(text));
        if text.starts_with('-') {
            return Err(format!("timestamp `{}` is before 1970", shorten(text)));
        }
        let digits = text.strip_prefix('+').unwrap_or(text);
        if digits.starts_with(['+', '-']) {
            return Err(bad());
        }
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let plain = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let ts = if plain(whole) && plain(frac) && !(whole.is_empty() && frac.is_empty()) {
            let seconds = if whole.is_empty() {
                0
            } else {
                whole.parse::<u64>().map_err(|_| too_late(text))?
            };
            let mut nanos = 0u32;
            for (i, b) in frac.bytes().take(9).enumerate() {
                nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
            }
            Timestamp { seconds, nanos }
        } else {
            // Only exponent forms get here; `inf`, `nan` and friends are refused.
            if !digits.bytes().any(|b| b == b'e' || b == b'E')
                || digits
                    .bytes()
                    .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
            {
                return Err(bad());
            }
            let value: f64 = digits.parse().map_err(|_| bad())?;
            if !value.is_finite() || value > MAX_SECONDS as f64 {
                return Err(too_late(text));
            }
            let seconds = value.trunc() as u64;
            let nanos = ((value - value.trunc()) * 1e9).round().min(999_999_999.0) as u32;
            Timestamp { seconds, nanos }
        };
        if ts.seconds > MAX_SECONDS {
            return Err(too_late(text));
        }
        Ok(ts)
    }
}

fn too_late(text: &str) -> String {
    format!("timestamp `{}` is after the year 9999", shorten(text))
}

impl fmt::Display for Timestamp {
    /// `SECONDS.MICROSECONDS`, the form labm8 writes and reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.seconds, self.nanos / 1000)
    }
}

/// What a lock file records about its owner.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The owner's process id.
    pub pid: u32,
    /// When the lock was taken.
    pub timestamp: Timestamp,
    /// The host it was written on.
    pub hostname: Option<String>,
    /// The boot it was written during (Linux boot id).
    pub boot_id: Option<String>,
    /// The owner's start time in clock ticks since boot.
    pub start_ticks: Option<u64>,
    /// The PID namespace the pid belongs to.
    pub pid_namespace: Option<u64>,
    /// A random value that makes every record we write unique.
    pub nonce: Option<String>,
    /// A second process the lock is held for: while either runs, the lock
    /// is held (`lockfile run` names the command it started, which may
    /// outlive it).
    pub companion: Option<u32>,
    /// The companion's start time in clock ticks since boot.
    pub companion_start_ticks: Option<u64>,
    /// Which holder within the owner process took the lock, where its host
    /// tells holders apart (each plugin of an application); `None` for a
    /// process-wide lock, as labm8's.
    pub holder: Option<u64>,
    /// The lease, in milliseconds: a lock from another host or PID
    /// namespace is stale once its file has not been modified (acquired or
    /// refreshed) for this long, plus an allowance for clock skew.
    pub lease_ms: Option<u64>,
    /// The fencing token: one more than the token of every earlier
    /// acquisition of this lock name that issued one (see `protocol::token`).
    pub token: Option<u64>,
    /// Not in the file: when the file system last modified the file this
    /// record was read from (its clock: on NFS, the server's). Readers fill
    /// it in for leased records; `None` where unknown.
    pub modified: Option<Timestamp>,
}

/// Why a lock file could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Nothing but whitespace.
    #[error("the file is empty")]
    Empty,
    /// Larger than [`MAX_LEN`].
    #[error("the file is larger than {MAX_LEN} bytes, so it is not a lock file")]
    TooLarge,
    /// Contains a NUL byte.
    #[error("the file holds binary data (a NUL byte at offset {0})")]
    Binary(usize),
    /// Not UTF-8.
    #[error("the file is not UTF-8 text (bad byte at offset {0})")]
    NotText(usize),
    /// The first token is not a valid pid.
    #[error("{0}")]
    BadPid(String),
    /// Only a pid.
    #[error("there is no timestamp after the pid")]
    MissingTimestamp,
    /// The second token is not a valid Unix time.
    #[error("{0}")]
    BadTimestamp(String),
    /// A known `key=value` field has a bad value.
    #[error("field `{key}` has a bad value `{value}`")]
    BadField {
        /// The key.
        key: String,
        /// The value, shortened.
        value: String,
    },
}

/// Shortens untrusted text for a message, keeping it on one line.
fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(40).flat_map(char::escape_debug).collect();
    if text.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// Parses a lock file's contents.
///
/// # Errors
/// [`FormatError`] saying what is wrong; never panics, whatever the bytes.
pub fn parse(bytes: &[u8]) -> Result<Record, FormatError> {
    if bytes.len() > MAX_LEN {
        return Err(FormatError::TooLarge);
    }
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(FormatError::Binary(at));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| FormatError::NotText(e.valid_up_to()))?;
    let mut tokens = text.split_whitespace();
    let pid = parse_pid(tokens.next().ok_or(FormatError::Empty)?)?;
    let timestamp = Timestamp::parse(tokens.next().ok_or(FormatError::MissingTimestamp)?)
        .map_err(FormatError::BadTimestamp)?;
    let mut record = Record {
        pid,
        timestamp,
        ..Record::default()
    };
    for (i, token) in tokens.enumerate() {
        let Some((key, value)) = token.split_once('=') else {
            if i == 0 {
                record.hostname = Some(token.to_owned());
            }
            continue;
        };
        let bad = || FormatError::BadField {
            key: key.to_owned(),
            value: shorten(value),
        };
        let number = || value.parse::<u64>().map_err(|_| bad());
        match key {
            "host" if valid_word(value) => record.hostname = Some(value.to_owned()),
            "boot" if valid_word(value) => record.boot_id = Some(value.to_owned()),
            "nonce" if valid_word(value) => record.nonce = Some(value.to_owned()),
            "start" => record.start_ticks = Some(number()?),
            "companion" => {
                let pid = number()?;
                record.companion = Some(
                    u32::try_from(pid)
                        .ok()
                        .filter(|&p| p != 0 && u64::from(p) <= MAX_PID)
                        .ok_or_else(bad)?,
                );
            }
            "companion_start" => record.companion_start_ticks = Some(number()?),
            "lease_ms" => record.lease_ms = Some(number()?),
            "token" => record.token = Some(number()?),
            "holder" => {
                record.holder = Some(u64::from_str_radix(value, 16).map_err(|_| bad())?);
            }
            "pidns" => record.pid_namespace = Some(number()?),
            "host" | "boot" | "nonce" => return Err(bad()),
            _ => {}
        }
    }
    Ok(record)
}

fn parse_pid(token: &str) -> Result<u32, FormatError> {
    // Shortened for the message only when there is one: every read of a
    // lock parses a pid.
    let shown = || shorten(token);
    if token.starts_with('-') {
        return Err(FormatError::BadPid(format!(
            "pid `{}` is negative",
            shown()
        )));
    }
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FormatError::BadPid(format!(
            "pid `{}` is not a number",
            shown()
        )));
    }
    // pid 0 is accepted: labm8's `write` plants it (its test of `force`
    // does), and labm8 reads it as a live owner. It is judged held, by an
    // owner whose liveness cannot be told (`decide`).
    match token.parse::<u64>() {
        Ok(pid) if pid <= MAX_PID => Ok(pid as u32),
        _ => Err(FormatError::BadPid(format!(
            "pid `{}` is out of range (the largest is {MAX_PID})",
            shown()
        ))),
    }
}

/// The largest pid a lock may name: `pid_t` is a signed 32-bit integer.
pub const MAX_PID: u64 = i32::MAX as u64;

/// Checks the pid of a process a lock is taken for, or a claim is run by:
/// a real process, which a reader can judge.
///
/// # Errors
/// A message when the pid is 0 or beyond [`MAX_PID`].
pub fn check_pid(pid: u32) -> Result<(), String> {
    if pid == 0 {
        Err("pid 0 is not a process".into())
    } else {
        check_recorded_pid(pid)
    }
}

/// Checks a pid a caller asks to record as it is (labm8's static `write`):
/// anything a reader parses, pid 0 included.
///
/// # Errors
/// A message when the pid is beyond [`MAX_PID`].
pub fn check_recorded_pid(pid: u32) -> Result<(), String> {
    if u64::from(pid) > MAX_PID {
        Err(format!(
            "pid {pid} is out of range (the largest is {MAX_PID})"
        ))
    } else {
        Ok(())
    }
}

/// A value we can write as one token: non-empty, printable, no whitespace or `=`.
pub fn valid_word(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 255
        && value.bytes().all(|b| b.is_ascii_graphic() && b != b'=')
}

/// Serializes a record: labm8's `PID TIMESTAMP` line, then the fields we know.
/// Fields that could not be read back (a hostname with spaces) are left out.
pub fn serialize(record: &Record) -> String {
    // Written digit by digit rather than through `fmt`: every acquire
    // serializes a record, and in the sandbox `fmt`'s machinery was a tenth
    // of a lock cycle's guest time.
    let mut out = String::with_capacity(192);
    push_u64(&mut out, u64::from(record.pid));
    out.push(' ');
    push_timestamp(&mut out, record.timestamp);
    out.push('\n');
    let words = [
        ("host", record.hostname.as_deref()),
        ("boot", record.boot_id.as_deref()),
    ];
    for (key, value) in words {
        if let Some(value) = value.filter(|v| valid_word(v)) {
            push_word(&mut out, key, value);
        }
    }
    if let Some(ticks) = record.start_ticks {
        push_number(&mut out, "start", ticks);
    }
    if let Some(ns) = record.pid_namespace {
        push_number(&mut out, "pidns", ns);
    }
    if let Some(nonce) = record.nonce.as_deref().filter(|v| valid_word(v)) {
        push_word(&mut out, "nonce", nonce);
    }
    if let Some(pid) = record.companion {
        push_number(&mut out, "companion", u64::from(pid));
        if let Some(ticks) = record.companion_start_ticks {
            push_number(&mut out, "companion_start", ticks);
        }
    }
    if let Some(tag) = record.holder {
        out.push_str("holder=");
        push_hex16(&mut out, tag);
        out.push('\n');
    }
    if let Some(ms) = record.lease_ms {
        push_number(&mut out, "lease_ms", ms);
    }
    if let Some(token) = record.token {
        push_number(&mut out, "token", token);
    }
    out
}

/// Appends the line `key=value`.
fn push_word(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push('=');
    out.push_str(value);
    out.push('\n');
}

/// Appends the line `key=n`.
fn push_number(out: &mut String, key: &str, n: u64) {
    out.push_str(key);
    out.push('=');
    push_u64(out, n);
    out.push('\n');
}

/// Appends `n` in decimal.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

/// Appends `t` as [`Timestamp`]'s `Display` does: `SECONDS.MICROSECONDS`.
fn push_timestamp(out: &mut String, t: Timestamp) {
    push_u64(out, t.seconds);
    out.push('.');
    let micros = t.nanos / 1000;
    for div in [100_000, 10_000, 1000, 100, 10, 1] {
        out.push(char::from(b'0' + (micros / div % 10) as u8));
    }
}

/// Appends `n` as 16 lower-case hex digits, as `{:016x}` does.
fn push_hex16(out: &mut String, n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(char::from(HEX[(n >> (shift * 4)) as usize & 0xf]));
    }
}

/// `n` as 16 lower-case hex digits: the form of nonces and holder tags.
pub fn hex16(n: u64) -> String {
    let mut out = String::with_capacity(16);
    push_hex16(&mut out, n);
    out
}

/// A short fingerprint of a file's exact bytes (64-bit FNV-1a), used to name
/// the claim that replaces exactly that file.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
