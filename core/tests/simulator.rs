//! A deterministic simulator of the lock protocol (in the manner of
//! FoundationDB's simulator and TigerBeetle's VOPR).
//!
//! The protocol runs unchanged over the [`Dir`] and [`System`] traits. Here
//! the directory is in memory, with exactly the semantics the protocol relies
//! on (exclusive create, `link` failing on an existing name, `rename`
//! replacing atomically, link counts, modification times, and reads and
//! writes that take more than one step, so a reader can see a rewrite in
//! progress). Processes run on hosts (a hostname and a boot id each): a
//! process sees only its own host's processes, so another host's lock or
//! claim is judged by its lease alone. A virtual clock moves a millisecond
//! per step, and further when the scheduler pauses everyone.
//!
//! Each actor (a process running the protocol, for itself or for another
//! process) runs on its own thread, but only one moves at a time: every
//! directory call is a *step*, and before each step the actor waits for the
//! scheduler. The scheduler chooses which waiting actor takes its next step,
//! whether that step's `link` or `rename` reply is lost (the retransmission
//! answers `EEXIST` or `ENOENT`) or answered EIO (done or not), which
//! process dies, or that the clock jumps past every lease (so any step can
//! be paused past any lease); every choice is recorded, so a schedule
//! replays exactly. Two strategies choose:
//!
//! - exhaustive: every schedule with at most `P` preemptions (switching away
//!   from an actor that could go on) and at most `K` deaths, pauses or
//!   faulty replies, depth first (the preemption bounding of CHESS);
//! - random: seeded schedules; a failure prints the seed, and
//!   `LOCKFILE_SIM_REPLAY=SCENARIO:SEED` replays it with its trace.
//!
//! Invariants, checked after every step:
//! 1. among live holders whose lease has not run out (by the holder's own
//!    reckoning: what `refresh` would still renew) and all unleased ones, at
//!    most one believes it holds the lock, except in the documented residual
//!    (below);
//! 2. no operation removes or replaces a lock record other than the one it
//!    read last (unless `force`), except in the residual;
//! 3. the lock, whenever it exists, is a complete record (nothing is ever
//!    written into a published lock);
//! 4. when an acquisition succeeds: it has a token if it is leased, asked
//!    for one, took over a record with a token or a lease, or the lock
//!    already had a sequence (`.NAME.token`), and tokens strictly increase
//!    in the order the acquisitions' records were published;
//! 5. a holder writes to storage that fences by token: two holders never
//!    write under one token, and a holder whose lock was replaced or
//!    removed before its `refresh` began never has that refresh succeed;
//!
//! and at the end of every schedule, once every process is dead and every
//! lease has run out:
//! 6. from each host the scenario names, on the same leftovers,
//!    `acquire(replace_stale)` recovers the lock without `force` (no wedge);
//! 7. after a sweep from every host, no private file is left (only the
//!    token file, which is the sequence).
//!
//! **The residual** (docs/PROTOCOL.md, "A breaker is delayed after
//! claiming"): a claimer whose claim's lease ran out, and which another host
//! stepped over only after the claimer had checked that its claim still
//! stands, acts late: its rename or unlink lands on the next holder's lock.
//! Invariant 2 lets exactly that through (the step-over's claim was linked
//! after the claimer's check; one linked before the check is the hole the
//! check closed), and invariant 1 then lets two holders with unexpired
//! leases believe only if the lock is the record of one of them and that
//! one holds a token above every other's, each of which has a lease and a
//! token (so fenced storage refuses them, invariant 5, and each learns at
//! its next refresh). The simulator found that a step-over which begins and
//! ends between the two reads of the check passed it when the check read our
//! claim first; it now looks for a claim on ours first, then reads ours and
//! what it claimed, and
//! `no_step_over_passes_the_check_outside_the_documented_residual` keeps
//! that window shut.
//!
//! **The token residual** (docs/PROTOCOL.md, "Fencing tokens"): a holder
//! paused between reading `.NAME.token` and writing it, whose lock was taken
//! over meanwhile, writes its lower token, and later acquisitions may issue
//! tokens up to the takeover's again. Invariant 4 allows exactly that (the
//! file went back, written by a holder that no longer is the lock), and
//! invariant 5 then allows a token equal to that highest one to be written
//! twice (storage that accepts equal tokens takes both: "up to" includes it).
//!
//! `LOCKFILE_SIM_SCHEDULES` sets the number of random schedules per scenario
//! (default 200) and `LOCKFILE_SIM_SEED` their base seed,
//! `LOCKFILE_SIM_EXHAUSTIVE_CAP` the schedules per bound (default 1000), and
//! `LOCKFILE_SIM_ONLY=NAME[,NAME]` the scenarios; for a long soak:
//! `LOCKFILE_SIM_EXHAUSTIVE_CAP=1000000 LOCKFILE_SIM_SCHEDULES=20000 cargo test --release -p lockfile-core --test simulator`.

#[path = "simulator/dir.rs"]
mod dir;
#[path = "simulator/scenarios.rs"]
mod scenarios;
#[path = "simulator/scheduler.rs"]
mod scheduler;
#[path = "simulator/world.rs"]
mod world;
