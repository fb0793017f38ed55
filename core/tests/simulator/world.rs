//! The simulated world: the scenario, the directory's names and inodes,
//! the process table, and the invariants checked after every step.

use std::collections::BTreeMap;

use lockfile_core::format::{self, Record};
use lockfile_core::Timestamp;

use crate::scheduler::{Bounds, Strat};

pub(crate) const LOCK: &str = "x.lock";
pub(crate) const PATH: &str = "/sim/x.lock";
pub(crate) const HOST: &str = "sim";
pub(crate) const BOOT: &str = "boot-1";
pub(crate) const PIDNS: u64 = 4_026_531_836;

pub(crate) type Pid = u32;

/// What an actor does, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Acquire {
        replace_stale: bool,
        force: bool,
    },
    /// A step in the critical section (the actor holds the lock throughout).
    Hold,
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
}

pub(crate) fn actor(name: &'static str, pid: Pid, script: &[Op]) -> ActorSpec {
    ActorSpec {
        name,
        acting: pid,
        runner: pid,
        script: script.to_vec(),
        spare: false,
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    /// Processes alive at the start (every actor's runner is added).
    pub(crate) processes: Vec<Pid>,
    /// The lock at the start, if any: the record of this pid.
    pub(crate) initial_owner: Option<Pid>,
    pub(crate) actors: Vec<ActorSpec>,
    /// Processes the scheduler may kill.
    pub(crate) mortal: Vec<Pid>,
    /// A broken directory whose `link` replaces an existing name: to check
    /// that the simulator notices a broken protocol.
    pub(crate) faulty_link: bool,
}

pub(crate) fn start_ticks(pid: Pid) -> u64 {
    u64::from(pid) * 10 + 3
}

pub(crate) fn record_of(pid: Pid, nonce: u64) -> Vec<u8> {
    format::serialize(&Record {
        pid,
        timestamp: Timestamp::new(1_800_000_000, 0),
        hostname: Some(HOST.into()),
        boot_id: Some(BOOT.into()),
        start_ticks: Some(start_ticks(pid)),
        pid_namespace: Some(PIDNS),
        nonce: Some(format!("{nonce:016x}")),
        ..Record::default()
    })
    .into_bytes()
}

// ---------------------------------------------------------------- the world

#[derive(Debug, Clone)]
pub(crate) struct Inode {
    pub(crate) bytes: Vec<u8>,
    pub(crate) links: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    Waiting,
    Done,
}

#[derive(Debug)]
pub(crate) struct ActorState {
    pub(crate) phase: Phase,
    /// After a successful acquire, until it starts to release.
    pub(crate) believes: bool,
    /// The bytes of the lock this actor read last in its current operation.
    pub(crate) judged: Option<Vec<u8>>,
    /// Whether the current operation is forced.
    pub(crate) forced: bool,
    /// The inode a two-step read or write has open.
    pub(crate) open: Option<usize>,
    /// The step this actor waits to take, for the trace.
    pub(crate) next: String,
}

#[derive(Debug)]
pub(crate) struct World {
    pub(crate) names: BTreeMap<String, usize>,
    pub(crate) inodes: Vec<Inode>,
    pub(crate) alive: BTreeMap<Pid, bool>,
    pub(crate) actors: Vec<ActorState>,
    pub(crate) specs: Vec<ActorSpec>,
    pub(crate) granted: Option<usize>,
    /// Set on a violation: every actor stops taking steps.
    pub(crate) abort: bool,
    /// See [`Scenario::faulty_link`].
    pub(crate) faulty_link: bool,
    /// Outside any schedule (setting up, recovering): steps run at once.
    pub(crate) solo: bool,
    pub(crate) clock: u64,
    /// Who chooses, within which bounds, and what was chosen so far.
    pub(crate) strategy: Strat,
    pub(crate) bounds: Bounds,
    pub(crate) mortal: Vec<Pid>,
    pub(crate) current: Option<usize>,
    pub(crate) preemptions: usize,
    pub(crate) kills: usize,
    /// The schedule is over (nobody can move, or an invariant broke).
    pub(crate) finished: bool,
    /// The process that held the lock at the start, while it still does:
    /// it holds until its record is removed on its behalf, so a takeover of
    /// its live lock counts as a second holder.
    pub(crate) initial_holder: Option<(Pid, Vec<u8>)>,
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

    pub(crate) fn new_inode(&mut self, bytes: Vec<u8>) -> usize {
        self.inodes.push(Inode { bytes, links: 1 });
        self.inodes.len() - 1
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

    /// Invariant 2: a non-forced removal or replacement of the lock must hit
    /// the record the actor judged.
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
            self.fail(msg);
        }
    }

    /// Invariants 1 and 3, after every step.
    pub(crate) fn check(&mut self) {
        let holders: Vec<&str> = self
            .actors
            .iter()
            .zip(&self.specs)
            .filter(|(a, s)| a.believes && self.alive[&s.acting])
            .map(|(_, s)| s.name)
            .collect();
        let mut holders = holders;
        if let Some((pid, _)) = &self.initial_holder {
            if self.alive[pid] {
                holders.push("the initial owner");
            }
        }
        if holders.len() > 1 {
            let msg = format!("two live holders: {holders:?}");
            self.fail(msg);
        }
        if let Some(bytes) = self.lock_bytes() {
            if let Err(e) = format::parse(bytes) {
                let msg = format!("the lock is not a complete record ({e}): {bytes:?}");
                self.fail(msg);
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
        !self.runner_dead(a) && self.actors[a].phase == Phase::Waiting
    }
}

/// A short description of a record for traces: `pid 7 (nonce …0003)`.
pub(crate) fn describe(bytes: &[u8]) -> String {
    match format::parse(bytes) {
        Ok(r) => format!(
            "pid {}'s record {}",
            r.pid,
            r.nonce.as_deref().map_or("", |n| &n[12..])
        ),
        Err(_) => format!("{} unparsable bytes", bytes.len()),
    }
}
