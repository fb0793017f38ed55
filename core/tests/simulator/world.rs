//! The simulated world: the scenario, the directory's names and inodes,
//! the process table on each host, the clock, and the invariants checked
//! after every step.

use std::collections::BTreeMap;
use std::io;

use lockfile_core::format::{self, Record};
use lockfile_core::Timestamp;

use crate::scheduler::{Bounds, Strat};

pub(crate) const LOCK: &str = "x.lock";
pub(crate) const PATH: &str = "/sim/x.lock";
/// The sequence of fencing tokens beside the lock: not a private file.
pub(crate) const TOKEN_FILE: &str = ".x.lock.token";
/// The host every process is on unless a scenario says otherwise.
pub(crate) const HOST: &str = "sim";
/// The user to whom a sticky directory's rule does not apply.
pub(crate) const ROOT: u32 = 0;
pub(crate) const PIDNS: u64 = 4_026_531_836;

/// The lease of every leased handle in the scenarios.
pub(crate) const LEASE_MS: u64 = 1_000;
/// How far a pause moves the clock: past any lease, its 2 s of skew and
/// 1 s of coarse timestamps (`decide::with_lease`), so that every leased
/// record or claim not renewed meanwhile is stale to another host.
pub(crate) const PAUSE_MS: u64 = 5_000;
/// The clock at the start of a schedule (ms after [`EPOCH_S`]): files made
/// before it (an initial lock) are older than any lease.
pub(crate) const START_MS: u64 = 10_000;
pub(crate) const EPOCH_S: u64 = 1_800_000_000;
/// How far the clock moves with each step.
pub(crate) const STEP_MS: u64 = 1;

pub(crate) type Pid = u32;

pub(crate) fn boot_of(host: &str) -> String {
    format!("boot-{host}")
}

pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::new(EPOCH_S + ms / 1000, ((ms % 1000) * 1_000_000) as u32)
}

/// What an actor does, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Acquire {
        replace_stale: bool,
        force: bool,
    },
    /// A step in the critical section (the actor holds the lock throughout):
    /// with a token, a write to storage that fences by token.
    Hold,
    /// Renews the lease; `lost` ends the script.
    Refresh,
    Release {
        force: bool,
    },
    Status,
}

pub(crate) const ACQUIRE: Op = Op::Acquire {
    replace_stale: false,
    force: false,
};
pub(crate) const BREAK: Op = Op::Acquire {
    replace_stale: true,
    force: false,
};
pub(crate) const RELEASE: Op = Op::Release { force: false };

#[derive(Clone, Debug)]
pub(crate) struct ActorSpec {
    pub(crate) name: &'static str,
    /// The process the lock is taken for (`--pid`).
    pub(crate) acting: Pid,
    /// The process running the protocol.
    pub(crate) runner: Pid,
    pub(crate) script: Vec<Op>,
    /// Whether the handle keeps a spare (a library handle) or not (the CLI).
    pub(crate) spare: bool,
    /// The handle's lease (`with_lease`).
    pub(crate) lease: Option<u64>,
    /// Whether the handle asks for tokens (`with_tokens`).
    pub(crate) tokens: bool,
    /// The actor whose end this one waits for (a shell runs `lockfile
    /// release` after `lockfile acquire` has returned, or crashed).
    pub(crate) after: Option<usize>,
    /// The user it runs as: in a sticky directory, only its own files (and
    /// everyone's, for [`ROOT`]) can be replaced or removed.
    pub(crate) user: u32,
}

pub(crate) fn actor(name: &'static str, pid: Pid, script: &[Op]) -> ActorSpec {
    ActorSpec {
        name,
        acting: pid,
        runner: pid,
        script: script.to_vec(),
        spare: false,
        lease: None,
        tokens: false,
        after: None,
        user: ROOT,
    }
}

impl ActorSpec {
    pub(crate) fn leased(self) -> Self {
        ActorSpec {
            lease: Some(LEASE_MS),
            ..self
        }
    }
}

/// The lock at the start of a scenario.
#[derive(Clone, Debug, Default)]
pub(crate) struct Initial {
    pub(crate) owner: Pid,
    pub(crate) lease: Option<u64>,
    pub(crate) token: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    /// Processes alive at the start (every actor's runner is added).
    pub(crate) processes: Vec<Pid>,
    /// Where processes run: a pid not listed here runs on [`HOST`].
    pub(crate) hosts: Vec<(Pid, &'static str)>,
    /// The lock at the start, if any.
    pub(crate) initial: Option<Initial>,
    /// `.NAME.token` at the start, if any.
    pub(crate) token_file: Option<u64>,
    pub(crate) actors: Vec<ActorSpec>,
    /// Processes the scheduler may kill.
    pub(crate) mortal: Vec<Pid>,
    /// The hosts from which, once everyone is dead and every lease has run
    /// out, the lock must be recovered (none listed: [`HOST`]).
    pub(crate) recover_from: Vec<&'static str>,
    /// A broken directory whose `link` replaces an existing name: to check
    /// that the simulator notices a broken protocol.
    pub(crate) faulty_link: bool,
    /// A sticky directory (`/tmp`), where `.NAME.token` at the start is
    /// this user's.
    pub(crate) sticky: Option<u32>,
}

impl Scenario {
    pub(crate) fn host_of(&self, pid: Pid) -> &'static str {
        self.hosts
            .iter()
            .find(|(p, _)| *p == pid)
            .map_or(HOST, |&(_, h)| h)
    }
}

pub(crate) fn start_ticks(pid: Pid) -> u64 {
    u64::from(pid) * 10 + 3
}

pub(crate) fn record_of(pid: Pid, host: &str, init: &Initial, nonce: u64) -> Vec<u8> {
    format::serialize(&Record {
        pid,
        timestamp: Timestamp::new(EPOCH_S, 0),
        hostname: Some(host.into()),
        boot_id: Some(boot_of(host)),
        start_ticks: Some(start_ticks(pid)),
        pid_namespace: Some(PIDNS),
        nonce: Some(format!("{nonce:016x}")),
        lease_ms: init.lease,
        token: init.token,
        ..Record::default()
    })
    .into_bytes()
}

// ---------------------------------------------------------------- the world

#[derive(Debug, Clone)]
pub(crate) struct Inode {
    pub(crate) bytes: Vec<u8>,
    pub(crate) links: u32,
    /// The user who created it.
    pub(crate) owner: u32,
    /// The clock when it was last written or touched.
    pub(crate) modified: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Phase {
    #[default]
    Running,
    Waiting,
    Done,
}

/// How a `link` or `rename` reply goes wrong (NFS: a reply lost and the
/// request retransmitted; a server that lost track of a request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Done, but the retransmission's answer is what the caller sees:
    /// `link` finds the name taken, `rename` finds its source gone.
    ReplyLost,
    /// Done, answered EIO.
    EioDone,
    /// Not done, answered EIO.
    EioNotDone,
}

pub(crate) const FAULTS: [Fault; 3] = [Fault::ReplyLost, Fault::EioDone, Fault::EioNotDone];

#[derive(Debug, Default)]
pub(crate) struct ActorState {
    pub(crate) phase: Phase,
    /// After a successful acquire, until it starts to release or learns
    /// (from a refresh) that it lost the lock.
    pub(crate) believes: bool,
    /// The bytes of the lock this actor read last in its current operation.
    pub(crate) judged: Option<Vec<u8>>,
    /// Whether the current operation is forced.
    pub(crate) forced: bool,
    /// The inode a two-step read or write has open.
    pub(crate) open: Option<usize>,
    /// The step this actor waits to take, for the trace.
    pub(crate) next: String,
    /// Whether that step is a `link` or `rename`, whose reply may go wrong.
    pub(crate) faultable: bool,
    /// The fault the scheduler chose for the step it granted.
    pub(crate) fault: Option<Fault>,
    /// The inode this actor last put at the lock's name, and when (the
    /// world's step count): its lock, while it holds one.
    pub(crate) published: Option<(usize, u64)>,
    /// The record its last publish (in this operation) replaced.
    pub(crate) replaced: Option<Vec<u8>>,
    /// Whether `.NAME.token` existed at its last publish.
    pub(crate) sequence_existed: bool,
    /// The claim file this actor last published (in this operation).
    pub(crate) claim: Option<usize>,
    /// Its name.
    pub(crate) claim_name: Option<String>,
    /// When it last found nobody's claim on that claim file: the first
    /// look of its check before it acts (`claim_stands`).
    pub(crate) checked_at: Option<u64>,
}

/// An acquisition that succeeded: who, when its record was published, and
/// with which token.
#[derive(Debug, Clone)]
pub(crate) struct Acquisition {
    pub(crate) actor: usize,
    pub(crate) at: u64,
    pub(crate) token: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct World {
    pub(crate) names: BTreeMap<String, usize>,
    pub(crate) inodes: Vec<Inode>,
    pub(crate) alive: BTreeMap<Pid, bool>,
    /// The host of every process.
    pub(crate) hosts: BTreeMap<Pid, &'static str>,
    pub(crate) actors: Vec<ActorState>,
    pub(crate) specs: Vec<ActorSpec>,
    pub(crate) granted: Option<usize>,
    /// Set on a violation: every actor stops taking steps.
    pub(crate) abort: bool,
    /// See [`Scenario::faulty_link`].
    pub(crate) faulty_link: bool,
    /// See [`Scenario::sticky`].
    pub(crate) sticky: bool,
    /// Outside any schedule (setting up, recovering): steps run at once.
    pub(crate) solo: bool,
    /// Milliseconds since [`EPOCH_S`]: one [`STEP_MS`] per step, and
    /// [`PAUSE_MS`] when the scheduler pauses everyone.
    pub(crate) clock: u64,
    /// Steps taken, to order publishes.
    pub(crate) steps: u64,
    /// Who chooses, within which bounds, and what was chosen so far.
    pub(crate) strategy: Strat,
    pub(crate) bounds: Bounds,
    pub(crate) mortal: Vec<Pid>,
    pub(crate) current: Option<usize>,
    pub(crate) preemptions: usize,
    pub(crate) kills: usize,
    pub(crate) pauses: usize,
    pub(crate) faults: usize,
    /// The schedule is over (nobody can move, or an invariant broke).
    pub(crate) finished: bool,
    /// The process that held the lock at the start, while it still does:
    /// it holds until its record is removed on its behalf, so a takeover of
    /// its live lock counts as a second holder.
    pub(crate) initial_holder: Option<(Pid, Vec<u8>)>,
    /// When each claim name was last linked: to tell whether a claim on a
    /// claimer's claim came after that claimer's last check.
    pub(crate) claimed_at: BTreeMap<String, u64>,
    /// When `.NAME.token` went backwards, and from what: the documented
    /// token residual (docs/PROTOCOL.md, "Fencing tokens"): a holder paused
    /// between its check of the file and its write, whose lock was taken
    /// over meanwhile, writes its lower token.
    pub(crate) rolled_back: Option<(u64, u64)>,
    /// Every acquisition that succeeded, in the order they returned.
    pub(crate) acquisitions: Vec<Acquisition>,
    /// Storage that refuses writes with a lower token than it has seen: the
    /// highest token it accepted, and from whom.
    pub(crate) fence: Option<(u64, usize)>,
    /// Whether steps are written to `trace`: only when a failing schedule
    /// is run again to be shown (formatting every step costs more than
    /// running it).
    pub(crate) tracing: bool,
    pub(crate) trace: Vec<String>,
    pub(crate) violation: Option<String>,
}

impl World {
    pub(crate) fn runner_dead(&self, actor: usize) -> bool {
        !self.alive[&self.specs[actor].runner]
    }

    pub(crate) fn lock_bytes(&self) -> Option<&[u8]> {
        self.names
            .get(LOCK)
            .map(|&i| self.inodes[i].bytes.as_slice())
    }

    pub(crate) fn new_inode(&mut self, bytes: Vec<u8>, owner: u32) -> usize {
        self.inodes.push(Inode {
            bytes,
            links: 1,
            owner,
            modified: self.clock,
        });
        self.inodes.len() - 1
    }

    /// Whether `actor` may replace or remove what is at `name`: in a
    /// sticky directory, only its owner (or root) may.
    pub(crate) fn may_unlink(&self, actor: usize, name: &str) -> io::Result<()> {
        let user = self.specs[actor].user;
        let owner = self.names.get(name).map(|&i| self.inodes[i].owner);
        match owner {
            Some(owner) if self.sticky && user != ROOT && owner != user => {
                Err(io::ErrorKind::PermissionDenied.into())
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn unlink(&mut self, name: &str) -> Option<usize> {
        let inode = self.names.remove(name)?;
        self.inodes[inode].links -= 1;
        Some(inode)
    }

    pub(crate) fn fail(&mut self, what: String) {
        if self.violation.is_none() {
            self.violation = Some(what);
        }
    }

    pub(crate) fn note(&mut self, what: impl FnOnce() -> String) {
        if self.tracing {
            let line = what();
            self.trace.push(line);
        }
    }

    /// The name a claim on `actor`'s claim takes (`.NAME.break.FP`).
    pub(crate) fn claim_on_claim(&self, actor: usize) -> Option<String> {
        let inode = self.actors[actor].claim?;
        let fp = format::fingerprint(&self.inodes[inode].bytes);
        Some(format!(".{LOCK}.break.{fp:016x}"))
    }

    /// The residual of docs/PROTOCOL.md ("A breaker is delayed after
    /// claiming"): `actor`'s claim expired by its lease, and another host
    /// claimed it (stepped over it) only after `actor` last looked for such
    /// a claim: the check passed, and the act landed late. Stepped over
    /// before that look (the hole b834f7e closed) is not the residual.
    ///
    /// The check looks for a claim on ours first, then reads ours and what
    /// it claimed. A step-over that completes between those looks removes
    /// our claim (and the lock changes), so the check fails; when it read
    /// our claim first, such a step-over passed it, and the simulator found
    /// that.
    fn residual(&self, actor: usize) -> Option<&'static str> {
        let a = &self.actors[actor];
        let (Some(inode), Some(checked), Some(name)) =
            (a.claim, a.checked_at, self.claim_on_claim(actor))
        else {
            return None;
        };
        let claim = &self.inodes[inode];
        let expired = format::parse(&claim.bytes).is_ok_and(|r| {
            r.lease_ms
                .is_some_and(|lease| self.clock > claim.modified + lease + 3_000)
        });
        let stepped = self.claimed_at.get(&name).copied();
        if expired && stepped.is_some_and(|s| s > checked) {
            return Some("its claim expired and was claimed after its check");
        }
        self.residual_other_order(actor)
    }

    /// The same race in the other order: `actor` stepped over the claim of
    /// another actor after that one had checked it, so both passed their
    /// checks, and the other's late act landed first: the lock now holds
    /// the other's record, which `actor` replaces or removes unjudged.
    /// docs/PROTOCOL.md's residual ("both act"); invariant 1 then checks
    /// that the later publisher holds the higher token.
    fn residual_other_order(&self, actor: usize) -> Option<&'static str> {
        let ours = self.actors[actor].claim_name.as_deref()?;
        let stepped = self.claimed_at.get(ours).copied()?;
        let lock = *self.names.get(LOCK)?;
        (0..self.actors.len()).find_map(|x| {
            let other = &self.actors[x];
            let published_now = other.published.is_some_and(|(inode, _)| inode == lock);
            let checked = other.checked_at?;
            (x != actor
                && published_now
                && self.claim_on_claim(x).as_deref() == Some(ours)
                && stepped > checked)
                .then_some(
                    "it stepped over a claim whose claimer had passed its check; that \
                     claimer's act landed first",
                )
        })
    }

    /// Invariant 2: a non-forced removal or replacement of the lock must hit
    /// the record the actor judged, except in the documented residual
    /// (invariant 1 then checks that tokens fence it).
    pub(crate) fn check_judged(&mut self, actor: usize, what: &str) {
        if self.actors[actor].forced {
            return;
        }
        let Some(now) = self.lock_bytes().map(<[u8]>::to_vec) else {
            return;
        };
        if self.actors[actor].judged.as_deref() != Some(now.as_slice()) {
            let judged = self.actors[actor]
                .judged
                .as_deref()
                .map_or("nothing".into(), describe);
            let msg = format!(
                "{} {what} the lock holding {} but had judged {judged}",
                self.specs[actor].name,
                describe(&now),
            );
            if let Some(why) = self.residual(actor) {
                self.note(|| format!("-- the residual: {msg}; {why}"));
            } else {
                self.fail(msg);
            }
        }
    }

    /// The token of the record `actor` published last.
    pub(crate) fn token_of(&self, actor: usize) -> Option<u64> {
        let (inode, _) = self.actors[actor].published?;
        format::parse(&self.inodes[inode].bytes).ok()?.token
    }

    /// Whether `actor` holds a lock whose lease has run out by its own
    /// reckoning (`refresh` would refuse: more than the lease and 1 s of
    /// coarse timestamps since its file was renewed).
    fn lease_ran_out(&self, actor: usize) -> bool {
        let Some((inode, _)) = self.actors[actor].published else {
            return false;
        };
        let file = &self.inodes[inode];
        format::parse(&file.bytes).is_ok_and(|r| {
            r.lease_ms
                .is_some_and(|lease| self.clock > file.modified + lease + 1_000)
        })
    }

    /// Invariants 1 and 3, after every step.
    pub(crate) fn check(&mut self) {
        let holders: Vec<usize> = (0..self.actors.len())
            .filter(|&a| {
                self.actors[a].believes
                    && self.alive[&self.specs[a].acting]
                    && !self.lease_ran_out(a)
            })
            .collect();
        let initial = self
            .initial_holder
            .as_ref()
            .is_some_and(|(pid, _)| self.alive[pid]);
        if holders.len() + usize::from(initial) > 1 && !self.superseded_by_a_higher_token(&holders)
        {
            let mut names: Vec<&str> = holders.iter().map(|&a| self.specs[a].name).collect();
            if initial {
                names.push("the initial owner");
            }
            let tokens: Vec<Option<u64>> = holders.iter().map(|&a| self.token_of(a)).collect();
            let msg = format!("two live holders: {names:?} (tokens {tokens:?})");
            self.fail(msg);
        }
        if let Some(bytes) = self.lock_bytes() {
            if let Err(e) = format::parse(bytes) {
                let msg = format!("the lock is not a complete record ({e}): {bytes:?}");
                self.fail(msg);
            }
        }
    }

    /// The residual of docs/PROTOCOL.md: several holders with unexpired
    /// leases believe they hold the lock, but only one of them is the lock
    /// (the later publisher), with a token above every other's; the others
    /// carry tokens, so fenced storage refuses them, and each learns it lost
    /// at its next refresh (checked where it refreshes).
    fn superseded_by_a_higher_token(&self, holders: &[usize]) -> bool {
        let lock = self.names.get(LOCK).copied();
        let current: Vec<usize> = holders
            .iter()
            .copied()
            .filter(|&a| self.actors[a].published.map(|(i, _)| i) == lock)
            .collect();
        let [winner] = current[..] else {
            return false;
        };
        let Some(top) = self.token_of(winner) else {
            return false;
        };
        holders.iter().all(|&a| {
            a == winner
                || (self.specs[a].lease.is_some() && self.token_of(a).is_some_and(|t| t < top))
        })
    }

    /// Invariant 4, when `actor`'s acquisition succeeds: it has a token if
    /// it must, and tokens increase in the order records were published.
    pub(crate) fn check_acquisition(&mut self, actor: usize) {
        let Some((_, at)) = self.actors[actor].published else {
            return;
        };
        if self
            .acquisitions
            .iter()
            .any(|q| q.actor == actor && q.at == at)
        {
            // Acquiring a lock it holds: a no-op, nothing published.
            return;
        }
        let token = self.token_of(actor);
        let replaced = self.actors[actor]
            .replaced
            .as_deref()
            .and_then(|b| format::parse(b).ok());
        let why = if self.specs[actor].lease.is_some() {
            Some("a leased acquisition")
        } else if replaced.as_ref().is_some_and(|r| r.token.is_some()) {
            Some("a takeover of a record with a token")
        } else if replaced.as_ref().is_some_and(|r| r.lease_ms.is_some()) {
            Some("a takeover of a leased record")
        } else if self.specs[actor].tokens {
            Some("an acquisition that asked for one")
        } else if self.actors[actor].sequence_existed {
            Some("an acquisition of a lock with a sequence (.NAME.token)")
        } else {
            None
        };
        if let (Some(why), None) = (why, token) {
            let msg = format!("{}: {why} has no token", self.specs[actor].name);
            self.fail(msg);
        }
        if let Some(t) = token {
            for q in self.acquisitions.clone() {
                let Some(u) = q.token else { continue };
                let ordered = if q.at < at { u < t } else { u > t };
                // After the file went back from `top`, tokens up to `top`
                // may be issued again: the residual, not a hole.
                let residual = self
                    .rolled_back
                    .is_some_and(|(when, top)| q.at.min(at) < when && t.max(u) <= top);
                if !ordered && residual {
                    self.note(|| {
                        format!("-- the token residual: token {t} issued again after the file went back")
                    });
                } else if !ordered {
                    let msg = format!(
                        "tokens out of publish order: {} published token {u} at step {}, {} \
                         token {t} at step {at}",
                        self.specs[q.actor].name, q.at, self.specs[actor].name
                    );
                    self.fail(msg);
                    break;
                }
            }
        }
        self.acquisitions.push(Acquisition { actor, at, token });
    }

    /// `actor` replaces `.NAME.token` (holding `old`) with `new`: it may go
    /// back only in the documented residual, by a holder that has lost its
    /// lock.
    pub(crate) fn token_file_written(&mut self, actor: usize, old: Option<u64>, new: Option<u64>) {
        let (Some(old), Some(new)) = (old, new) else {
            return;
        };
        if new >= old {
            return;
        }
        let lock = self.names.get(LOCK).copied();
        if self.actors[actor].published.map(|(i, _)| i) != lock {
            self.rolled_back = Some((self.steps, old));
            self.note(|| {
                format!("-- the token residual: .NAME.token goes back from {old} to {new}")
            });
        } else {
            let msg = format!(
                "{} wrote token {new} over {old} in .NAME.token while it holds the lock",
                self.specs[actor].name
            );
            self.fail(msg);
        }
    }

    /// A write to fenced storage by `actor` while it believes it holds the
    /// lock: refused below the highest token seen; two holders writing
    /// under one token is a violation.
    pub(crate) fn write_fenced(&mut self, actor: usize) -> &'static str {
        let Some(t) = self.token_of(actor) else {
            return "no token: unfenced";
        };
        match self.fence {
            Some((top, _)) if t < top => "refused by the fence",
            Some((top, other))
                if t == top
                    && other != actor
                    && self.rolled_back.is_some_and(|(_, high)| t <= high) =>
            {
                // The token residual re-issued a token up to the one whose
                // holder's file write went back: storage that accepts
                // equal tokens takes both (docs/PROTOCOL.md says "up to").
                self.note(|| format!("-- the token residual: token {t} written twice"));
                "accepted twice (the token residual)"
            }
            Some((top, other)) if t == top && other != actor => {
                let msg = format!(
                    "{} and {} both wrote to fenced storage with token {t}",
                    self.specs[other].name, self.specs[actor].name
                );
                self.fail(msg);
                "accepted twice"
            }
            _ => {
                self.fence = Some((t, actor));
                "accepted"
            }
        }
    }

    pub(crate) fn settled(&self) -> bool {
        self.granted.is_none()
            && (0..self.actors.len()).all(|a| {
                self.runner_dead(a) || matches!(self.actors[a].phase, Phase::Waiting | Phase::Done)
            })
    }

    pub(crate) fn runnable(&self, a: usize) -> bool {
        !self.runner_dead(a)
            && self.actors[a].phase == Phase::Waiting
            && self.specs[a]
                .after
                .is_none_or(|b| self.runner_dead(b) || self.actors[b].phase == Phase::Done)
    }
}

/// A short description of a record for traces: `pid 7's record …0003`,
/// with its token.
pub(crate) fn describe(bytes: &[u8]) -> String {
    match format::parse(bytes) {
        Ok(r) => format!(
            "pid {}'s record {}{}",
            r.pid,
            r.nonce.as_deref().map_or("", |n| &n[12..]),
            r.token.map_or(String::new(), |t| format!(" (token {t})"))
        ),
        Err(_) => format!(
            "{} bytes: {:?}",
            bytes.len(),
            String::from_utf8_lossy(bytes)
        ),
    }
}
