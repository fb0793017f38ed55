//! A deterministic simulator of the lock protocol (in the manner of
//! FoundationDB's simulator and TigerBeetle's VOPR).
//!
//! The protocol runs unchanged over the [`Dir`] and [`System`] traits. Here
//! the directory is in memory, with exactly the semantics the protocol relies
//! on (exclusive create, `link` failing on an existing name, `rename`
//! replacing atomically, link counts, and reads and writes that take more
//! than one step, so a reader can see a rewrite in progress), and processes
//! are entries in a table that a scheduler may kill at any step.
//!
//! Each actor (a process running the protocol, for itself or for another
//! process) runs on its own thread, but only one moves at a time: every
//! directory call is a *step*, and before each step the actor waits for the
//! scheduler. The scheduler chooses which waiting actor takes its next step,
//! or which process dies; every choice is recorded, so a schedule replays
//! exactly. Two strategies choose:
//!
//! - exhaustive: every schedule with at most `P` preemptions (switching away
//!   from an actor that could go on) and at most `K` deaths, depth first
//!   (the preemption bounding of CHESS);
//! - random: seeded schedules; a failure prints the seed, and
//!   `LOCKFILE_SIM_REPLAY=SCENARIO:SEED` replays it with its trace.
//!
//! Invariants, checked after every step:
//! 1. at most one live process believes it holds the lock;
//! 2. no operation removes or replaces a lock record other than the one it
//!    read last (unless `force`);
//! 3. the lock, whenever it exists, is a complete record (nothing is ever
//!    written into a published lock);
//!
//! and at the end of every schedule, once every process is dead:
//! 4. `acquire(replace_stale)` recovers the lock without `force`;
//! 5. after a sweep, no private file is left in the directory.
//!
//! `LOCKFILE_SIM_SCHEDULES` sets the number of random schedules per scenario
//! (default 200) and `LOCKFILE_SIM_SEED` their base seed, and
//! `LOCKFILE_SIM_EXHAUSTIVE_CAP` the schedules per bound (default 1500),
//! for a long soak:
//! `LOCKFILE_SIM_EXHAUSTIVE_CAP=1000000 LOCKFILE_SIM_SCHEDULES=200000 cargo test --release -p lockfile-core --test simulator`.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

use lockfile_core::format::{self, Record};
use lockfile_core::protocol::{Dir, Kind, Lock, Spare, System};
use lockfile_core::{Identity, Liveness, Machine, ProcessInfo, Timestamp, Verdict};

const LOCK: &str = "x.lock";
const PATH: &str = "/sim/x.lock";
const HOST: &str = "sim";
const BOOT: &str = "boot-1";
const PIDNS: u64 = 4_026_531_836;

type Pid = u32;

/// What an actor does, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
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

const ACQUIRE: Op = Op::Acquire {
    replace_stale: false,
    force: false,
};
const BREAK: Op = Op::Acquire {
    replace_stale: true,
    force: false,
};
const RELEASE: Op = Op::Release { force: false };

#[derive(Clone, Debug)]
struct ActorSpec {
    name: &'static str,
    /// The process the lock is taken for (`--pid`).
    acting: Pid,
    /// The process running the protocol.
    runner: Pid,
    script: Vec<Op>,
    /// Whether the handle keeps a spare (a library handle) or not (the CLI).
    spare: bool,
}

fn actor(name: &'static str, pid: Pid, script: &[Op]) -> ActorSpec {
    ActorSpec {
        name,
        acting: pid,
        runner: pid,
        script: script.to_vec(),
        spare: false,
    }
}

#[derive(Clone, Debug)]
struct Scenario {
    name: &'static str,
    /// Processes alive at the start (every actor's runner is added).
    processes: Vec<Pid>,
    /// The lock at the start, if any: the record of this pid.
    initial_owner: Option<Pid>,
    actors: Vec<ActorSpec>,
    /// Processes the scheduler may kill.
    mortal: Vec<Pid>,
    /// A broken directory whose `link` replaces an existing name: to check
    /// that the simulator notices a broken protocol.
    faulty_link: bool,
}

fn start_ticks(pid: Pid) -> u64 {
    u64::from(pid) * 10 + 3
}

fn record_of(pid: Pid, nonce: u64) -> Vec<u8> {
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
struct Inode {
    bytes: Vec<u8>,
    links: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Waiting,
    Done,
}

#[derive(Debug)]
struct ActorState {
    phase: Phase,
    /// After a successful acquire, until it starts to release.
    believes: bool,
    /// The bytes of the lock this actor read last in its current operation.
    judged: Option<Vec<u8>>,
    /// Whether the current operation is forced.
    forced: bool,
    /// The inode a two-step read or write has open.
    open: Option<usize>,
    /// The step this actor waits to take, for the trace.
    next: String,
}

#[derive(Debug)]
struct World {
    names: BTreeMap<String, usize>,
    inodes: Vec<Inode>,
    alive: BTreeMap<Pid, bool>,
    actors: Vec<ActorState>,
    specs: Vec<ActorSpec>,
    granted: Option<usize>,
    /// Set on a violation: every actor stops taking steps.
    abort: bool,
    /// See [`Scenario::faulty_link`].
    faulty_link: bool,
    /// Outside any schedule (setting up, recovering): steps run at once.
    solo: bool,
    clock: u64,
    /// Who chooses, within which bounds, and what was chosen so far.
    strategy: Strat,
    bounds: Bounds,
    mortal: Vec<Pid>,
    current: Option<usize>,
    preemptions: usize,
    kills: usize,
    /// The schedule is over (nobody can move, or an invariant broke).
    finished: bool,
    /// The process that held the lock at the start, while it still does:
    /// it holds until its record is removed on its behalf, so a takeover of
    /// its live lock counts as a second holder.
    initial_holder: Option<(Pid, Vec<u8>)>,
    /// Whether steps are written to `trace`: only when a failing schedule
    /// is run again to be shown (formatting every step costs more than
    /// running it).
    tracing: bool,
    trace: Vec<String>,
    violation: Option<String>,
}

impl World {
    fn runner_dead(&self, actor: usize) -> bool {
        !self.alive[&self.specs[actor].runner]
    }

    fn lock_bytes(&self) -> Option<&[u8]> {
        self.names
            .get(LOCK)
            .map(|&i| self.inodes[i].bytes.as_slice())
    }

    fn new_inode(&mut self, bytes: Vec<u8>) -> usize {
        self.inodes.push(Inode { bytes, links: 1 });
        self.inodes.len() - 1
    }

    fn unlink(&mut self, name: &str) -> Option<usize> {
        let inode = self.names.remove(name)?;
        self.inodes[inode].links -= 1;
        Some(inode)
    }

    fn fail(&mut self, what: String) {
        if self.violation.is_none() {
            self.violation = Some(what);
        }
    }

    /// Invariant 2: a non-forced removal or replacement of the lock must hit
    /// the record the actor judged.
    fn check_judged(&mut self, actor: usize, what: &str) {
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
    fn check(&mut self) {
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

    fn settled(&self) -> bool {
        self.granted.is_none()
            && (0..self.actors.len()).all(|a| {
                self.runner_dead(a) || matches!(self.actors[a].phase, Phase::Waiting | Phase::Done)
            })
    }

    fn runnable(&self, a: usize) -> bool {
        !self.runner_dead(a) && self.actors[a].phase == Phase::Waiting
    }
}

/// A short description of a record for traces: `pid 7 (nonce …0003)`.
fn describe(bytes: &[u8]) -> String {
    match format::parse(bytes) {
        Ok(r) => format!(
            "pid {}'s record {}",
            r.pid,
            r.nonce.as_deref().map_or("", |n| &n[12..])
        ),
        Err(_) => format!("{} unparsable bytes", bytes.len()),
    }
}

struct Sim {
    world: Mutex<World>,
    /// Where each actor waits for its turn.
    turns: Vec<Condvar>,
    /// Where the scheduler waits for every live actor to wait or finish.
    settled: Condvar,
}

fn dead() -> io::Error {
    io::Error::other("the simulated process is dead")
}

impl Sim {
    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The scheduler, run by whichever actor has just stopped to wait or
    /// finished, once every live actor waits or is done: it applies deaths
    /// until it picks an actor to move, and hands that actor the turn (which
    /// costs no thread switch when the actor picks itself).
    fn decide(&self, w: &mut World) {
        loop {
            if !w.settled() || w.finished {
                return;
            }
            w.check();
            let runnable: Vec<usize> = (0..w.actors.len()).filter(|&a| w.runnable(a)).collect();
            if w.violation.is_some() || runnable.is_empty() {
                w.finished = true;
                w.abort = true;
                for turn in &self.turns {
                    turn.notify_one();
                }
                self.settled.notify_one();
                return;
            }
            let cur = w.current.filter(|c| runnable.contains(c));
            let mut options = Vec::new();
            match cur {
                Some(c) => {
                    options.push(Choice::Run(c));
                    if w.preemptions < w.bounds.preemptions {
                        options.extend(
                            runnable
                                .iter()
                                .filter(|&&a| a != c)
                                .map(|&a| Choice::Run(a)),
                        );
                    }
                }
                None => options.extend(runnable.iter().map(|&a| Choice::Run(a))),
            }
            if w.kills < w.bounds.kills {
                let mortal: Vec<Pid> = w.mortal.iter().copied().filter(|p| w.alive[p]).collect();
                options.extend(mortal.into_iter().map(Choice::Kill));
            }
            let pick = w.strategy.choose(&options, cur.is_some());
            match options[pick] {
                Choice::Run(a) => {
                    if cur.is_some_and(|c| c != a) {
                        w.preemptions += 1;
                    }
                    w.current = Some(a);
                    w.clock += 1;
                    w.granted = Some(a);
                    self.turns[a].notify_one();
                    return;
                }
                Choice::Kill(p) => {
                    w.kills += 1;
                    w.alive.insert(p, false);
                    if w.tracing {
                        w.trace.push(format!("-- pid {p} dies"));
                    }
                    for a in 0..w.specs.len() {
                        if w.specs[a].runner == p {
                            self.turns[a].notify_one();
                        }
                    }
                }
            }
        }
    }

    /// One atomic step of `actor`: waits for the scheduler's turn, then
    /// applies `f` to the world. A dead actor's steps fail without effect.
    fn step<T>(
        &self,
        actor: usize,
        what: impl FnOnce() -> String,
        f: impl FnOnce(&mut World, usize) -> io::Result<T>,
    ) -> io::Result<T>
    where
        T: Show,
    {
        let mut w = self.lock();
        let label = if w.tracing { what() } else { String::new() };
        if !w.solo {
            if w.abort || w.runner_dead(actor) {
                return Err(dead());
            }
            w.actors[actor].phase = Phase::Waiting;
            w.actors[actor].next.clone_from(&label);
            self.decide(&mut w);
            while !(w.granted == Some(actor) || w.abort || w.runner_dead(actor)) {
                w = self.turns[actor].wait(w).unwrap_or_else(|e| e.into_inner());
            }
            if w.granted != Some(actor) {
                return Err(dead());
            }
            w.granted = None;
            w.actors[actor].phase = Phase::Running;
        }
        let result = f(&mut w, actor);
        if w.tracing {
            let shown = match &result {
                Ok(v) => v.show(),
                Err(e) => format!("error: {e}"),
            };
            let line = format!("{}: {label} -> {shown}", w.specs[actor].name);
            w.trace.push(line);
        }
        w.check();
        result
    }
}

/// How a step's result reads in a trace.
trait Show {
    fn show(&self) -> String;
}

impl Show for () {
    fn show(&self) -> String {
        "ok".into()
    }
}

impl Show for bool {
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Show for Option<Kind> {
    fn show(&self) -> String {
        format!("{self:?}")
    }
}

impl Show for Vec<u8> {
    fn show(&self) -> String {
        describe(self)
    }
}

impl Show for Vec<String> {
    fn show(&self) -> String {
        self.join(" ")
    }
}

/// The directory as one actor sees it.
struct SimDir {
    sim: Arc<Sim>,
    me: usize,
}

fn not_found() -> io::Error {
    io::ErrorKind::NotFound.into()
}

impl Dir for SimDir {
    fn kind(&self, name: &str) -> io::Result<Option<Kind>> {
        self.sim.step(
            self.me,
            || format!("stat {name}"),
            |w, _| {
                Ok(w.names
                    .get(name)
                    .map(|&i| Kind::File(w.inodes[i].bytes.len() as u64)))
            },
        )
    }

    fn read(&self, name: &str, limit: usize) -> io::Result<Vec<u8>> {
        // Open and read are two steps: between them the file may be renamed
        // over, unlinked or rewritten, and the read sees what the inode holds.
        self.sim.step(
            self.me,
            || format!("open {name}"),
            |w, a| {
                let inode = *w.names.get(name).ok_or_else(not_found)?;
                w.actors[a].open = Some(inode);
                Ok(())
            },
        )?;
        self.sim.step(
            self.me,
            || format!("read {name}"),
            |w, a| {
                let inode = w.actors[a].open.take().ok_or_else(not_found)?;
                let mut bytes = w.inodes[inode].bytes.clone();
                bytes.truncate(limit);
                if name == LOCK {
                    w.actors[a].judged = Some(bytes.clone());
                }
                Ok(bytes)
            },
        )
    }

    fn create(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.sim.step(
            self.me,
            || format!("create {name}"),
            |w, a| {
                if w.names.contains_key(name) {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
                let inode = w.new_inode(Vec::new());
                w.names.insert(name.to_owned(), inode);
                w.actors[a].open = Some(inode);
                Ok(())
            },
        )?;
        let data = data.to_vec();
        self.sim.step(
            self.me,
            || format!("write {name}"),
            move |w, a| {
                let inode = w.actors[a].open.take().ok_or_else(not_found)?;
                w.inodes[inode].bytes = data;
                Ok(())
            },
        )
    }

    fn rewrite(&self, name: &str, data: &[u8]) -> io::Result<bool> {
        // Two steps: the first half lands over the old bytes, then the rest
        // and the truncation. A reader in between sees a torn record.
        let first = data.to_vec();
        let rewritten = self.sim.step(
            self.me,
            || format!("rewrite {name} (first half)"),
            move |w, a| {
                let inode = *w.names.get(name).ok_or_else(not_found)?;
                if w.inodes[inode].links != 1 {
                    return Ok(false);
                }
                if w.names.get(LOCK) == Some(&inode) {
                    let msg = format!("{} rewrote the published lock", w.specs[a].name);
                    w.fail(msg);
                }
                let half = first.len() / 2;
                let bytes = &mut w.inodes[inode].bytes;
                if bytes.len() < half {
                    bytes.resize(half, b' ');
                }
                bytes[..half].copy_from_slice(&first[..half]);
                w.actors[a].open = Some(inode);
                Ok(true)
            },
        )?;
        if !rewritten {
            return Ok(false);
        }
        let data = data.to_vec();
        self.sim.step(
            self.me,
            || format!("rewrite {name} (rest)"),
            move |w, a| {
                let inode = w.actors[a].open.take().ok_or_else(not_found)?;
                if w.names.get(LOCK) == Some(&inode) && w.inodes[inode].links > 1 {
                    let msg = format!("{} rewrote the published lock", w.specs[a].name);
                    w.fail(msg);
                }
                w.inodes[inode].bytes = data;
                Ok(true)
            },
        )
    }

    fn link(&self, existing: &str, new: &str) -> io::Result<()> {
        self.sim.step(
            self.me,
            || format!("link {existing} -> {new}"),
            |w, _| {
                if w.names.contains_key(new) && !w.faulty_link {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
                let inode = *w.names.get(existing).ok_or_else(not_found)?;
                w.unlink(new);
                w.inodes[inode].links += 1;
                w.names.insert(new.to_owned(), inode);
                Ok(())
            },
        )
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.sim.step(
            self.me,
            || format!("rename {from} -> {to}"),
            |w, a| {
                if !w.names.contains_key(from) {
                    return Err(not_found());
                }
                if to == LOCK {
                    w.check_judged(a, "replaced");
                }
                w.unlink(to);
                let inode = w.names.remove(from).ok_or_else(not_found)?;
                w.names.insert(to.to_owned(), inode);
                Ok(())
            },
        )
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.sim.step(
            self.me,
            || format!("unlink {name}"),
            |w, a| {
                if !w.names.contains_key(name) {
                    return Err(not_found());
                }
                if name == LOCK {
                    w.check_judged(a, "removed");
                    let acting = w.specs[a].acting;
                    let removed = w.lock_bytes().map(<[u8]>::to_vec);
                    if w.initial_holder.as_ref().is_some_and(|(pid, bytes)| {
                        *pid == acting && removed.as_deref() == Some(bytes.as_slice())
                    }) {
                        w.initial_holder = None;
                    }
                }
                w.unlink(name);
                Ok(())
            },
        )
    }

    fn names(&self) -> io::Result<Vec<String>> {
        self.sim.step(
            self.me,
            || "list the directory".into(),
            |w, _| Ok(w.names.keys().cloned().collect()),
        )
    }
}

/// The process table as one actor sees it.
struct SimSys {
    sim: Arc<Sim>,
    spec: ActorSpec,
    counter: std::cell::Cell<u64>,
    seed: u64,
}

impl System for SimSys {
    fn current(&self) -> Identity {
        Identity {
            pid: self.spec.acting,
            start_ticks: Some(start_ticks(self.spec.acting)),
        }
    }
    fn runner(&self) -> Identity {
        Identity {
            pid: self.spec.runner,
            start_ticks: Some(start_ticks(self.spec.runner)),
        }
    }
    fn machine(&self) -> Machine {
        Machine {
            hostname: Some(HOST.into()),
            boot_id: Some(BOOT.into()),
            pid_namespace: Some(PIDNS),
        }
    }
    fn query(&self, pid: u32) -> ProcessInfo {
        let alive = self.sim.lock().alive.get(&pid).copied().unwrap_or(false);
        ProcessInfo {
            liveness: if alive {
                Liveness::Alive
            } else {
                Liveness::Dead
            },
            start_ticks: alive.then(|| start_ticks(pid)),
            start_time: None,
        }
    }
    fn now(&self) -> Timestamp {
        Timestamp::new(1_800_000_000 + self.sim.lock().clock, 0)
    }
    fn random(&self) -> u64 {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        // Unique per actor and call, the same in every replay.
        (self.seed << 32) | n
    }
}

// ------------------------------------------------------------------ actors

fn run_actor(sim: &Arc<Sim>, me: usize, spec: &ActorSpec) {
    let dir = SimDir {
        sim: Arc::clone(sim),
        me,
    };
    let sys = SimSys {
        sim: Arc::clone(sim),
        spec: spec.clone(),
        counter: std::cell::Cell::new(0),
        seed: me as u64 + 1,
    };
    let spare = Spare::default();
    let lock = Lock::new(&dir, LOCK, PATH, &sys);
    let lock = if spec.spare {
        lock.with_spare(&spare)
    } else {
        lock
    };
    for op in &spec.script {
        {
            let mut w = sim.lock();
            let a = &mut w.actors[me];
            a.judged = None;
            a.forced = matches!(
                op,
                Op::Acquire { force: true, .. } | Op::Release { force: true }
            );
            if matches!(op, Op::Release { .. }) {
                // From here on it no longer relies on holding the lock.
                a.believes = false;
            }
        }
        let (outcome, ok) = match *op {
            Op::Acquire {
                replace_stale,
                force,
            } => {
                let r = lock.acquire(replace_stale, force);
                let ok = r.is_ok();
                if ok {
                    sim.lock().actors[me].believes = true;
                }
                (format!("acquire -> {}", show_result(&r)), ok)
            }
            Op::Hold => {
                let r = sim.step(me, || "works while holding".into(), |_, _| Ok(()));
                (String::new(), r.is_ok())
            }
            Op::Release { force } => {
                let r = lock.release(force);
                (format!("release -> {}", show_result(&r)), r.is_ok())
            }
            Op::Status => {
                let r = lock.status();
                let shown = match &r {
                    Ok(s) => format!("status -> {}: {}", s.verdict.as_str(), s.reason),
                    Err(e) => format!("status -> error: {e}"),
                };
                (shown, true)
            }
        };
        if !outcome.is_empty() && sim.lock().tracing {
            let mut w = sim.lock();
            let line = format!("{}: {outcome}", spec.name);
            w.trace.push(line);
        }
        if !ok {
            break;
        }
    }
    if spec.spare {
        spare.discard(&dir);
    }
}

fn show_result(r: &Result<(), lockfile_core::Error>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("error: {e}"),
    }
}

// --------------------------------------------------------------- schedules

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Run(usize),
    Kill(Pid),
}

/// Picks one of the options at each scheduling point. Option 0 is always
/// "the actor that moved last goes on" when it can.
#[derive(Debug)]
enum Strat {
    Exhaustive(Exhaustive),
    Random(Random),
}

impl Strat {
    fn choose(&mut self, options: &[Choice], current_first: bool) -> usize {
        match self {
            Strat::Exhaustive(e) => e.choose(options.len()),
            Strat::Random(r) => r.choose(options, current_first),
        }
    }
}

/// Depth-first enumeration of every schedule within the bounds: replays a
/// prefix of choices, then takes the first option at each new point.
#[derive(Debug, Default)]
struct Exhaustive {
    prefix: Vec<usize>,
    taken: Vec<(usize, usize)>,
}

impl Exhaustive {
    fn choose(&mut self, n: usize) -> usize {
        let i = self.taken.len();
        let c = self.prefix.get(i).copied().unwrap_or(0);
        self.taken.push((c, n));
        c
    }

    /// Moves to the next schedule; false when all are done.
    fn advance(&mut self) -> bool {
        let mut taken = std::mem::take(&mut self.taken);
        while let Some((c, n)) = taken.pop() {
            if c + 1 < n {
                taken.push((c + 1, n));
                self.prefix = taken.iter().map(|&(c, _)| c).collect();
                return true;
            }
        }
        false
    }
}

/// SplitMix64: small, good enough, and the same everywhere.
#[derive(Debug)]
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

impl Random {
    fn choose(&mut self, options: &[Choice], current_first: bool) -> usize {
        let runs = options
            .iter()
            .filter(|c| matches!(c, Choice::Run(_)))
            .count();
        let kills = options.len() - runs;
        if kills > 0 && (runs == 0 || self.below(40) == 0) {
            return runs + self.below(kills);
        }
        if current_first && self.below(4) != 0 {
            return 0;
        }
        self.below(runs.max(1))
    }
}

#[derive(Debug, Clone, Copy)]
struct Bounds {
    preemptions: usize,
    kills: usize,
}

/// A schedule that broke an invariant.
#[derive(Debug)]
struct Failure {
    scenario: &'static str,
    violation: String,
    trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "scenario `{}`: {}", self.scenario, self.violation)?;
        writeln!(f, "trace:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

const RECOVERER: Pid = 999;

/// Runs one schedule of `sc` chosen by `strategy`; returns the trace.
fn run_schedule(
    sc: &Scenario,
    strategy: &mut Strat,
    bounds: Bounds,
    tracing: bool,
) -> Result<Vec<String>, Failure> {
    let mut alive: BTreeMap<Pid, bool> = BTreeMap::new();
    for &p in &sc.processes {
        alive.insert(p, true);
    }
    for a in &sc.actors {
        alive.insert(a.runner, true);
        alive.entry(a.acting).or_insert(true);
    }
    if let Some(owner) = sc.initial_owner {
        alive.entry(owner).or_insert(false);
    }
    let mut world = World {
        names: BTreeMap::new(),
        inodes: Vec::new(),
        alive,
        actors: Vec::new(),
        specs: sc.actors.clone(),
        granted: None,
        abort: false,
        faulty_link: sc.faulty_link,
        solo: false,
        clock: 0,
        strategy: std::mem::replace(strategy, Strat::Random(Random(0))),
        bounds,
        mortal: sc.mortal.clone(),
        current: None,
        preemptions: 0,
        kills: 0,
        finished: false,
        initial_holder: None,
        tracing,
        trace: Vec::new(),
        violation: None,
    };
    for _ in &sc.actors {
        world.actors.push(ActorState {
            phase: Phase::Running,
            believes: false,
            judged: None,
            forced: false,
            open: None,
            next: String::new(),
        });
    }
    if let Some(owner) = sc.initial_owner {
        let record = record_of(owner, 0xfeed);
        let inode = world.new_inode(record.clone());
        world.names.insert(LOCK.into(), inode);
        let alive = world.alive[&owner];
        if alive {
            world.initial_holder = Some((owner, record));
        }
        world.trace.push(format!(
            "start: the lock holds pid {owner}'s record ({})",
            if alive { "alive" } else { "dead" }
        ));
    }
    let sim = Arc::new(Sim {
        world: Mutex::new(world),
        turns: sc.actors.iter().map(|_| Condvar::new()).collect(),
        settled: Condvar::new(),
    });
    let threads: Vec<_> = sc
        .actors
        .iter()
        .enumerate()
        .map(|(me, spec)| {
            let sim = Arc::clone(&sim);
            let spec = spec.clone();
            thread::spawn(move || {
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_actor(&sim, me, &spec)
                }));
                let mut w = sim.lock();
                if let Err(panic) = run {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    let msg = format!("{} panicked: {what}", spec.name);
                    w.fail(msg);
                }
                w.actors[me].phase = Phase::Done;
                if !w.runner_dead(me) {
                    sim.decide(&mut w);
                }
            })
        })
        .collect();

    {
        let mut w = sim.lock();
        while !w.finished {
            w = sim.settled.wait(w).unwrap_or_else(|e| e.into_inner());
        }
    }
    for t in threads {
        let _ = t.join();
    }
    let mut w = sim.lock();
    *strategy = std::mem::replace(&mut w.strategy, Strat::Random(Random(0)));
    if let Some(violation) = w.violation.take() {
        return Err(Failure {
            scenario: sc.name,
            violation,
            trace: std::mem::take(&mut w.trace),
        });
    }
    // Everyone dies; a newcomer must recover the lock without force, and a
    // sweep must leave nothing behind.
    w.solo = true;
    w.abort = false;
    for alive in w.alive.values_mut() {
        *alive = false;
    }
    w.alive.insert(RECOVERER, true);
    w.trace
        .push("-- every process dies; a newcomer recovers the lock".into());
    let spec = actor("recoverer", RECOVERER, &[BREAK]);
    w.specs.push(spec.clone());
    w.actors.push(ActorState {
        phase: Phase::Running,
        believes: false,
        judged: None,
        forced: false,
        open: None,
        next: String::new(),
    });
    let me = w.actors.len() - 1;
    drop(w);
    let dir = SimDir {
        sim: Arc::clone(&sim),
        me,
    };
    let sys = SimSys {
        sim: Arc::clone(&sim),
        spec,
        counter: std::cell::Cell::new(0),
        seed: 0xabc,
    };
    let lock = Lock::new(&dir, LOCK, PATH, &sys);
    let recovered = lock.acquire(true, false);
    let status = lock.status();
    let released = lock.release(false);
    lock.sweep();
    let mut w = sim.lock();
    let mut problem = None;
    if let Err(e) = &recovered {
        problem = Some(format!(
            "after every process died, replace_stale failed: {e}"
        ));
    } else if !matches!(&status, Ok(s) if s.verdict == Verdict::OwnedBySelf) {
        problem = Some(format!(
            "the recovered lock is not the newcomer's: {status:?}"
        ));
    } else if let Err(e) = &released {
        problem = Some(format!("the newcomer cannot release: {e}"));
    } else if !w.names.is_empty() {
        let left: Vec<&String> = w.names.keys().collect();
        problem = Some(format!("a sweep after every process died left {left:?}"));
    }
    let violation = problem.or_else(|| w.violation.take());
    let trace = std::mem::take(&mut w.trace);
    match violation {
        Some(violation) => Err(Failure {
            scenario: sc.name,
            violation,
            trace,
        }),
        None => Ok(trace),
    }
}

/// Every schedule of `sc` within `bounds`, up to `cap`; the number run, and
/// whether that was all of them.
fn explore(sc: &Scenario, bounds: Bounds, cap: usize) -> Result<(usize, bool), Failure> {
    let mut strategy = Strat::Exhaustive(Exhaustive::default());
    let mut runs = 0;
    loop {
        let failed = run_schedule(sc, &mut strategy, bounds, false).is_err();
        let Strat::Exhaustive(ex) = &mut strategy else {
            unreachable!("explore runs the exhaustive strategy")
        };
        if failed {
            // Run the same schedule again, this time writing its trace.
            let choices = ex.taken.iter().map(|&(c, _)| c).collect();
            let mut again = Strat::Exhaustive(Exhaustive {
                prefix: choices,
                taken: Vec::new(),
            });
            return Err(match run_schedule(sc, &mut again, bounds, true) {
                Err(f) => f,
                Ok(trace) => Failure {
                    scenario: sc.name,
                    violation: "a schedule failed, then passed when replayed: \
                                the simulation is not deterministic"
                        .into(),
                    trace,
                },
            });
        }
        runs += 1;
        if !ex.advance() {
            return Ok((runs, true));
        }
        if runs >= cap {
            return Ok((runs, false));
        }
    }
}

fn seed_for(base: u64, scenario: usize, i: usize) -> u64 {
    Random(base ^ ((scenario as u64) << 48) ^ (i as u64)).next()
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| {
            let v = v.trim();
            match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => v.parse().ok(),
            }
        })
        .unwrap_or(default)
}

const RANDOM_BOUNDS: Bounds = Bounds {
    preemptions: usize::MAX,
    kills: usize::MAX,
};

// --------------------------------------------------------------- scenarios

const A: Pid = 100;
const R: Pid = 200;
const B: Pid = 300;
const C: Pid = 400;
const DEAD: Pid = 500;

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            // Hole 1: `lockfile release --pid A` while A dies and a breaker
            // and a newcomer arrive.
            name: "release-for-another-process",
            processes: vec![A],
            initial_owner: Some(A),
            actors: vec![
                ActorSpec {
                    name: "releaser(for A)",
                    acting: A,
                    runner: R,
                    script: vec![RELEASE],
                    spare: false,
                },
                actor("breaker", B, &[BREAK, Op::Hold]),
                actor("newcomer", C, &[ACQUIRE, Op::Hold]),
            ],
            mortal: vec![A, R, B],
            faulty_link: false,
        },
        Scenario {
            name: "breakers-race-for-a-stale-lock",
            processes: vec![],
            initial_owner: Some(DEAD),
            actors: vec![
                actor("breaker1", B, &[BREAK, Op::Hold, RELEASE]),
                actor("breaker2", C, &[BREAK, Op::Hold, RELEASE]),
            ],
            mortal: vec![B, C],
            faulty_link: false,
        },
        Scenario {
            name: "cycling-handles-and-a-reader",
            processes: vec![],
            initial_owner: None,
            actors: vec![
                ActorSpec {
                    spare: true,
                    ..actor(
                        "cycler1",
                        B,
                        // Three cycles: the third rewrites the spare the
                        // second published and its release compared.
                        &[
                            ACQUIRE,
                            RELEASE,
                            ACQUIRE,
                            RELEASE,
                            ACQUIRE,
                            Op::Hold,
                            RELEASE,
                        ],
                    )
                },
                ActorSpec {
                    spare: true,
                    ..actor("cycler2", C, &[BREAK, Op::Hold, RELEASE, BREAK])
                },
                actor("reader", A, &[Op::Status, Op::Status]),
            ],
            mortal: vec![B, C],
            faulty_link: false,
        },
        Scenario {
            // The CLI acquires for its parent, and releases for it later,
            // while a breaker waits for the parent to die.
            name: "acquire-and-release-for-a-parent",
            processes: vec![A],
            initial_owner: None,
            actors: vec![
                ActorSpec {
                    name: "cli(for A)",
                    acting: A,
                    runner: R,
                    script: vec![ACQUIRE, RELEASE],
                    spare: false,
                },
                actor("breaker", B, &[BREAK, Op::Hold, RELEASE]),
                actor("newcomer", C, &[ACQUIRE, Op::Hold]),
            ],
            mortal: vec![A, R, B],
            faulty_link: false,
        },
    ]
}

// ------------------------------------------------------------------- tests

/// Schedules with at most one preemption and one death, and with two
/// preemptions, depth first, up to a cap per bound (all of them with
/// `LOCKFILE_SIM_EXHAUSTIVE_CAP=1000000`).
#[test]
fn bounded_schedules_keep_the_invariants() {
    for sc in scenarios() {
        for bounds in [
            Bounds {
                preemptions: 1,
                kills: 1,
            },
            Bounds {
                preemptions: 2,
                kills: 0,
            },
        ] {
            let cap = env_num("LOCKFILE_SIM_EXHAUSTIVE_CAP", 1500) as usize;
            match explore(&sc, bounds, cap) {
                Ok((n, all)) => eprintln!(
                    "simulator: {}: {n} schedules with <= {} preemptions and <= {} deaths{}",
                    sc.name,
                    bounds.preemptions,
                    bounds.kills,
                    if all { " (all of them)" } else { " (capped)" }
                ),
                Err(f) => panic!("{f}"),
            }
        }
    }
}

#[test]
fn random_schedules_keep_the_invariants() {
    if let Ok(replay) = std::env::var("LOCKFILE_SIM_REPLAY") {
        let (name, seed) = replay
            .split_once(':')
            .expect("LOCKFILE_SIM_REPLAY=SCENARIO:SEED");
        let seed = env_num_from(seed);
        let sc = scenarios()
            .into_iter()
            .find(|s| s.name == name)
            .expect("a scenario of that name");
        match run_schedule(&sc, &mut Strat::Random(Random(seed)), RANDOM_BOUNDS, true) {
            Ok(trace) => eprintln!("{}", trace.join("\n")),
            Err(f) => panic!("{f}"),
        }
        return;
    }
    let schedules = env_num("LOCKFILE_SIM_SCHEDULES", 200) as usize;
    let base = env_num("LOCKFILE_SIM_SEED", 0x5eed);
    for (k, sc) in scenarios().iter().enumerate() {
        for i in 0..schedules {
            let seed = seed_for(base, k, i);
            if run_schedule(sc, &mut Strat::Random(Random(seed)), RANDOM_BOUNDS, false).is_err() {
                let f = run_schedule(sc, &mut Strat::Random(Random(seed)), RANDOM_BOUNDS, true)
                    .expect_err("a schedule replays exactly");
                panic!(
                    "{f}\nreplay: LOCKFILE_SIM_REPLAY={}:{seed:#x} cargo test -p lockfile-core \
                     --test simulator random -- --nocapture",
                    sc.name
                );
            }
        }
        eprintln!("simulator: {}: {schedules} random schedules", sc.name);
    }
}

fn env_num_from(text: &str) -> u64 {
    let t = text.trim();
    t.strip_prefix("0x")
        .map_or_else(|| t.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
        .expect("a number")
}

/// The simulator itself must catch a broken protocol: a directory whose
/// `link` replaces an existing name (no exclusive publish) lets two actors
/// hold the lock, and the explorer finds a schedule that shows it.
#[test]
fn the_simulator_catches_a_lock_without_exclusive_publish() {
    let sc = Scenario {
        name: "two-newcomers",
        faulty_link: true,
        processes: vec![],
        initial_owner: None,
        actors: vec![
            actor("first", B, &[ACQUIRE, Op::Hold]),
            actor("second", C, &[ACQUIRE, Op::Hold]),
        ],
        mortal: vec![],
    };
    let found = explore(
        &sc,
        Bounds {
            preemptions: 1,
            kills: 0,
        },
        10_000,
    );
    let failure = found.expect_err("a broken link must break exclusion");
    assert!(failure.violation.contains("two live holders"), "{failure}");
}

/// A documented residual case (docs/PROTOCOL.md): an owner releasing its own
/// lock takes no claim (that keeps its release as cheap as a plain unlink),
/// so a release on its behalf (`lockfile release --pid OWNER`) running at the
/// same moment can remove the lock a newcomer took in between. Both parties
/// act for the same live owner; nothing dies. The simulator finds it, and
/// this test keeps the documentation honest: if it stops finding it, the
/// residual case is gone and the docs should say so.
#[test]
fn an_owners_own_release_racing_a_release_on_its_behalf_is_a_known_residual() {
    let sc = Scenario {
        name: "owner-and-proxy-release",
        processes: vec![A],
        initial_owner: None,
        actors: vec![
            actor("owner", A, &[ACQUIRE, RELEASE]),
            ActorSpec {
                name: "releaser(for owner)",
                acting: A,
                runner: R,
                script: vec![RELEASE],
                spare: false,
            },
            actor("newcomer1", B, &[ACQUIRE, Op::Hold]),
            actor("newcomer2", C, &[ACQUIRE, Op::Hold]),
        ],
        mortal: vec![],
        faulty_link: false,
    };
    let found = explore(
        &sc,
        Bounds {
            preemptions: 3,
            kills: 0,
        },
        1_000_000,
    );
    let failure = found.expect_err("the residual race is found");
    // Either side may be the one that removes the newcomer's lock.
    assert!(
        failure.violation.contains("removed the lock holding"),
        "{failure}"
    );
}
