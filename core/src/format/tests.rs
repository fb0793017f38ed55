use super::*;

fn full() -> Record {
    Record {
        pid: 4242,
        timestamp: Timestamp::new(1_796_032_931, 123_456_000),
        hostname: Some("build-01".into()),
        boot_id: Some("6f1c0e36-4be0-4f5e-9a55-7a4f2a3c9f10".into()),
        start_ticks: Some(1_234_567),
        pid_namespace: Some(4_026_531_836),
        nonce: Some("9f2c4e1ab0d3c577".into()),
        companion: Some(4243),
        companion_start_ticks: Some(1_234_590),
        holder: Some(0x00c0_ffee_0000_0042),
        lease_ms: Some(30_000),
        token: Some(17),
        modified: None,
    }
}

#[test]
fn digits_are_written_as_fmt_writes_them() {
    for n in [
        0,
        7,
        10,
        99,
        4242,
        1_796_032_931,
        u64::from(u32::MAX),
        u64::MAX,
    ] {
        let mut out = String::new();
        push_u64(&mut out, n);
        assert_eq!(out, n.to_string());
        assert_eq!(hex16(n), format!("{n:016x}"));
    }
    for (seconds, nanos) in [
        (0, 0),
        (1, 999),
        (1, 1000),
        (5, 999_999_999),
        (MAX_SECONDS, 10_000),
    ] {
        let t = Timestamp::new(seconds, nanos);
        let mut out = String::new();
        push_timestamp(&mut out, t);
        assert_eq!(out, t.to_string());
    }
    let r = full();
    let first = serialize(&r).lines().next().map(str::to_owned);
    assert_eq!(first, Some(format!("{} {}", r.pid, r.timestamp)));
}

#[test]
fn reads_what_labm8_writes() {
    let r = parse(b"1234 1700000000.1234567\n").expect("labm8 file");
    assert_eq!(r.pid, 1234);
    assert_eq!(r.timestamp, Timestamp::new(1_700_000_000, 123_456_700));
    assert_eq!(r.hostname, None);
    let r = parse(b"1234 1700000000.0 myhost").expect("labm8 2020 file");
    assert_eq!(r.hostname.as_deref(), Some("myhost"));
    let r = parse(b"77 1700000000").expect("integer time");
    assert_eq!(r.timestamp, Timestamp::new(1_700_000_000, 0));
    let r = parse(b"77 1.7e9").expect("exponent form");
    assert_eq!(r.timestamp.seconds, 1_700_000_000);
}

#[test]
fn first_line_is_what_labm8_reads() {
    let text = serialize(&full());
    let first = text.lines().next().expect("a first line");
    assert_eq!(first, "4242 1796032931.123456");
    // labm8: contents.split() -> int(tokens[0]), float(tokens[1]).
    let tokens: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(tokens[0].parse::<i64>(), Ok(4242));
    assert_eq!(tokens[1].parse::<f64>(), Ok(1_796_032_931.123_456));
}

#[test]
fn round_trips_every_field() {
    let r = full();
    assert_eq!(parse(serialize(&r).as_bytes()), Ok(r));
    let bare = Record {
        pid: 1,
        timestamp: Timestamp::new(0, 0),
        ..Record::default()
    };
    assert_eq!(serialize(&bare), "1 0.000000\n");
    assert_eq!(parse(serialize(&bare).as_bytes()), Ok(bare));
}

#[test]
fn malformed_files_say_what_is_wrong() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "empty"),
        (b"  \n\t ", "empty"),
        (b"garbage here", "not a number"),
        (b"-5 1700000000.0", "negative"),
        (b"99999999999999999999 1.0", "out of range"),
        (b"2147483648 1.0", "out of range"),
        (b"12", "no timestamp"),
        (b"12 soon", "not a number"),
        (b"12 -1.5", "before 1970"),
        (b"12 inf", "not a number"),
        (b"12 nan", "not a number"),
        (b"12 +-5e0", "not a number"),
        (b"12 ++5", "not a number"),
        (b"12 1e400", "after the year 9999"),
        (b"12 99999999999999", "after the year 9999"),
        (b"12 1.0\0\0", "NUL"),
        (b"\xff\xfe12 1.0", "not UTF-8"),
        (b"12 1.0\nstart=yesterday", "field `start`"),
        (b"12 1.0\npidns=-1", "field `pidns`"),
        (b"12 1.0\nhost=", "field `host`"),
        (b"12 1.0\ncompanion=0", "field `companion`"),
        (b"12 1.0\ncompanion=4294967296", "field `companion`"),
    ];
    for (bytes, needle) in cases {
        let err = parse(bytes).expect_err("malformed");
        let message = err.to_string();
        assert!(
            message.contains(needle),
            "{:?}: `{message}` lacks `{needle}`",
            String::from_utf8_lossy(bytes)
        );
    }
    assert_eq!(parse(&[b' '; MAX_LEN + 1]), Err(FormatError::TooLarge));
}

#[test]
fn unknown_fields_are_ignored() {
    let r = parse(b"12 1.5\nfuture=thing\nstray words\nstart=9").expect("parses");
    assert_eq!(r.start_ticks, Some(9));
    assert_eq!(r.hostname, None, "only the third token is a bare hostname");
}

#[test]
fn unwritable_words_are_left_out() {
    let r = Record {
        hostname: Some("my host".into()),
        ..full()
    };
    let back = parse(serialize(&r).as_bytes()).expect("parses");
    assert_eq!(back.hostname, None);
    assert_eq!(back.boot_id, r.boot_id);
}

#[test]
fn check_pid_bounds() {
    assert!(check_pid(0).is_err());
    assert!(check_pid(1).is_ok());
    assert!(check_pid(4_194_304).is_ok());
    assert!(check_pid(u32::MAX).is_err());
    assert!(check_recorded_pid(0).is_ok());
    assert!(check_recorded_pid(u32::MAX).is_err());
}

#[test]
fn pid_0_parses_as_labm8_writes_it() {
    let r = parse(b"0 1700000000.5\n").expect("parses");
    assert_eq!(r.pid, 0);
    assert_eq!(r.timestamp.seconds, 1_700_000_000);
}

#[test]
fn fingerprints_differ_by_content() {
    assert_ne!(fingerprint(b"1 1.0\n"), fingerprint(b"1 1.0 \n"));
    assert_eq!(fingerprint(b"abc"), fingerprint(b"abc"));
}
