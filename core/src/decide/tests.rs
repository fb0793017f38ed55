use super::*;

const T0: Timestamp = Timestamp {
    seconds: 1_796_000_000,
    nanos: 0,
};

fn record(pid: u32) -> Record {
    Record {
        pid,
        timestamp: T0,
        ..Record::default()
    }
}

fn me() -> Identity {
    Identity {
        pid: 100,
        start_ticks: Some(5000),
    }
}

fn machine() -> Machine {
    Machine {
        hostname: Some("here".into()),
        boot_id: Some("boot-a".into()),
        pid_namespace: Some(7),
    }
}

fn alive(start_ticks: Option<u64>, start_time: Option<Timestamp>) -> ProcessInfo {
    ProcessInfo {
        liveness: Liveness::Alive,
        start_ticks,
        start_time,
    }
}

fn verdict(r: &Record, info: ProcessInfo) -> Verdict {
    judge(r, &me(), &machine(), |_| info).verdict
}

#[test]
fn own_pid_is_owned_by_self() {
    assert_eq!(
        verdict(&record(100), ProcessInfo::UNKNOWN),
        Verdict::OwnedBySelf
    );
    let mut r = record(100);
    r.start_ticks = Some(5000);
    assert_eq!(verdict(&r, ProcessInfo::UNKNOWN), Verdict::OwnedBySelf);
}

#[test]
fn own_pid_on_a_labm8_file_older_than_us_is_stale() {
    // A labm8 file (no start time) naming our pid, taken an hour before
    // we started: an earlier process with our (recycled) pid wrote it.
    let r = record(100);
    let started_later = alive(None, Some(Timestamp::new(T0.seconds + 3600, 0)));
    let j = judge(&r, &me(), &machine(), |_| started_later);
    assert_eq!(j.verdict, Verdict::Stale, "{}", j.reason);
    let started_before = alive(None, Some(Timestamp::new(T0.seconds - 10, 0)));
    assert_eq!(verdict(&r, started_before), Verdict::OwnedBySelf);
}

#[test]
fn own_pid_from_an_earlier_process_is_stale() {
    let mut r = record(100);
    r.start_ticks = Some(4000);
    assert_eq!(verdict(&r, ProcessInfo::UNKNOWN), Verdict::Stale);
}

#[test]
fn dead_owner_is_stale_and_unknown_is_held() {
    let dead = ProcessInfo {
        liveness: Liveness::Dead,
        ..ProcessInfo::UNKNOWN
    };
    assert_eq!(verdict(&record(200), dead), Verdict::Stale);
    assert_eq!(verdict(&record(200), ProcessInfo::UNKNOWN), Verdict::Held);
}

#[test]
fn pid_0_is_held_by_an_owner_of_unknown_liveness_whatever_is_asked() {
    let dead = ProcessInfo {
        liveness: Liveness::Dead,
        ..ProcessInfo::UNKNOWN
    };
    for info in [dead, ProcessInfo::UNKNOWN, alive(Some(1), Some(T0))] {
        let judged = judge(&record(0), &me(), &machine(), |_| info);
        assert_eq!(judged.verdict, Verdict::Held);
        assert_eq!(judged.cause, Cause::UnknownLiveness);
        assert!(judged.reason.contains("pid 0"), "{}", judged.reason);
    }
    let previous_boot = Record {
        boot_id: Some("boot-old".into()),
        hostname: Some("here".into()),
        ..record(0)
    };
    assert_eq!(verdict(&previous_boot, dead), Verdict::Held);
}

#[test]
fn start_ticks_decide_between_owner_and_recycled_pid() {
    let mut r = record(200);
    r.start_ticks = Some(42);
    assert_eq!(verdict(&r, alive(Some(42), None)), Verdict::Held);
    let j = judge(&r, &me(), &machine(), |_| alive(Some(43), None));
    assert_eq!(j.verdict, Verdict::Stale);
    assert!(j.reason.contains("recycled"), "{}", j.reason);
}

#[test]
fn process_started_after_the_lock_is_not_its_owner() {
    let r = record(200);
    let later = |s| alive(None, Some(Timestamp::new(T0.seconds + s, 0)));
    assert_eq!(verdict(&r, later(2)), Verdict::Held, "within the slack");
    let j = judge(&r, &me(), &machine(), |_| later(40 * 60));
    assert_eq!(j.verdict, Verdict::Stale);
    assert_eq!(
        j.reason,
        "pid 200 started 40 min after the lock was taken, so it cannot be the owner"
    );
    let earlier = alive(None, Some(Timestamp::new(T0.seconds - 100, 0)));
    assert_eq!(verdict(&r, earlier), Verdict::Held);
}

#[test]
fn other_host_or_namespace_is_foreign_even_if_pid_is_dead() {
    let dead = ProcessInfo {
        liveness: Liveness::Dead,
        ..ProcessInfo::UNKNOWN
    };
    let mut r = record(200);
    r.hostname = Some("there".into());
    assert_eq!(verdict(&r, dead), Verdict::Foreign);
    let mut r = record(100);
    r.pid_namespace = Some(8);
    assert_eq!(verdict(&r, dead), Verdict::Foreign, "even with our pid");
}

#[test]
fn previous_boot_is_stale_without_asking() {
    let mut r = record(200);
    r.boot_id = Some("boot-b".into());
    let j = judge(&r, &me(), &machine(), |_| panic!("must not ask"));
    assert_eq!(j.verdict, Verdict::Stale);
}

#[test]
fn missing_facts_fall_back_to_pid_liveness() {
    let mut r = record(200);
    r.hostname = Some("there".into());
    let bare = Machine::default();
    let j = judge(&r, &me(), &bare, |_| alive(None, None));
    assert_eq!(j.verdict, Verdict::Held);
}

#[test]
fn durations_read_well() {
    assert_eq!(human_duration(5), "5 s");
    assert_eq!(human_duration(2400), "40 min");
    assert_eq!(human_duration(3 * 3600), "3 h");
    assert_eq!(human_duration(5 * 86_400), "5 days");
    assert_eq!(human_duration(-3), "0 s");
}
