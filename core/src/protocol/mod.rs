//! The lock protocol: acquire, release and stale takeover over a directory.
//!
//! Every step that decides ownership is an exclusive creation:
//!
//! - A lock is published by writing a complete temporary file
//!   (`.NAME.PID.NONCE.tmp`) and hard-linking it to `NAME`; the link fails if
//!   `NAME` exists, so of two racers exactly one wins and no reader ever sees
//!   a half-written lock. A cycling handle reuses one such file (its
//!   [`Spare`]), rewriting it only while it has no other link.
//! - A stale lock whose bytes are `C` is replaced only by the process that
//!   creates the claim `.NAME.break.FP` (FP = fingerprint of `C`) exclusively.
//!   The claimer then checks that `NAME` still holds `C` and renames its own
//!   record over it. A claim whose owner died is itself replaced the same
//!   way, by a claim on the claim, so a crash mid-takeover never needs `force`.
//! - A claim whose target is gone can never pass the check, so it is inert
//!   and anyone may sweep it.
//!
//! `world.rs` says what the protocol runs over (the [`Dir`] and [`System`]
//! traits), `outcome.rs` what operations report ([`Error`], [`Status`]).
//! One file per operation: `publish.rs` (fresh, from a spare, or replacing),
//! `acquire.rs` (and labm8's static `write`), `release.rs`, `claim.rs` (the
//! exclusive right to replace or remove a judged record: takeovers and
//! releases for another process), `sweep.rs`, and `names.rs` (private names).
//! docs/PROTOCOL.md gives the whole argument and the residual cases.

use std::borrow::Cow;
use std::io;

use crate::decide::{judge_with, with_holder, with_lease, Cause, Identity, Judgement, Verdict};
use crate::format::{self, FormatError, Record, Timestamp};

/// How many times a read looks again at a lock that changed under it
/// before it reports the error.
const MAX_LOOKS: u32 = 16;

/// Why one look at the lock failed.
enum Looked {
    /// The file changed between finding it and reading it: look again.
    Changed(Error),
    /// Anything else.
    Failed(Error),
}
use Looked::{Changed, Failed};

/// How many times an operation re-reads a lock that changed under it.
const MAX_ATTEMPTS: usize = 16;
/// How many abandoned claims a takeover will step over: each is a breaker
/// that crashed mid-takeover, and a successful takeover clears them all.
const MAX_CHAIN: usize = 32;

mod acquire;
mod claim;
mod names;
mod outcome;
mod publish;
mod refresh;
mod release;
mod survey;
mod sweep;
mod token;
mod world;

use names::{stem, CLAIM_OVERHEAD, TEMP_OVERHEAD};
pub use outcome::{Error, Owner, Refusal, State, Status};
pub use publish::Spare;
pub use survey::{survey, sweep_dir, Survey};
pub use sweep::{Leftover, LeftoverKind};
pub use world::{changed_under_us, Dir, HostIoError, Kind, System};

/// One lock file: `name` in `dir`, shown to people as `path`.
#[derive(Debug)]
pub struct Lock<'a, D, S> {
    dir: &'a D,
    name: &'a str,
    /// What temporary files' names call the lock: its name, or a shortened
    /// form where that would make them too long (see [`stem`]).
    temp_stem: Cow<'a, str>,
    /// The same for claims, which are shorter than temporary files' names.
    claim_stem: Cow<'a, str>,
    path: &'a str,
    sys: &'a S,
    spare: Option<&'a Spare>,
    /// The lease the locks we take record, in milliseconds.
    lease_ms: Option<u64>,
    /// Whether acquisitions issue fencing tokens (see `token.rs`).
    tokens: bool,
    /// The token the record being published carries.
    issued: std::cell::Cell<Option<u64>>,
    /// Whether the lock had a token sequence just after our last publishing
    /// `link`, when that link looked (see `record_token`).
    sequence_seen: std::cell::Cell<Option<bool>>,
    /// The last `link` that failed with EIO or ESTALE and was retried as if
    /// the name were taken: reported, rather than "contended", if the
    /// attempts run out.
    link_failure: std::cell::RefCell<Option<Error>>,
}

impl<'a, D: Dir, S: System> Lock<'a, D, S> {
    /// The lock `name` in `dir`; `path` is how messages name it.
    pub fn new(dir: &'a D, name: &'a str, path: &'a str, sys: &'a S) -> Self {
        Self {
            dir,
            name,
            temp_stem: stem(name, TEMP_OVERHEAD),
            claim_stem: stem(name, CLAIM_OVERHEAD),
            path,
            sys,
            spare: None,
            lease_ms: None,
            tokens: false,
            issued: std::cell::Cell::new(None),
            sequence_seen: std::cell::Cell::new(None),
            link_failure: std::cell::RefCell::new(None),
        }
    }

    /// The same lock, issuing a fencing token with every acquisition (see
    /// [`Lock::token`]). A leased acquisition issues one whatever this says.
    #[must_use]
    pub fn with_tokens(mut self, tokens: bool) -> Self {
        self.tokens = tokens;
        self
    }

    /// Whether acquisitions issue fencing tokens: when asked to, and always
    /// with a lease, since a lease lets another host take over from a holder
    /// that is merely paused, and only a token fences what that holder
    /// writes when it wakes.
    pub(super) fn issues_tokens(&self) -> bool {
        self.tokens || self.lease_ms.is_some()
    }

    /// The same lock, taking locks with a lease of `lease_ms` (see
    /// [`Lock::refresh`]): another host may take a leased lock once it has
    /// not been refreshed for that long. `None`: no lease (the default).
    #[must_use]
    pub fn with_lease(mut self, lease_ms: Option<u64>) -> Self {
        self.lease_ms = lease_ms;
        self
    }

    /// The same lock, publishing from `spare` once it cycles (see [`Spare`]).
    /// Use one `Spare` per lock (directory and name): a spare kept for
    /// another name is discarded, one in another directory is left there.
    #[must_use]
    pub fn with_spare(mut self, spare: &'a Spare) -> Self {
        self.spare = Some(spare);
        self
    }

    /// Reads the lock file.
    ///
    /// # Errors
    /// `NotAFile` for a directory, symlink or FIFO at the path; `Io` when it
    /// cannot be read.
    pub fn load(&self) -> Result<State, Error> {
        self.load_name(self.name)
    }

    fn load_name(&self, name: &str) -> Result<State, Error> {
        let mut changed = 0;
        loop {
            match self.load_once(name) {
                Ok(State::Present { record: Err(_), .. }) if changed == 0 => {
                    // A reader whose open raced a release and a re-acquire from
                    // the same spare may have read the record while it was
                    // rewritten: look again, and call the file malformed only
                    // if it still is.
                    changed += 1;
                }
                Err(Changed(_)) if changed < MAX_LOOKS => changed += 1,
                Err(Changed(e)) | Err(Failed(e)) => return Err(e),
                Ok(state) => return Ok(state),
            }
            self.sys.checkpoint("look-again");
        }
    }

    fn load_once(&self, name: &str) -> Result<State, Looked> {
        // The full path is for messages only: built when one is needed, not
        // on every look (an allocation and a format, slow in a sandbox).
        let path = || self.sibling(name);
        let kind = self.dir.kind(name).map_err(|e| {
            let failed = self.io_error(&path(), "inspect", &e);
            if changed_under_us(&e) {
                Changed(failed)
            } else {
                Failed(failed)
            }
        })?;
        match kind {
            None => Ok(State::Absent),
            Some(Kind::File(len)) if len > format::MAX_LEN as u64 => Ok(State::Present {
                bytes: Vec::new(),
                record: Err(FormatError::TooLarge),
            }),
            Some(Kind::File(_)) => match self.dir.read(name, format::MAX_LEN + 1) {
                Ok(bytes) => {
                    let mut record = format::parse(&bytes);
                    if let Ok(leased) = record.as_mut().map_err(|_| ()) {
                        if leased.lease_ms.is_some() {
                            leased.modified = self.modified(name, &path(), &bytes)?;
                        }
                    }
                    Ok(State::Present { bytes, record })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::Absent),
                // Removed (and perhaps replaced) between our look and our
                // read, as NFS reports it: look again.
                Err(e) if changed_under_us(&e) => Err(Changed(self.io_error(&path(), "read", &e))),
                Err(e) => Err(Failed(self.io_error(&path(), "read", &e))),
            },
            Some(other) => Err(Failed(Error::NotAFile {
                path: path(),
                message: not_a_file(other),
            })),
        }
    }

    /// When the file holding `bytes` at `name` was last modified: read
    /// again with its time, from the same open file. Different bytes mean
    /// it changed meanwhile: look again.
    fn modified(&self, name: &str, path: &str, bytes: &[u8]) -> Result<Option<Timestamp>, Looked> {
        match self.dir.read_modified(name, format::MAX_LEN + 1) {
            Ok((again, modified)) if again == bytes => Ok(modified),
            Ok(_) => Err(Changed(Error::Io {
                path: path.to_owned(),
                message: "the lock kept changing while it was read".into(),
            })),
            Err(e) if changed_under_us(&e) => Err(Changed(self.io_error(path, "read", &e))),
            Err(e) => Err(Failed(self.io_error(path, "read", &e))),
        }
    }

    /// The owner, verdict and reason.
    ///
    /// # Errors
    /// As [`Lock::load`]; a malformed file is a `Malformed` verdict, not an error.
    pub fn status(&self) -> Result<Status, Error> {
        let (owner, judgement) = match self.load()? {
            State::Absent => (
                None,
                Judgement {
                    verdict: Verdict::Unlocked,
                    cause: Cause::NoLockFile,
                    reason: format!("there is no lock file at `{}`", self.path),
                },
            ),
            State::Present { record: Err(e), .. } => (
                None,
                Judgement {
                    verdict: Verdict::Malformed,
                    cause: Cause::Unparsable,
                    reason: format!("{e}; only `force` replaces or removes it"),
                },
            ),
            State::Present {
                record: Ok(record), ..
            } => (Some(Owner::from(&record)), self.judge(&record)),
        };
        Ok(Status {
            path: self.path.to_owned(),
            owner,
            verdict: judgement.verdict,
            cause: judgement.cause,
            reason: judgement.reason,
        })
    }

    /// The recorded owner, `None` when unlocked.
    ///
    /// # Errors
    /// As [`Lock::load`], and `Malformed`.
    pub fn owner(&self) -> Result<Option<Record>, Error> {
        match self.load()? {
            State::Absent => Ok(None),
            State::Present { record, .. } => record.map(Some).map_err(|e| self.malformed(e)),
        }
    }

    fn judge(&self, record: &Record) -> Judgement {
        let judged = judge_with(
            record,
            &self.sys.current(),
            &self.sys.machine(),
            |pid| self.sys.query(pid),
            |ns| self.sys.pid_namespace_alive(ns),
        );
        let judged = with_holder(record, self.sys.holder(), judged);
        // The clock is asked only for a leased record: under WASI it is a
        // call out of the sandbox, on every judgement of the common path.
        match record.lease_ms {
            Some(_) => with_lease(record, self.sys.now(), judged),
            None => judged,
        }
    }

    fn my_record(&self) -> Record {
        own_record(self.sys, self.lease_ms, self.issued.get())
    }

    /// Refuses to act for a process that cannot exist: a lock naming pid 0
    /// could never be released or judged.
    fn check_identity(&self) -> Result<(), Error> {
        self.check_pid("taken for", self.sys.current().pid)
    }

    fn check_pid(&self, role: &str, pid: u32) -> Result<(), Error> {
        format::check_pid(pid).map_err(|problem| Error::InvalidIdentity {
            path: self.path.to_owned(),
            message: format!(
                "the host says the lock is {role} pid {pid}, but {problem}; nothing was written"
            ),
        })
    }

    fn record_for(&self, me: Identity) -> Record {
        record_for(self.sys, me)
    }

    fn sibling(&self, name: &str) -> String {
        match self.path.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{name}"),
            None => name.to_owned(),
        }
    }

    fn malformed(&self, e: FormatError) -> Error {
        Error::Malformed {
            path: self.path.to_owned(),
            message: format!("{e}; it is left as it is (only force replaces or removes it)"),
        }
    }

    /// An I/O error at `file` (the lock, or one of its private files) while
    /// doing `what`: it names the lock, which is what the user gave us, and
    /// the private file only as a detail.
    fn io_error(&self, file: &str, what: &str, e: &io::Error) -> Error {
        let path = self.path.to_owned();
        let words = crate::plain::words(e);
        let message = if file == self.path {
            format!("cannot {what}: {words}")
        } else {
            let name = file.rsplit('/').next().unwrap_or(file);
            format!("cannot {what} (`{name}`): {words}")
        };
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
                Error::Unreachable { path, message }
            }
            io::ErrorKind::PermissionDenied => Error::Denied { path, message },
            _ => Error::Io { path, message },
        }
    }
}

fn not_a_file(kind: Kind) -> String {
    let what = match kind {
        Kind::Directory => "a directory",
        Kind::Symlink => "a symbolic link (lock files are never followed through links)",
        Kind::Other(name) => name,
        Kind::File(_) => "a regular file",
    };
    format!("is {what}, not a lock file; it is left as it is")
}

/// A fresh record naming `me` on this machine, now, with a new nonce.
pub(crate) fn record_for<S: System>(sys: &S, me: Identity) -> Record {
    let machine = sys.machine();
    Record {
        pid: me.pid,
        timestamp: sys.now().to_micros(),
        hostname: machine.hostname,
        boot_id: machine.boot_id,
        start_ticks: me.start_ticks,
        pid_namespace: machine.pid_namespace,
        nonce: Some(format::hex16(sys.random())),
        ..Record::default()
    }
}

/// The record of an acquisition for `sys.current()`: with the command it
/// started (held while either runs), its holder tag, lease and token.
/// Lock files and locks in a store write the same.
pub(crate) fn own_record<S: System>(sys: &S, lease_ms: Option<u64>, token: Option<u64>) -> Record {
    let companion = sys.companion();
    Record {
        companion: companion.map(|c| c.pid),
        companion_start_ticks: companion.and_then(|c| c.start_ticks),
        holder: sys.holder(),
        lease_ms,
        token,
        ..record_for(sys, sys.current())
    }
}
