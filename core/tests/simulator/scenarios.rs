//! The scenarios, and the tests that run them.

use crate::scheduler::*;
use crate::world::*;

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
