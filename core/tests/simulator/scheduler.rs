//! Who moves next: every directory call is a step an actor waits for;
//! the scheduler picks a step or a death, exhaustively or at random,
//! and runs whole schedules.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

use lockfile_core::protocol::{Kind, Lock, Spare};
use lockfile_core::{Error, Timestamp, Verdict};

use crate::dir::{SimDir, SimSys};
use crate::world::*;

pub(crate) struct Sim {
    pub(crate) world: Mutex<World>,
    /// Where each actor waits for its turn.
    pub(crate) turns: Vec<Condvar>,
    /// Where the scheduler waits for every live actor to wait or finish.
    pub(crate) settled: Condvar,
}

pub(crate) fn dead() -> io::Error {
    io::Error::other("the simulated process is dead")
}

impl Sim {
    pub(crate) fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The scheduler, run by whichever actor has just stopped to wait or
    /// finished, once every live actor waits or is done: it applies deaths
    /// until it picks an actor to move, and hands that actor the turn (which
    /// costs no thread switch when the actor picks itself).
    pub(crate) fn decide(&self, w: &mut World) {
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
            if w.faults < w.bounds.faults {
                let runs: Vec<usize> = options
                    .iter()
                    .filter_map(|c| match c {
                        Choice::Run(a) if w.actors[*a].faultable => Some(*a),
                        _ => None,
                    })
                    .collect();
                for a in runs {
                    options.extend(FAULTS.iter().map(|&f| Choice::Fault(a, f)));
                }
            }
            if w.kills < w.bounds.kills {
                let mortal: Vec<Pid> = w.mortal.iter().copied().filter(|p| w.alive[p]).collect();
                options.extend(mortal.into_iter().map(Choice::Kill));
            }
            if w.pauses < w.bounds.pauses {
                options.push(Choice::Pause);
            }
            let pick = w.strategy.choose(&options, cur.is_some());
            match options[pick] {
                Choice::Run(a) | Choice::Fault(a, _) => {
                    if cur.is_some_and(|c| c != a) {
                        w.preemptions += 1;
                    }
                    if let Choice::Fault(_, f) = options[pick] {
                        w.faults += 1;
                        w.actors[a].fault = Some(f);
                    }
                    w.current = Some(a);
                    w.clock += STEP_MS;
                    w.steps += 1;
                    w.granted = Some(a);
                    self.turns[a].notify_one();
                    return;
                }
                Choice::Pause => {
                    w.pauses += 1;
                    w.clock += PAUSE_MS;
                    w.note(|| format!("-- every process pauses for {PAUSE_MS} ms"));
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
    pub(crate) fn step<T>(
        &self,
        actor: usize,
        what: impl FnOnce() -> String,
        f: impl FnOnce(&mut World, usize) -> io::Result<T>,
    ) -> io::Result<T>
    where
        T: Show,
    {
        self.take_step(actor, what, false, |w, a, _| f(w, a))
    }

    /// A step whose reply the scheduler may lose or turn into an error
    /// (`link`, `rename`): `f` is told which fault, if any, to apply.
    pub(crate) fn faultable_step<T>(
        &self,
        actor: usize,
        what: impl FnOnce() -> String,
        f: impl FnOnce(&mut World, usize, Option<Fault>) -> io::Result<T>,
    ) -> io::Result<T>
    where
        T: Show,
    {
        self.take_step(actor, what, true, f)
    }

    fn take_step<T>(
        &self,
        actor: usize,
        what: impl FnOnce() -> String,
        faultable: bool,
        f: impl FnOnce(&mut World, usize, Option<Fault>) -> io::Result<T>,
    ) -> io::Result<T>
    where
        T: Show,
    {
        let mut w = self.lock();
        let mut label = if w.tracing { what() } else { String::new() };
        if !w.solo {
            if w.abort || w.runner_dead(actor) {
                return Err(dead());
            }
            w.actors[actor].phase = Phase::Waiting;
            w.actors[actor].faultable = faultable;
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
        let fault = w.actors[actor].fault.take();
        if let (true, Some(fault)) = (w.tracing, fault) {
            label.push_str(&format!(" [{fault:?}]"));
        }
        let result = f(&mut w, actor, fault);
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
pub(crate) trait Show {
    fn show(&self) -> String;
}

impl Show for () {
    fn show(&self) -> String {
        "ok".into()
    }
}

impl Show for &'static str {
    fn show(&self) -> String {
        (*self).to_owned()
    }
}

impl Show for (Vec<u8>, Option<Timestamp>) {
    fn show(&self) -> String {
        describe(&self.0)
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

// ------------------------------------------------------------------ actors

pub(crate) fn run_actor(sim: &Arc<Sim>, me: usize, spec: &ActorSpec) {
    let host = sim.lock().hosts[&spec.runner];
    let dir = SimDir {
        sim: Arc::clone(sim),
        me,
    };
    let sys = SimSys {
        sim: Arc::clone(sim),
        spec: spec.clone(),
        host,
        counter: std::cell::Cell::new(0),
        seed: me as u64 + 1,
    };
    let spare = Spare::default();
    let lock = Lock::new(&dir, LOCK, PATH, &sys)
        .with_lease(spec.lease)
        .with_tokens(spec.tokens);
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
            a.claim = None;
            a.claim_name = None;
            a.checked_at = None;
            a.replaced = None;
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
                if let Err(e @ Error::Denied { .. }) = &r {
                    // Every actor can create the lock: a refusal is a hole
                    // (tokens that only one user of `/tmp` can continue).
                    let msg = format!("{}'s acquisition was refused: {e}", spec.name);
                    sim.lock().fail(msg);
                }
                if ok {
                    let mut w = sim.lock();
                    w.actors[me].believes = true;
                    w.check_acquisition(me);
                    w.check();
                }
                (format!("acquire -> {}", show_result(&r)), ok)
            }
            Op::Hold => {
                let r = sim.step(
                    me,
                    || "works while holding".into(),
                    |w, a| {
                        Ok(if w.actors[a].believes {
                            w.write_fenced(a)
                        } else {
                            "without the lock"
                        })
                    },
                );
                (String::new(), r.is_ok())
            }
            Op::Refresh => {
                let lost_before = {
                    let w = sim.lock();
                    let lock_inode = w.names.get(LOCK).copied();
                    w.actors[me].believes && w.actors[me].published.map(|(i, _)| i) != lock_inode
                };
                let r = lock.refresh();
                let mut w = sim.lock();
                match &r {
                    Ok(()) if lost_before => {
                        let msg = format!(
                            "{}'s refresh succeeded although its lock had been replaced or \
                             removed before it began",
                            spec.name
                        );
                        w.fail(msg);
                    }
                    Err(Error::Lost { .. }) => w.actors[me].believes = false,
                    _ => {}
                }
                (format!("refresh -> {}", show_result(&r)), r.is_ok())
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
        if !outcome.is_empty() {
            sim.lock().note(|| format!("{}: {outcome}", spec.name));
        }
        if !ok {
            break;
        }
    }
    if spec.spare {
        spare.discard(&dir);
    }
}

pub(crate) fn show_result(r: &Result<(), Error>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("error: {e}"),
    }
}

// --------------------------------------------------------------- schedules

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    Run(usize),
    /// Run, with the step's reply lost or answered with an error.
    Fault(usize, Fault),
    Kill(Pid),
    /// The clock jumps past every lease while everyone stands still.
    Pause,
}

/// Picks one of the options at each scheduling point. Option 0 is always
/// "the actor that moved last goes on" when it can.
#[derive(Debug)]
pub(crate) enum Strat {
    Exhaustive(Exhaustive),
    Random(Random),
}

impl Strat {
    pub(crate) fn choose(&mut self, options: &[Choice], current_first: bool) -> usize {
        match self {
            Strat::Exhaustive(e) => e.choose(options.len()),
            Strat::Random(r) => r.choose(options, current_first),
        }
    }
}

/// Depth-first enumeration of every schedule within the bounds: replays a
/// prefix of choices, then takes the first option at each new point.
#[derive(Debug, Default)]
pub(crate) struct Exhaustive {
    pub(crate) prefix: Vec<usize>,
    pub(crate) taken: Vec<(usize, usize)>,
}

impl Exhaustive {
    pub(crate) fn choose(&mut self, n: usize) -> usize {
        let i = self.taken.len();
        let c = self.prefix.get(i).copied().unwrap_or(0);
        self.taken.push((c, n));
        c
    }

    /// Moves to the next schedule; false when all are done.
    pub(crate) fn advance(&mut self) -> bool {
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
pub(crate) struct Random(pub(crate) u64);

impl Random {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

impl Random {
    /// Mostly the actor that moved last goes on; now and then another, a
    /// faulty reply, a death or a pause.
    pub(crate) fn choose(&mut self, options: &[Choice], current_first: bool) -> usize {
        let of = |want: fn(&Choice) -> bool| -> Vec<usize> {
            (0..options.len()).filter(|&i| want(&options[i])).collect()
        };
        let runs = of(|c| matches!(c, Choice::Run(_)));
        let faults = of(|c| matches!(c, Choice::Fault(..)));
        let kills = of(|c| matches!(c, Choice::Kill(_)));
        let pauses = of(|c| matches!(c, Choice::Pause));
        for (odds, some) in [(40, &kills), (100, &pauses), (30, &faults)] {
            if !some.is_empty() && (runs.is_empty() || self.below(odds) == 0) {
                return some[self.below(some.len())];
            }
        }
        if current_first && self.below(4) != 0 {
            return 0;
        }
        runs[self.below(runs.len().max(1))]
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) preemptions: usize,
    pub(crate) kills: usize,
    pub(crate) pauses: usize,
    pub(crate) faults: usize,
}

/// A schedule that broke an invariant.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) scenario: &'static str,
    pub(crate) violation: String,
    pub(crate) trace: Vec<String>,
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

/// The first pid of the processes that recover the lock at the end.
pub(crate) const RECOVERER: Pid = 900;

/// Runs one schedule of `sc` chosen by `strategy`; returns the trace.
pub(crate) fn run_schedule(
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
    if let Some(init) = &sc.initial {
        alive.entry(init.owner).or_insert(false);
    }
    let hosts = alive.keys().map(|&p| (p, sc.host_of(p))).collect();
    let mut world = World {
        names: BTreeMap::new(),
        inodes: Vec::new(),
        alive,
        hosts,
        actors: Vec::new(),
        specs: sc.actors.clone(),
        granted: None,
        abort: false,
        faulty_link: sc.faulty_link,
        sticky: sc.sticky.is_some(),
        solo: false,
        clock: 0,
        steps: 0,
        strategy: std::mem::replace(strategy, Strat::Random(Random(0))),
        bounds,
        mortal: sc.mortal.clone(),
        current: None,
        preemptions: 0,
        kills: 0,
        pauses: 0,
        faults: 0,
        finished: false,
        initial_holder: None,
        claimed_at: BTreeMap::new(),
        rolled_back: None,
        acquisitions: Vec::new(),
        fence: None,
        tracing,
        trace: Vec::new(),
        violation: None,
    };
    for _ in &sc.actors {
        world.actors.push(ActorState::default());
    }
    // Files from before the schedule are older than any lease.
    if let Some(init) = &sc.initial {
        let host = sc.host_of(init.owner);
        let record = record_of(init.owner, host, init, 0xfeed);
        let inode = world.new_inode(record.clone(), ROOT);
        world.names.insert(LOCK.into(), inode);
        let alive = world.alive[&init.owner];
        if alive {
            world.initial_holder = Some((init.owner, record));
        }
        world.trace.push(format!(
            "start: the lock holds pid {}'s record ({}, on {host}, lease {:?}, token {:?})",
            init.owner,
            if alive { "alive" } else { "dead" },
            init.lease,
            init.token,
        ));
    }
    if let Some(n) = sc.token_file {
        let inode = world.new_inode(format!("{n}\n").into_bytes(), sc.sticky.unwrap_or(ROOT));
        world.names.insert(TOKEN_FILE.into(), inode);
        world.trace.push(format!("start: {TOKEN_FILE} holds {n}"));
    }
    world.clock = START_MS;
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
    drop(w);
    let problem = recover(sc, &sim);
    let mut w = sim.lock();
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

/// Invariants 5 and 6, once every process is dead and every lease has run
/// out: from each host the scenario names, on the same leftovers, a
/// newcomer recovers the lock without force (no wedge); then a sweep from
/// every host leaves no private file (each host sweeps only what its own
/// dead processes left: another host's pids mean nothing to it).
fn recover(sc: &Scenario, sim: &Arc<Sim>) -> Option<String> {
    let mut w = sim.lock();
    w.solo = true;
    w.abort = false;
    for alive in w.alive.values_mut() {
        *alive = false;
    }
    w.clock += PAUSE_MS;
    w.note(|| "-- every process dies and every lease runs out".into());
    let left = (w.names.clone(), w.inodes.clone());
    let mut hosts: Vec<&'static str> = if sc.recover_from.is_empty() {
        vec![HOST]
    } else {
        sc.recover_from.clone()
    };
    drop(w);
    let newcomer = |pid: Pid, host: &'static str, name: &'static str| {
        let mut w = sim.lock();
        w.alive.insert(pid, true);
        w.hosts.insert(pid, host);
        let spec = actor(name, pid, &[BREAK]);
        w.specs.push(spec.clone());
        w.actors.push(ActorState::default());
        let me = w.actors.len() - 1;
        let dir = SimDir {
            sim: Arc::clone(sim),
            me,
        };
        let sys = SimSys {
            sim: Arc::clone(sim),
            spec,
            host,
            counter: std::cell::Cell::new(0),
            seed: 0xabc + u64::from(pid),
        };
        (dir, sys)
    };
    let mut pid = RECOVERER;
    for &host in &hosts {
        {
            let mut w = sim.lock();
            (w.names, w.inodes) = left.clone();
            w.note(|| format!("-- a newcomer on {host} recovers the lock"));
        }
        pid += 1;
        let (dir, sys) = newcomer(pid, host, "recoverer");
        let lock = Lock::new(&dir, LOCK, PATH, &sys);
        let recovered = lock.acquire(true, false);
        let status = lock.status();
        let released = lock.release(false);
        if let Err(e) = &recovered {
            return Some(format!(
                "after every process died, replace_stale on {host} failed: {e}"
            ));
        } else if !matches!(&status, Ok(s) if s.verdict == Verdict::OwnedBySelf) {
            return Some(format!(
                "the lock recovered on {host} is not the newcomer's: {status:?}"
            ));
        } else if let Err(e) = &released {
            return Some(format!("the newcomer on {host} cannot release: {e}"));
        }
    }
    hosts.extend(sim.lock().hosts.values().copied());
    hosts.sort_unstable();
    hosts.dedup();
    for &host in &hosts {
        pid += 1;
        let (dir, sys) = newcomer(pid, host, "sweeper");
        Lock::new(&dir, LOCK, PATH, &sys).sweep();
    }
    let w = sim.lock();
    // Token files (`.NAME.token`, and users' own) are the sequence: kept.
    let left: Vec<&String> = w
        .names
        .keys()
        .filter(|n| !n.starts_with(TOKEN_FILE))
        .collect();
    if !left.is_empty() {
        return Some(format!(
            "sweeps from every host after every process died left {left:?}"
        ));
    }
    None
}

/// Every schedule of `sc` within `bounds`, up to `cap`; the number run, and
/// whether that was all of them.
pub(crate) fn explore(sc: &Scenario, bounds: Bounds, cap: usize) -> Result<(usize, bool), Failure> {
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

pub(crate) fn seed_for(base: u64, scenario: usize, i: usize) -> u64 {
    Random(base ^ ((scenario as u64) << 48) ^ (i as u64)).next()
}

pub(crate) fn env_num(name: &str, default: u64) -> u64 {
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

pub(crate) const RANDOM_BOUNDS: Bounds = Bounds {
    preemptions: usize::MAX,
    kills: usize::MAX,
    pauses: usize::MAX,
    faults: usize::MAX,
};

/// No preemptions, deaths, pauses or faulty replies: with `..NONE`, a
/// bound names only what it allows.
pub(crate) const NONE: Bounds = Bounds {
    preemptions: 0,
    kills: 0,
    pauses: 0,
    faults: 0,
};
