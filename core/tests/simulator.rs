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

#[path = "simulator/dir.rs"]
mod dir;
#[path = "simulator/scenarios.rs"]
mod scenarios;
#[path = "simulator/scheduler.rs"]
mod scheduler;
#[path = "simulator/world.rs"]
mod world;
