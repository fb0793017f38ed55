//! Sweeps and surveys: which private files are inert and go, which stay, and what `list` reports.

use super::*;

#[test]
fn sweep_removes_inert_claims_and_dead_temps_only() {
    let f = Fixture::new();
    f.sys.set(600, Liveness::Alive, Some(6));
    fs::write(f.path().join("x.lock"), record(200, Some(1), "dead")).expect("plant");
    let junk = [
        ".x.lock.break.00000000000000aa",       // target gone: inert
        ".x.lock.4194303.00000000000000bb.tmp", // dead runner
    ];
    let keep = [
        ".x.lock.600.00000000000000cc.tmp", // live runner
        ".y.lock.break.00000000000000dd",   // another lock's
        "unrelated",
    ];
    for n in junk.iter().chain(&keep) {
        fs::write(f.path().join(n), record(600, Some(6), n)).expect("plant");
    }
    // Written on another host: its runner's pid means nothing here.
    let elsewhere = ".x.lock.4194302.00000000000000ee.tmp";
    let mut foreign = format::parse(record(600, Some(6), "far").as_bytes()).expect("record");
    foreign.hostname = Some("elsewhere".into());
    fs::write(f.path().join(elsewhere), format::serialize(&foreign)).expect("plant");
    f.lock().acquire(true, false).expect("takeover");
    let mut expected: Vec<String> = keep.iter().map(|s| (*s).to_owned()).collect();
    expected.push("x.lock".into());
    expected.push(elsewhere.into());
    expected.sort();
    assert_eq!(names(f.path()), expected);
}

#[test]
fn a_release_for_another_process_sweeps_only_after_stepping_over_an_abandoned_claim() {
    let f = Fixture::new();
    // ME's lock, released by RUNNER on ME's behalf (the CLI's `release`).
    let mine = record(ME, Some(7), "mine");
    let dead_temp = ".x.lock.4194303.00000000000000bb.tmp";
    fs::write(f.path().join(dead_temp), record(4_194_303, Some(1), "t")).expect("plant");

    // No sign of a crash: the directory is not listed, the leftover stays
    // (a sweep costs a system call per entry under WASI).
    fs::write(f.path().join("x.lock"), &mine).expect("plant");
    f.lock().release(false).expect("release for ME");
    assert_eq!(names(f.path()), vec![dead_temp.to_owned()]);

    // A releaser died holding its claim on ME's lock: the next release
    // steps over that claim, removes it, and sweeps what the crash left.
    fs::write(f.path().join("x.lock"), &mine).expect("plant");
    let abandoned = format!(
        ".x.lock.break.{:016x}",
        format::fingerprint(mine.as_bytes())
    );
    fs::write(f.path().join(&abandoned), record(4_194_303, Some(1), "c")).expect("claim");
    f.lock()
        .release(false)
        .expect("release over the abandoned claim");
    assert_eq!(
        names(f.path()),
        Vec::<String>::new(),
        "claim and temp swept"
    );
}

/// `list` and `clean`: every lock of a directory with its verdict, files
/// that only look like locks reported with why, private files judged as a
/// sweep judges them, and a directory sweep that removes exactly those.
#[test]
fn a_survey_finds_every_lock_and_judges_private_files_as_a_sweep_does() {
    use lockfile_core::protocol::{survey, sweep_dir, LeftoverKind};
    let f = Fixture::new();
    let p = f.path();
    f.sys.set(600, Liveness::Alive, Some(6));
    fs::write(p.join("live.lock"), record(600, Some(6), "live")).expect("plant");
    fs::write(p.join("stale.lock"), record(200, Some(1), "dead")).expect("plant");
    // labm8's own form, under a name that does not say "lock".
    fs::write(p.join("job.pid"), "600 1799999000.5\n").expect("plant");
    fs::write(p.join("garbage.lock"), "not a lock\n").expect("plant");
    fs::write(p.join("notes.txt"), "not a lock either\n").expect("plant");
    std::os::unix::fs::symlink("live.lock", p.join("link.lock")).expect("symlink");
    fs::create_dir(p.join("dir.lock")).expect("dir");
    let fifo = std::ffi::CString::new(p.join("fifo.lock").to_string_lossy().as_bytes()).expect("c");
    // SAFETY: a valid C string; mkfifo only creates a name.
    assert_eq!(unsafe { libc_mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let gone = [
        ".stale.lock.4194303.00000000000000bb.tmp", // dead writer
        ".absent.lock.break.00000000000000aa",      // its lock is gone
    ];
    let kept = [
        ".live.lock.600.00000000000000cc.tmp", // live writer
        ".live.lock.token",                    // a sequence: never swept
    ];
    for n in gone.iter().chain(&kept) {
        fs::write(p.join(n), record(600, Some(6), n)).expect("plant");
    }
    fs::write(p.join(".live.lock.token"), "7\n").expect("plant");

    let s = survey(&f.dir, "/d", &f.sys).expect("survey");
    let verdicts: Vec<(String, Verdict)> = s
        .locks
        .iter()
        .map(|l| (l.path.clone(), l.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("/d/garbage.lock".to_owned(), Verdict::Malformed),
            ("/d/job.pid".to_owned(), Verdict::Held),
            ("/d/live.lock".to_owned(), Verdict::Held),
            ("/d/stale.lock".to_owned(), Verdict::Stale),
        ]
    );
    let unreadable: Vec<String> = s.unreadable.iter().map(ToString::to_string).collect();
    assert_eq!(unreadable.len(), 3, "{unreadable:?}");
    for (what, name) in [
        ("directory", "dir.lock"),
        ("FIFO", "fifo.lock"),
        ("symbolic link", "link.lock"),
    ] {
        assert!(
            unreadable
                .iter()
                .any(|u| u.contains(name) && u.contains(what)),
            "{name}: {unreadable:?}"
        );
    }
    let judged: Vec<(&str, &str, LeftoverKind, bool)> = s
        .leftovers
        .iter()
        .map(|l| (l.name.as_str(), l.lock.as_str(), l.kind, l.gone))
        .collect();
    assert_eq!(
        judged,
        [
            (gone[1], "absent.lock", LeftoverKind::Claim, true),
            (kept[0], "live.lock", LeftoverKind::Temporary, false),
            (kept[1], "live.lock", LeftoverKind::Token, false),
            (gone[0], "stale.lock", LeftoverKind::Temporary, true),
        ]
    );

    let removed: Vec<String> = sweep_dir(&f.dir, "/d", &f.sys)
        .expect("sweep")
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(removed, [gone[1], gone[0]]);
    for n in kept {
        assert!(p.join(n).exists(), "{n} kept");
    }
    assert!(
        p.join("stale.lock").exists(),
        "a sweep never removes a lock"
    );
}

extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
}
