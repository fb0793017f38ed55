//! Claims: the exclusive right to replace or remove one judged record.
//! A takeover replaces a stale lock under a claim; a release for another
//! process removes a lock under one.
use super::publish::Published;
use super::{Dir, Error, Lock, Refusal, State, System, MAX_CHAIN};
use crate::decide::{Cause, Judgement, Verdict};
use crate::format::{self, Record};

/// What a claim is for: it decides which refusal a live rival's claim gives.
#[derive(Clone, Copy)]
pub(super) enum Purpose {
    TakeOver,
    Release,
}

/// A standing claim: its name, and the chain of records it was verified
/// against (`chain[0]` is the lock, the rest abandoned claims).
pub(super) struct Claim {
    name: String,
    /// The claim file's bytes, as we published them.
    bytes: Vec<u8>,
    chain: Vec<(String, Vec<u8>)>,
}

impl Claim {
    /// Whether claiming meant stepping over claims that dead processes
    /// abandoned: evidence of a crash mid-way, which may have left files.
    pub(super) fn stepped_over_abandoned(&self) -> bool {
        self.chain.len() > 1
    }
}

impl<'a, D: Dir, S: System> Lock<'a, D, S> {
    /// Replaces the stale lock whose bytes are `stale`. `Ok(false)` when the
    /// lock changed meanwhile and the caller should look again.
    pub(super) fn take_over(&self, stale: Vec<u8>) -> Result<bool, Error> {
        self.sys.checkpoint("after-judge");
        let Some(claim) = self.claim(stale, Purpose::TakeOver)? else {
            self.sweep();
            return Ok(false);
        };
        match self.replace_claimed(&self.my_record(), &claim) {
            Ok(true) => {
                self.settle(&claim, true);
                self.sweep();
                Ok(true)
            }
            // Our claim is gone: the name may be another claimer's now
            // (claims on the same record share it), so nothing is removed.
            Ok(false) => Ok(false),
            Err(e) => {
                self.settle(&claim, false);
                Err(e)
            }
        }
    }

    /// Whether our claim still stands: the file is ours, byte for byte, and
    /// nobody has claimed it. A claim on a leased record expires with that
    /// lease, and another host may then step over it: it claims our claim
    /// first (`.STEM.break.FP` of our claim's bytes), acts, and only then
    /// removes ours. A claimer paused that long must not act on what it
    /// claimed. An error reading either is an error, not a verdict.
    ///
    /// # Errors
    /// As [`Lock::load_name`].
    ///
    /// The claim on ours is looked for first, and having seen it at all
    /// counts: the stepper removes our claim before its own, so a step-over
    /// that completes between the two looks leaves ours gone, and one that
    /// completes during the first leaves that look having seen its claim.
    /// (Reading ours first, a whole step-over fitted between the looks.)
    pub(super) fn claim_stands(&self, claim: &Claim) -> Result<bool, Error> {
        let on_ours = self.claim_name(&claim.bytes);
        let claimed = self
            .dir
            .kind(&on_ours)
            .map_err(|e| self.io_error(&self.sibling(&on_ours), "inspect", &e))?
            .is_some();
        let mut stands = !claimed && self.holds_bytes(&claim.name, &claim.bytes)?;
        // And what it claimed is still what we judged: the lock, and each
        // abandoned claim we stepped over. A claimer whose claim we stepped
        // over, paused past its check, may have acted meanwhile (the
        // documented residual); then the lock is no longer what we judged,
        // and acting on it would undo what that claimer did without ever
        // judging it.
        for (name, bytes) in &claim.chain {
            if !stands {
                break;
            }
            stands = self.holds_bytes(name, bytes)?;
        }
        // For tests: a pause here is the residual window (docs/PROTOCOL.md).
        self.sys.checkpoint("after-claim-check");
        Ok(stands)
    }

    /// Whether `name` holds exactly `bytes`.
    fn holds_bytes(&self, name: &str, bytes: &[u8]) -> Result<bool, Error> {
        Ok(match self.load_name(name)? {
            State::Present { bytes: now, .. } => now == bytes,
            State::Absent => false,
        })
    }

    /// Replaces the lock with `record` if `claim` still stands just before
    /// the rename; `false` (nothing done) if it does not.
    pub(super) fn replace_claimed(&self, record: &Record, claim: &Claim) -> Result<bool, Error> {
        let temp = self.write_temp(format::serialize(record).as_bytes())?;
        self.sys.checkpoint("before-publish");
        let stands = self.claim_stands(claim).inspect_err(|_| {
            let _ = self.dir.remove(&temp);
        })?;
        if !stands {
            let _ = self.dir.remove(&temp);
            return Ok(false);
        }
        self.dir.rename(&temp, self.name).map_err(|e| {
            let _ = self.dir.remove(&temp);
            self.io_error(self.path, "replace", &e)
        })?;
        Ok(true)
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
    pub(super) fn claim(&self, target: Vec<u8>, purpose: Purpose) -> Result<Option<Claim>, Error> {
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
        // A claim abandoned by a crashed host is foreign, and only a lease
        // lets another host step over it: the claimer's own, else that of the
        // record it claims (a release for a leased lock has no lease of its
        // own, and its claim must not outlive the lock's).
        let lease_ms = self
            .lease_ms
            .or_else(|| format::parse(&target).ok().and_then(|r| r.lease_ms));
        // chain[0] is the lock; chain[i + 1] an abandoned claim on chain[i].
        let mut chain: Vec<(String, Vec<u8>)> = vec![(self.name.to_owned(), target)];
        let mut claim_record = Record {
            lease_ms,
            ..self.record_for(self.sys.runner())
        };
        let (name, bytes) = loop {
            let Some((_, target)) = chain.last() else {
                return Ok(None);
            };
            if chain.len() > MAX_CHAIN {
                return Err(Error::Contended {
                    path: self.path.to_owned(),
                    message: format!(
                        "{MAX_CHAIN} abandoned takeover claims stand in the way; \
                         remove the `.{}.break.*` files or use force",
                        self.claim_stem
                    ),
                });
            }
            let name = self.claim_name(target);
            let ours = format::serialize(&claim_record).into_bytes();
            match self.publish(&name, &ours, None) {
                Ok(()) => break (name, ours),
                Err(Published::Failed(e)) => return Err(e),
                Err(Published::Exists) => {}
            }
            let bytes = match self.load_name(&name)? {
                // Our own claim, linked although the link reported failure
                // (a lost reply, or EIO over NFS, with the read that should
                // have told us failing too).
                State::Present { bytes, .. } if bytes == ours => break (name, ours),
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
                        let refusal = Box::new(Refusal::new(
                            self.path,
                            &claimer,
                            Judgement {
                                verdict: judgement.verdict,
                                cause: Cause::BeingReplaced,
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
                        ));
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
            claim_record.nonce = Some(format::hex16(self.sys.random()));
        };
        let claim = Claim { name, bytes, chain };
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
    pub(super) fn settle(&self, claim: &Claim, acted: bool) {
        // Oldest first: once the lock is replaced each claim's target is gone,
        // so each is inert by the time it is removed.
        if acted {
            for (name, _) in &claim.chain[1..] {
                let _ = self.dir.remove(name);
            }
        }
        let _ = self.dir.remove(&claim.name);
    }

    pub(super) fn claim_name(&self, target: &[u8]) -> String {
        format!(
            ".{}.break.{:016x}",
            self.claim_stem,
            format::fingerprint(target)
        )
    }
}
