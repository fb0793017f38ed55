//! Properties of the parser and the verdicts, over arbitrary input.

use lockfile_core::decide::judge;
use lockfile_core::format::{self, Record, Timestamp};
use lockfile_core::{Identity, Liveness, Machine, ProcessInfo, Verdict};
use proptest::prelude::*;

fn word() -> impl Strategy<Value = String> {
    "[!-<>-~]{1,40}"
}

fn record() -> impl Strategy<Value = Record> {
    (
        1u32..=i32::MAX as u32,
        0u64..=253_402_300_799,
        0u32..1_000_000,
        proptest::option::of(word()),
        proptest::option::of(word()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(word()),
        proptest::option::of((1u32..=i32::MAX as u32, proptest::option::of(any::<u64>()))),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(
                pid,
                s,
                micros,
                hostname,
                boot_id,
                start_ticks,
                pid_namespace,
                nonce,
                companion,
                holder,
            )| {
                Record {
                    pid,
                    timestamp: Timestamp::new(s, micros * 1000),
                    hostname,
                    boot_id,
                    start_ticks,
                    pid_namespace,
                    nonce,
                    companion: companion.map(|(pid, _)| pid),
                    companion_start_ticks: companion.and_then(|(_, ticks)| ticks),
                    holder,
                    lease_ms: holder.map(|h| h % 1_000_000),
                    token: holder.map(|h| h >> 3),
                    modified: None,
                }
            },
        )
}

proptest! {
    #[test]
    fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(r) = format::parse(&bytes) {
            prop_assert!(r.pid > 0);
        }
    }

    #[test]
    fn any_text_parses_or_fails_cleanly(text in "[0-9 .eE+\\-a-z=\n\t]{0,80}") {
        let _ = format::parse(text.as_bytes());
    }

    #[test]
    fn everything_we_write_reads_back(r in record()) {
        let text = format::serialize(&r);
        prop_assert!(text.len() <= format::MAX_LEN);
        prop_assert_eq!(format::parse(text.as_bytes()), Ok(r.clone()));
        // And as labm8 reads it: the first two whitespace tokens.
        let mut tokens = text.split_whitespace();
        prop_assert_eq!(tokens.next().and_then(|t| t.parse::<u32>().ok()), Some(r.pid));
        let ts: f64 = tokens.next().and_then(|t| t.parse().ok()).unwrap_or(-1.0);
        prop_assert!((ts - r.timestamp.as_f64()).abs() < 1e-3);
    }

    #[test]
    fn unknown_liveness_is_never_stale(r in record(), me in 1u32..1000) {
        let machine = Machine {
            hostname: r.hostname.clone(),
            boot_id: r.boot_id.clone(),
            pid_namespace: r.pid_namespace,
        };
        let id = Identity { pid: me, start_ticks: None };
        let j = judge(&r, &id, &machine, |_| ProcessInfo::UNKNOWN);
        prop_assert_ne!(j.verdict, Verdict::Stale);
    }

    #[test]
    fn the_owner_itself_is_never_stale(r in record(), me in 1u32..1000) {
        let machine = Machine {
            hostname: r.hostname.clone(),
            boot_id: r.boot_id.clone(),
            pid_namespace: r.pid_namespace,
        };
        let id = Identity { pid: me, start_ticks: None };
        let alive = ProcessInfo {
            liveness: Liveness::Alive,
            start_ticks: r.start_ticks,
            start_time: Some(r.timestamp),
        };
        let j = judge(&r, &id, &machine, |_| alive);
        prop_assert!(matches!(j.verdict, Verdict::Held | Verdict::OwnedBySelf), "{:?}", j);
    }

    #[test]
    fn another_host_is_never_stale(r in record(), host in word()) {
        prop_assume!(r.hostname.as_ref().is_some_and(|h| *h != host));
        let machine = Machine { hostname: Some(host), ..Machine::default() };
        let id = Identity { pid: 1, start_ticks: None };
        let dead = ProcessInfo { liveness: Liveness::Dead, ..ProcessInfo::UNKNOWN };
        prop_assert_eq!(judge(&r, &id, &machine, |_| dead).verdict, Verdict::Foreign);
    }
}
