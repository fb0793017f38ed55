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
//! docs/PROTOCOL.md gives the whole argument and the residual cases.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::io;

use crate::decide::{judge_with, Identity, Judgement, Liveness, Machine, ProcessInfo, Verdict};
use crate::format::{self, FormatError, Record, Timestamp};

/// What is at a name in the lock's directory (never following symlinks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file of this many bytes.
    File(u64),
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// Anything else: FIFO, socket, device. The name says which.
    Other(&'static str),
}

/// The directory that holds a lock. Names are single path components.
/// Implementations never follow a symlink at the final component.
pub trait Dir {
    /// What is at `name`, or `None` when nothing is.
    fn kind(&self, name: &str) -> io::Result<Option<Kind>>;
    /// Up to `limit` bytes of the regular file `name`.
    fn read(&self, name: &str, limit: usize) -> io::Result<Vec<u8>>;
    /// Creates `name` exclusively with `data`; removes it again if writing fails.
    fn create(&self, name: &str, data: &[u8]) -> io::Result<()>;
    /// Overwrites the existing regular file `name` with exactly `data`, but
    /// only if `name` is its one and only link: `Ok(false)`, untouched,
    /// when it is anything else or has other links. The default never
    /// rewrites, so every publish uses a fresh temporary file.
    fn rewrite(&self, _name: &str, _data: &[u8]) -> io::Result<bool> {
        Ok(false)
    }
    /// Hard-links `existing` as `new`; fails with `AlreadyExists` if `new` exists.
    fn link(&self, existing: &str, new: &str) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` atomically.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes the file (or symlink) `name`.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// The names in the directory.
    fn names(&self) -> io::Result<Vec<String>>;
}

/// What the protocol needs from its surroundings besides the directory.
pub trait System {
    /// The process the lock is taken for.
    fn current(&self) -> Identity;
    /// The process running this code: named by claims and temporary files.
    fn runner(&self) -> Identity;
    /// Facts about this machine.
    fn machine(&self) -> Machine;
    /// What is known about `pid`.
    fn query(&self, pid: u32) -> ProcessInfo;
    /// The current time.
    fn now(&self) -> Timestamp;
    /// A random number, for unique names and records.
    fn random(&self) -> u64;
    /// A second process the lock is taken for: the lock stays held while
    /// either runs (`lockfile run` names the command it started).
    fn companion(&self) -> Option<Identity> {
        None
    }
    /// Whether any process on this machine is in the PID namespace with
    /// this inode: `Some(false)` only when every process could be seen and
    /// none is in it; `None` when that cannot be told.
    fn pid_namespace_alive(&self, _inode: u64) -> Option<bool> {
        None
    }
    /// A named point in the protocol, where a test may pause. No effect on results.
    fn checkpoint(&self, _name: &str) {}
}

/// Who holds a lock that could not be taken or released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The lock's path.
    pub path: String,
    /// The recorded owner.
    pub owner: Record,
    /// Why the owner counts as holding it.
    pub judgement: Judgement,
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Another owner holds the lock.
    #[error("cannot acquire `{}`: held by pid {} since {}: {}", .0.path, .0.owner.pid, crate::display_time(.0.owner.timestamp), .0.judgement.reason)]
    UnableToAcquire(Box<Refusal>),
    /// The lock belongs to another owner.
    #[error("cannot release `{}`: held by pid {} since {}: {}", .0.path, .0.owner.pid, crate::display_time(.0.owner.timestamp), .0.judgement.reason)]
    UnableToRelease(Box<Refusal>),
    /// The lock file cannot be parsed.
    #[error("malformed lock file `{path}`: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Not a regular file at the lock path.
    #[error("`{path}` {message}")]
    NotAFile {
        /// The path.
        path: String,
        /// What is there instead.
        message: String,
    },
    /// The path cannot be reached.
    #[error("cannot reach `{path}`: {message}")]
    Unreachable {
        /// The path.
        path: String,
        /// Why.
        message: String,
    },
    /// The file system refused: no permission, or (in a sticky directory
    /// such as `/tmp`) a file that belongs to another user.
    #[error("`{path}`: {message}")]
    Denied {
        /// The path.
        path: String,
        /// What was refused.
        message: String,
    },
    /// The process the lock is taken for, or that runs the protocol, cannot
    /// exist (pid 0): a host bug, refused before anything is written.
    #[error("`{path}`: {message}")]
    InvalidIdentity {
        /// The lock's path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Another I/O error.
    #[error("`{path}`: {message}")]
    Io {
        /// The path.
        path: String,
        /// What failed.
        message: String,
    },
}

/// What is at the lock path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Nothing.
    Absent,
    /// A regular file, its exact bytes and what they say.
    Present {
        /// The bytes (at most [`format::MAX_LEN`]; more makes it malformed).
        bytes: Vec<u8>,
        /// The parsed record, or why it could not be parsed.
        record: Result<Record, FormatError>,
    },
}

/// The state of a lock with its verdict: what `status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The recorded owner; `None` when unlocked or malformed.
    pub owner: Option<Record>,
    /// The verdict and its reason.
    pub judgement: Judgement,
}

/// How many times an operation re-reads a lock that changed under it.
const MAX_ATTEMPTS: usize = 16;
/// How many abandoned claims a takeover will step over: each is a breaker
/// that crashed mid-takeover, and a successful takeover clears them all.
const MAX_CHAIN: usize = 32;

/// A lock handle's retained temporary file: the inode its next lock is
/// published from.
///
/// A fresh temporary file per acquire costs an inode allocation and two
/// directory updates more than the lock itself needs. A handle that releases
/// and re-acquires keeps the temporary file after linking it as the lock:
/// releasing unlinks only the lock's name, and the next acquire rewrites the
/// spare in place and links it again. It is rewritten only while it has no
/// other link, so a published lock is never written to. A handle that never
/// releases never keeps one, so one-shot uses (the CLI) leave nothing behind.
/// The owner of the `Spare` removes the file with [`Spare::discard`] when done.
/// After a crash the file stays until a sweep, which runs after every
/// takeover and whenever a handle starts keeping a spare, removes it like any
/// temporary file of a dead (or recycled) process.
#[derive(Debug, Default)]
pub struct Spare {
    name: RefCell<Option<String>>,
    cycling: Cell<bool>,
}

impl Spare {
    /// Removes the spare file, if any, from `dir`. Best effort.
    pub fn discard(&self, dir: &impl Dir) {
        if let Some(name) = self.name.take() {
            let _ = dir.remove(&name);
        }
    }

    /// The spare file's name, if one is kept.
    pub fn name(&self) -> Option<String> {
        self.name.borrow().clone()
    }
}

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
        }
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
        let state = self.load_once(name)?;
        if matches!(state, State::Present { record: Err(_), .. }) {
            // A reader whose open raced a release and a re-acquire from the
            // same spare may have read the record while it was rewritten:
            // look again, and call the file malformed only if it still is.
            return self.load_once(name);
        }
        Ok(state)
    }

    fn load_once(&self, name: &str) -> Result<State, Error> {
        let path = self.sibling(name);
        let kind = self
            .dir
            .kind(name)
            .map_err(|e| self.io_error(&path, "inspect", &e))?;
        match kind {
            None => Ok(State::Absent),
            Some(Kind::File(len)) if len > format::MAX_LEN as u64 => Ok(State::Present {
                bytes: Vec::new(),
                record: Err(FormatError::TooLarge),
            }),
            Some(Kind::File(_)) => match self.dir.read(name, format::MAX_LEN + 1) {
                Ok(bytes) => {
                    let record = format::parse(&bytes);
                    Ok(State::Present { bytes, record })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::Absent),
                Err(e) => Err(self.io_error(&path, "read", &e)),
            },
            Some(other) => Err(Error::NotAFile {
                path,
                message: not_a_file(other),
            }),
        }
    }

    /// The owner, verdict and reason.
    ///
    /// # Errors
    /// As [`Lock::load`]; a malformed file is a `Malformed` verdict, not an error.
    pub fn status(&self) -> Result<Status, Error> {
        Ok(match self.load()? {
            State::Absent => Status {
                owner: None,
                judgement: Judgement {
                    verdict: Verdict::Unlocked,
                    reason: format!("there is no lock file at `{}`", self.path),
                },
            },
            State::Present { record: Err(e), .. } => Status {
                owner: None,
                judgement: Judgement {
                    verdict: Verdict::Malformed,
                    reason: format!("{e}; only `force` replaces or removes it"),
                },
            },
            State::Present {
                record: Ok(record), ..
            } => Status {
                judgement: self.judge(&record),
                owner: Some(record),
            },
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

    /// Claims the lock for the current process.
    ///
    /// # Errors
    /// `UnableToAcquire` naming the owner; `Malformed` (unless `force`);
    /// `NotAFile`; `Io`.
    pub fn acquire(&self, replace_stale: bool, force: bool) -> Result<(), Error> {
        self.check_identity()?;
        // The common case is a free lock: publish before looking, which saves
        // a `stat`. Whatever is in the way (a lock, a directory, a symlink)
        // makes the link fail, and is then looked at below. So does any other
        // failure: a lock held by someone else is reported as held even where
        // we could not have written one, and a real failure recurs below.
        if !force && self.publish_lock().is_ok() {
            return Ok(());
        }
        for _ in 0..MAX_ATTEMPTS {
            let (bytes, record) = match self.load()? {
                State::Absent => match self.publish_lock() {
                    Ok(()) => return Ok(()),
                    Err(Published::Exists) => continue,
                    Err(Published::Failed(e)) => return Err(e),
                },
                State::Present { bytes, record } => (bytes, record),
            };
            if force {
                return self.replace(&self.my_record());
            }
            let record = record.map_err(|e| self.malformed(e))?;
            let judgement = self.judge(&record);
            match judgement.verdict {
                Verdict::OwnedBySelf => return Ok(()),
                Verdict::Stale if replace_stale => {
                    if self.take_over(bytes)? {
                        return Ok(());
                    }
                }
                _ => {
                    return Err(Error::UnableToAcquire(Box::new(Refusal {
                        path: self.path.to_owned(),
                        owner: record,
                        judgement,
                    })))
                }
            }
        }
        Err(Error::Io {
            path: self.path.to_owned(),
            message: format!(
                "the lock changed hands {MAX_ATTEMPTS} times while acquiring it; giving up"
            ),
        })
    }

    /// Releases the lock.
    ///
    /// # Errors
    /// `UnableToRelease` naming the owner; `Malformed` (unless `force`);
    /// `NotAFile`; `Io`.
    pub fn release(&self, force: bool) -> Result<(), Error> {
        self.check_identity()?;
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
                return Err(Error::UnableToRelease(Box::new(Refusal {
                    path: self.path.to_owned(),
                    owner: record,
                    judgement,
                })));
            }
            if self.runs_in_owner() {
                // Nobody replaces a live owner's lock without `force`, and the
                // owner is alive for as long as this code runs: remove it.
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
            let removed = self.remove_lock();
            self.settle(&claim, removed.is_ok());
            // A release killed while it held a claim left it (and its
            // temporary file) behind; one-shot releasers clear such leftovers.
            self.sweep();
            return removed;
        }
        Err(Error::Io {
            path: self.path.to_owned(),
            message: format!(
                "the lock changed hands {MAX_ATTEMPTS} times while releasing it; giving up"
            ),
        })
    }

    /// Whether the process the lock is taken for is the one running this code.
    fn runs_in_owner(&self) -> bool {
        self.sys.current() == self.sys.runner()
    }

    /// Unlinks the lock; a handle that keeps a spare starts cycling.
    fn remove_lock(&self) -> Result<(), Error> {
        match self.dir.remove(self.name) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(self.io_error(self.path, "remove", &e))
            }
            _ => {
                if let Some(spare) = self.spare {
                    spare.cycling.set(true);
                }
                Ok(())
            }
        }
    }

    /// labm8's static `write`: plants `PID TIMESTAMP` as given, atomically
    /// replacing a regular file at the path.
    ///
    /// # Errors
    /// `NotAFile` for anything but a regular file at the path; `Io`.
    pub fn write(&self, pid: u32, timestamp: Timestamp) -> Result<(), Error> {
        format::check_pid(pid).map_err(|message| Error::Io {
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
    fn load_kind_only(&self) -> Result<(), Error> {
        match self.dir.kind(self.name) {
            Ok(None | Some(Kind::File(_))) => Ok(()),
            Ok(Some(other)) => Err(Error::NotAFile {
                path: self.path.to_owned(),
                message: not_a_file(other),
            }),
            Err(e) => Err(self.io_error(self.path, "inspect", &e)),
        }
    }

    fn judge(&self, record: &Record) -> Judgement {
        judge_with(
            record,
            &self.sys.current(),
            &self.sys.machine(),
            |pid| self.sys.query(pid),
            |ns| self.sys.pid_namespace_alive(ns),
        )
    }

    fn my_record(&self) -> Record {
        let companion = self.sys.companion();
        Record {
            companion: companion.map(|c| c.pid),
            companion_start_ticks: companion.and_then(|c| c.start_ticks),
            ..self.record_for(self.sys.current())
        }
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
        let machine = self.sys.machine();
        Record {
            pid: me.pid,
            timestamp: self.sys.now().to_micros(),
            hostname: machine.hostname,
            boot_id: machine.boot_id,
            start_ticks: me.start_ticks,
            pid_namespace: machine.pid_namespace,
            nonce: Some(format!("{:016x}", self.sys.random())),
            ..Record::default()
        }
    }

    /// Writes `bytes` to a fresh temporary file beside the lock.
    fn write_temp(&self, bytes: &[u8]) -> Result<String, Error> {
        let temp = format!(
            ".{}.{}.{:016x}.tmp",
            self.temp_stem,
            self.sys.runner().pid,
            self.sys.random()
        );
        match self.dir.create(&temp, bytes) {
            Ok(()) => Ok(temp),
            Err(e) => {
                let _ = self.dir.remove(&temp);
                Err(self.io_error(&self.sibling(&temp), "create a temporary lock file", &e))
            }
        }
    }

    /// Publishes our record as the lock if nothing is there, from the spare
    /// when this handle keeps one.
    fn publish_lock(&self) -> Result<(), Published> {
        let record = format::serialize(&self.my_record());
        let Some(spare) = self.spare.filter(|s| s.cycling.get()) else {
            return self.publish(self.name, record.as_bytes(), None);
        };
        if let Some(name) = spare.name.take() {
            // A spare kept for another lock name is not ours to publish here;
            // one still linked as the lock (we hold it and acquire again) or
            // no longer ours to write is refused by `rewrite`. Either way,
            // drop its name, keep the file's other links, start a fresh spare.
            if !self.is_temp_name(&name)
                || !matches!(self.dir.rewrite(&name, record.as_bytes()), Ok(true))
            {
                let _ = self.dir.remove(&name);
            } else {
                self.sys.checkpoint("before-publish");
                match self.dir.link(&name, self.name) {
                    // Removed under us (a sweeper that cannot see our pid):
                    // publish afresh below.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    linked => {
                        spare.name.replace(Some(name));
                        return self.linked(self.name, linked);
                    }
                }
            }
        }
        self.publish(self.name, record.as_bytes(), Some(spare))
    }

    /// Whether `name` is one of our temporary files' names for this lock.
    fn is_temp_name(&self, name: &str) -> bool {
        name.strip_prefix('.')
            .and_then(|rest| rest.strip_prefix(&*self.temp_stem))
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| temp_owner(rest).is_some())
    }

    /// Publishes `bytes` at `name` only if nothing is there, from a fresh
    /// temporary file, which `keep` retains as its spare (else it is removed).
    fn publish(&self, name: &str, bytes: &[u8], keep: Option<&Spare>) -> Result<(), Published> {
        let temp = self.write_temp(bytes).map_err(Published::Failed)?;
        self.sys.checkpoint("before-publish");
        let linked = self.dir.link(&temp, name);
        match keep {
            Some(spare) => {
                spare.name.replace(Some(temp));
                // A handle starts keeping a file beside the lock: first clear
                // away what dead processes' handles kept, which no takeover
                // may ever sweep.
                self.sweep();
            }
            None => {
                let _ = self.dir.remove(&temp);
            }
        }
        self.linked(name, linked)
    }

    fn linked(&self, name: &str, linked: io::Result<()>) -> Result<(), Published> {
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Published::Exists),
            Err(e) => Err(Published::Failed(self.io_error(
                &self.sibling(name),
                "link the lock file into place",
                &e,
            ))),
        }
    }

    /// Puts `record` at the lock path whatever is there (a regular file).
    fn replace(&self, record: &Record) -> Result<(), Error> {
        let temp = self.write_temp(format::serialize(record).as_bytes())?;
        self.sys.checkpoint("before-publish");
        self.dir.rename(&temp, self.name).map_err(|e| {
            let _ = self.dir.remove(&temp);
            self.io_error(self.path, "replace", &e)
        })
    }

    /// Replaces the stale lock whose bytes are `stale`. `Ok(false)` when the
    /// lock changed meanwhile and the caller should look again.
    fn take_over(&self, stale: Vec<u8>) -> Result<bool, Error> {
        self.sys.checkpoint("after-judge");
        let Some(claim) = self.claim(stale, Purpose::TakeOver)? else {
            self.sweep();
            return Ok(false);
        };
        let result = self.replace(&self.my_record());
        self.settle(&claim, result.is_ok());
        if result.is_ok() {
            self.sweep();
        }
        result.map(|()| true)
    }

    /// Claims the exclusive right to replace or remove the record whose
    /// bytes are `target` (the lock, as judged), stepping over claims that
    /// crashed breakers abandoned, and checks that nothing changed meanwhile.
    /// `None` when the lock, or a claim in the chain, changed: look again.
    ///
    /// While the claim stands, its runner (this process) is alive, so nobody
    /// else can claim `target`, and without a claim nobody replaces or removes
    /// it (except `force`): whatever happens to `target`'s owner, the record
    /// stays the one judged until the claimer acts on it.
    fn claim(&self, target: Vec<u8>, purpose: Purpose) -> Result<Option<Claim>, Error> {
        // A claim names its runner, whose death is what frees it: a claim
        // naming no process could never be judged.
        let runner = self.sys.runner().pid;
        if format::check_pid(runner).is_err() {
            return Err(Error::InvalidIdentity {
                path: self.path.to_owned(),
                message: format!(
                    "this process does not know its own pid (the host says {runner}), which a \
                     claim must record (to replace a stale lock, or to release one for another \
                     process); nothing was written (under `wasmtime run`, add \
                     `--dir /proc::/proc`; or use force)"
                ),
            });
        }
        // chain[0] is the lock; chain[i + 1] an abandoned claim on chain[i].
        let mut chain: Vec<(String, Vec<u8>)> = vec![(self.name.to_owned(), target)];
        let mut claim_record = self.record_for(self.sys.runner());
        let name = loop {
            let Some((_, target)) = chain.last() else {
                return Ok(None);
            };
            if chain.len() > MAX_CHAIN {
                return Err(Error::Io {
                    path: self.path.to_owned(),
                    message: format!(
                        "{MAX_CHAIN} abandoned takeover claims stand in the way; \
                         remove the `.{}.break.*` files or use force",
                        self.claim_stem
                    ),
                });
            }
            let name = self.claim_name(target);
            match self.publish(&name, format::serialize(&claim_record).as_bytes(), None) {
                Ok(()) => break name,
                Err(Published::Failed(e)) => return Err(e),
                Err(Published::Exists) => {}
            }
            let bytes = match self.load_name(&name)? {
                State::Absent => return Ok(None),
                State::Present { record: Err(e), .. } => {
                    return Err(Error::Malformed {
                        path: self.sibling(&name),
                        message: format!("{e} (a takeover claim; remove it by hand)"),
                    })
                }
                State::Present {
                    bytes,
                    record: Ok(claimer),
                } => {
                    let judgement = self.judge(&claimer);
                    if judgement.verdict != Verdict::Stale {
                        let refusal = Box::new(Refusal {
                            path: self.path.to_owned(),
                            judgement: Judgement {
                                verdict: judgement.verdict,
                                reason: format!(
                                    "pid {} is {} ({})",
                                    claimer.pid,
                                    match purpose {
                                        Purpose::TakeOver =>
                                            "replacing the stale lock right now, or releasing it",
                                        Purpose::Release =>
                                            "releasing or replacing the lock right now; try again",
                                    },
                                    judgement.reason
                                ),
                            },
                            owner: claimer,
                        });
                        return Err(match purpose {
                            Purpose::TakeOver => Error::UnableToAcquire(refusal),
                            Purpose::Release => Error::UnableToRelease(refusal),
                        });
                    }
                    bytes
                }
            };
            chain.push((name, bytes));
            // A fresh nonce: our claim on the next link must differ from any other.
            claim_record.nonce = Some(format!("{:016x}", self.sys.random()));
        };
        let claim = Claim { name, chain };
        self.sys.checkpoint("after-claim");
        let intact = claim.chain.iter().all(|(name, bytes)| {
            matches!(self.load_name(name), Ok(State::Present { bytes: ref now, .. }) if now == bytes)
        });
        if intact {
            Ok(Some(claim))
        } else {
            self.settle(&claim, false);
            Ok(None)
        }
    }

    /// Removes a claim after its claimer acted (`acted`: the lock is
    /// replaced or removed) or gave up.
    fn settle(&self, claim: &Claim, acted: bool) {
        // Oldest first: once the lock is replaced each claim's target is gone,
        // so each is inert by the time it is removed.
        if acted {
            for (name, _) in &claim.chain[1..] {
                let _ = self.dir.remove(name);
            }
        }
        let _ = self.dir.remove(&claim.name);
    }

    fn claim_name(&self, target: &[u8]) -> String {
        format!(
            ".{}.break.{:016x}",
            self.claim_stem,
            format::fingerprint(target)
        )
    }

    /// Removes what crashed processes left beside this lock: claims whose
    /// target is gone and temporary files (spares included) of dead or
    /// recycled processes. Best effort; errors are ignored. Runs by itself
    /// after every takeover and when a handle starts keeping a spare.
    pub fn sweep(&self) {
        let Ok(names) = self.dir.names() else {
            return;
        };
        let claim_prefix = format!(".{}.break.", self.claim_stem);
        let temp_prefix = format!(".{}.", self.temp_stem);
        // Each claim with its target's fingerprint and its own bytes'.
        let claims: Vec<(&str, Option<u64>, Option<u64>)> = names
            .iter()
            .filter_map(|name| {
                let target = name.strip_prefix(&claim_prefix)?;
                let own = match self.load_name(name) {
                    Ok(State::Present { bytes, .. }) => Some(format::fingerprint(&bytes)),
                    _ => None,
                };
                Some((name.as_str(), u64::from_str_radix(target, 16).ok(), own))
            })
            .collect();
        // A claim is live while its target is: the lock, or a live claim (a
        // claim on an abandoned claim). Every other claim can never pass the
        // check of its chain again.
        let mut live = Vec::new();
        if !claims.is_empty() {
            if let Ok(State::Present { bytes, .. }) = self.load() {
                live.push(format::fingerprint(&bytes));
            }
        }
        loop {
            let grown = claims
                .iter()
                .filter(|(_, target, own)| {
                    target.is_some_and(|t| live.contains(&t))
                        && own.is_some_and(|o| !live.contains(&o))
                })
                .filter_map(|(_, _, own)| *own)
                .collect::<Vec<_>>();
            if grown.is_empty() {
                break;
            }
            live.extend(grown);
        }
        for (name, target, _) in &claims {
            if target.is_some_and(|t| !live.contains(&t)) {
                let _ = self.dir.remove(name);
            }
        }
        for name in &names {
            let Some(pid) = name.strip_prefix(&temp_prefix).and_then(temp_owner) else {
                continue;
            };
            let record = match self.load_name(name) {
                Ok(State::Present { record: Ok(r), .. }) => Some(r),
                _ => None,
            };
            // Judged without asking about any pid: a temp file written on
            // another host or in a live namespace elsewhere names a pid we
            // cannot see, so it is left alone; one from an earlier boot or an
            // ended namespace belongs to a process that is gone.
            let verdict = record.as_ref().map(|r| {
                judge_with(
                    r,
                    &self.sys.current(),
                    &self.sys.machine(),
                    |_| ProcessInfo::UNKNOWN,
                    |ns| self.sys.pid_namespace_alive(ns),
                )
                .verdict
            });
            match verdict {
                Some(Verdict::Foreign) => continue,
                Some(Verdict::Stale) => {
                    let _ = self.dir.remove(name);
                    continue;
                }
                _ => {}
            }
            let runner = self.sys.query(pid);
            // A handle's spare lives as long as its process, so its pid
            // may have been recycled: the record's start time tells.
            let recycled = record.as_ref().is_some_and(|r| {
                r.pid == pid
                    && matches!((r.start_ticks, runner.start_ticks),
                                (Some(then), Some(now)) if then != now)
            });
            if runner.liveness == Liveness::Dead || recycled {
                let _ = self.dir.remove(name);
            }
        }
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

    fn io_error(&self, path: &str, what: &str, e: &io::Error) -> Error {
        let path = path.to_owned();
        let message = format!("cannot {what}: {e}");
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
                Error::Unreachable { path, message }
            }
            io::ErrorKind::PermissionDenied => Error::Denied { path, message },
            _ => Error::Io { path, message },
        }
    }
}

/// What a claim is for: it decides which refusal a live rival's claim gives.
#[derive(Clone, Copy)]
enum Purpose {
    TakeOver,
    Release,
}

/// A standing claim: its name, and the chain of records it was verified
/// against (`chain[0]` is the lock, the rest abandoned claims).
struct Claim {
    name: String,
    chain: Vec<(String, Vec<u8>)>,
}

/// Why `publish` did not publish.
enum Published {
    Exists,
    Failed(Error),
}

/// The longest name a file system takes for one path component (Linux's
/// NAME_MAX, and that of every common file system).
const NAME_MAX: usize = 255;
/// How much longer than its stem a temporary file's name is at most:
/// `.STEM.4294967295.0123456789abcdef.tmp`.
const TEMP_OVERHEAD: usize = ".".len() + ".4294967295.".len() + 16 + ".tmp".len();
/// How much longer than its stem a claim's name is: `.STEM.break.0123456789abcdef`.
const CLAIM_OVERHEAD: usize = ".".len() + ".break.".len() + 16;

/// The stem of a lock's private names of `overhead` bytes more than it: the
/// name itself when they then fit in [`NAME_MAX`] bytes (so claims are named
/// as by earlier versions wherever those could name them at all); otherwise
/// as much of the name as fits beside the longest overhead, `~`, and a hash
/// of the whole name, so that every process derives the same private names
/// for the same lock, and sweeps recognise them.
fn stem(name: &str, overhead: usize) -> Cow<'_, str> {
    if name.len() + overhead <= NAME_MAX {
        return Cow::Borrowed(name);
    }
    let room = NAME_MAX - TEMP_OVERHEAD;
    let mut keep = room - "~".len() - 16;
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    Cow::Owned(format!(
        "{}~{:016x}",
        &name[..keep],
        format::fingerprint(name.as_bytes())
    ))
}

/// The pid in a temporary file's name (`PID.NONCE.tmp`).
fn temp_owner(rest: &str) -> Option<u32> {
    let inner = rest.strip_suffix(".tmp")?;
    let (pid, nonce) = inner.split_once('.')?;
    (nonce.len() == 16).then_some(())?;
    pid.parse().ok()
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
