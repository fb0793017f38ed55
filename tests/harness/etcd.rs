//! Locks kept in a real etcd (Debian's `etcd-server`, members started here
//! on free 127.0.0.1 ports and stopped when the rig is dropped), through
//! the `lockfile` binary: the component runs the protocol over the host's
//! `kv` interface. "Another host" is another UTS namespace with its own
//! hostname (`unshare -u`, root), as in leases.rs.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::*;

/// A cluster of etcd members on 127.0.0.1, each in a data directory of its
/// own; killed and removed when dropped.
struct Etcd {
    members: Vec<Child>,
    endpoints: Vec<String>,
    dir: tempfile::TempDir,
}

/// A port for an etcd member: free now, and one that nothing else will be
/// handed before etcd binds it. The kernel's pick (`bind` to port 0) is
/// not: the port is free again once the probe closes, and another test's
/// pick, at the same moment, may get the same one; the member that binds
/// second then ends, and its cluster never answers. So the ports come in
/// turn from below the kernel's ephemeral range (which neither `bind` to
/// port 0 nor an outgoing connection draws from), each handed out once in
/// this process, from an offset that differs between processes.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    const SPAN: u32 = 8192;
    assert!(
        ephemeral_low >= 1024 + SPAN,
        "the ephemeral ports start at {ephemeral_low}: no room below them for etcd's ports"
    );
    let start = std::process::id().wrapping_mul(2654435761) % SPAN;
    for _ in 0..SPAN {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = ephemeral_low - SPAN + (start + i) % SPAN;
        let port = u16::try_from(port).expect("a port");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free port in {}..{ephemeral_low} for etcd",
        ephemeral_low - SPAN
    );
}

fn etcd_binary() -> &'static str {
    let found = Command::new("sh")
        .args(["-c", "command -v etcd"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`etcd` is missing: install Debian's etcd-server (scripts/setup does, as root)"
    );
    "etcd"
}

impl Etcd {
    /// Starts `n` members as one cluster and waits until it answers.
    fn start(n: usize) -> Etcd {
        let bin = etcd_binary();
        let dir = sandbox();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                let log = std::fs::File::create(dir.path().join(format!("m{i}.log"))).expect("log");
                Command::new(bin)
                    .args(["--name", &format!("m{i}")])
                    .args(["--data-dir", s(&dir.path().join(format!("m{i}")))])
                    .args([
                        "--listen-client-urls",
                        &format!("http://127.0.0.1:{client}"),
                    ])
                    .args([
                        "--advertise-client-urls",
                        &format!("http://127.0.0.1:{client}"),
                    ])
                    .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
                    .args([
                        "--initial-advertise-peer-urls",
                        &format!("http://127.0.0.1:{peer}"),
                    ])
                    .args(["--initial-cluster", &cluster])
                    .args(["--initial-cluster-state", "new"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("start etcd")
            })
            .collect();
        let mut etcd = Etcd {
            members,
            endpoints: ports
                .iter()
                .map(|(c, _)| format!("127.0.0.1:{c}"))
                .collect(),
            dir,
        };
        etcd.wait_ready();
        etcd
    }

    /// Waits until a lock can be looked at through every member (a quorum
    /// alone would answer with a member dead, and a test that then kills
    /// the leader would be left with no quorum); fails at once, with its
    /// log, if a member has ended.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut waiting: Vec<usize> = (0..self.members.len()).collect();
        loop {
            let mut why = String::new();
            waiting.retain(|&i| {
                let probe = format!("etcd://{}/ready-probe", self.endpoints[i]);
                let out = lockfile(&["status", "--pid", "1", &probe]);
                why = stderr(&out);
                code(&out) != 0
            });
            if waiting.is_empty() {
                return;
            }
            for (i, m) in self.members.iter_mut().enumerate() {
                if let Ok(Some(status)) = m.try_wait() {
                    panic!(
                        "etcd member m{i} ended ({status}) before the cluster answered; its log:\n{}",
                        self.log(i)
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd members {waiting:?} did not answer within 30 s: {why}\nthe members' logs:\n{}",
                (0..self.members.len())
                    .map(|i| format!("--- m{i}\n{}", self.log(i)))
                    .collect::<String>()
            );
            sleep(Duration::from_millis(100));
        }
    }

    /// The last lines member `i` wrote.
    fn log(&self, i: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join(format!("m{i}.log")))
            .unwrap_or_else(|e| format!("(cannot read it: {e})"));
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `etcd://ENDPOINTS/KEY`.
    fn address(&self, key: &str) -> String {
        format!("etcd://{}/{key}", self.endpoints.join(","))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

fn json(out: &Output) -> serde_json::Value {
    expect_code(out, 0);
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Runs `script` in a shell on host `name` (its own UTS namespace), with
/// `$L` the lockfile binary and `$A` the lock's address.
fn on_host(name: &str, address: &str, script: &str) -> Command {
    require_root("`unshare -u` makes another host");
    let mut cmd = Command::new("unshare");
    cmd.args(["-u", "sh", "-c"])
        .arg(format!("hostname {name} && {{ {script}; }}"))
        .env("L", lockfile_bin())
        .env("A", address)
        .stdin(Stdio::null());
    cmd
}

/// The cycle, the record and the refusals, as for a lock file: labm8's first
/// line is the value's, the token is the key's create revision, and every
/// acquisition's token is higher than the last.
#[test]
fn a_lock_in_etcd_is_a_lock_file_in_a_key() {
    let etcd = Etcd::start(1);
    let address = etcd.address("locks/cycle");
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    expect_code(
        &lockfile(&["acquire", "--lease", "30", "--pid", &pid, &address]),
        0,
    );
    let status = json(&lockfile(&["status", "--json", "--pid", &pid, &address]));
    assert_eq!(status["verdict"], "owned-by-self");
    assert_eq!(status["pid"].as_u64(), Some(u64::from(owner.pid())));
    assert_eq!(status["lease_ms"].as_u64(), Some(30_000));
    let first = status["token"].as_u64().expect("a token");
    // Another process is refused, and told who holds it.
    let refused = lockfile(&["acquire", "--lease", "30", "--pid", "1", &address]);
    expect_code(&refused, 1);
    expect_stderr(&refused, &format!("held by pid {pid}"));
    expect_code(&lockfile(&["release", "--pid", "1", &address]), 1);
    // Renewed, then released by its owner.
    expect_code(&lockfile(&["refresh", "--pid", &pid, &address]), 0);
    expect_code(&lockfile(&["release", "--pid", &pid, &address]), 0);
    assert_eq!(
        json(&lockfile(&["status", "--json", "--pid", &pid, &address]))["verdict"],
        "unlocked"
    );
    // A refresh of a lock that is gone says it is lost.
    let lost = lockfile(&["refresh", "--pid", &pid, &address]);
    expect_code(&lost, 1);
    // `run` holds it while COMMAND runs, with a higher token in LOCKFILE_TOKEN.
    let out = lockfile(&[
        "run",
        &address,
        "--",
        "sh",
        "-c",
        "echo $LOCKFILE_TOKEN; exec \"$0\" status --json --pid $PPID \"$1\"",
        lockfile_bin(),
        &address,
    ]);
    expect_code(&out, 0);
    let text = stdout(&out);
    let (token, inside) = text.split_once('\n').expect("two outputs");
    let token: u64 = token.trim().parse().expect("LOCKFILE_TOKEN");
    assert!(token > first, "token {token} after {first}");
    let inside: serde_json::Value = serde_json::from_str(inside).expect("json");
    // Seen from `lockfile run` (COMMAND's parent), the lock is its own.
    assert_eq!(inside["verdict"], "owned-by-self", "{inside}");
    assert_eq!(inside["token"].as_u64(), Some(token));
    assert_eq!(
        json(&lockfile(&["status", "--json", "--pid", &pid, &address]))["verdict"],
        "unlocked",
        "run released it"
    );
    // Without --lease, `acquire` is a usage error: the key would outlive nothing.
    let usage = lockfile(&["acquire", "--pid", &pid, &address]);
    expect_code(&usage, 2);
    expect_stderr(&usage, "--lease");
}

/// A holder that dies on this host leaves a lock that is stale at once (the
/// pid rules hold); `acquire` takes it over without a flag, `--no-replace-stale`
/// refuses it.
#[test]
fn a_dead_holder_on_this_host_is_stale_at_once() {
    let etcd = Etcd::start(1);
    let address = etcd.address("locks/dead");
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    expect_code(
        &lockfile(&["acquire", "--lease", "60", "--pid", &pid, &address]),
        0,
    );
    drop(owner); // killed and reaped: the holder is dead
    let status = json(&lockfile(&["status", "--json", "--pid", "1", &address]));
    assert_eq!(status["verdict"], "stale", "{status}");
    assert_eq!(status["cause"], "dead", "{status}");
    let next = Sleeper::new();
    let next_pid = next.pid_str();
    expect_code(
        &lockfile(&[
            "acquire",
            "--no-replace-stale",
            "--lease",
            "60",
            "--pid",
            &next_pid,
            &address,
        ]),
        1,
    );
    expect_code(
        &lockfile(&["acquire", "--lease", "60", "--pid", &next_pid, &address]),
        0,
    );
    let status = json(&lockfile(&[
        "status", "--json", "--pid", &next_pid, &address,
    ]));
    assert_eq!(status["verdict"], "owned-by-self");
    expect_code(&lockfile(&["release", "--pid", &next_pid, &address]), 0);
}

/// Bad input and faults: an address without a key, an endpoint nothing
/// listens on (a clear error, exit 3, well within the 5 s dial timeout
/// plus start-up), and a key holding something that is not a lock record
/// (refused as malformed; left as it is; only --force replaces it).
#[test]
fn bad_addresses_unreachable_members_and_garbage_give_clear_errors() {
    let no_key = lockfile(&["status", "etcd://127.0.0.1:2379/"]);
    expect_code(&no_key, 3);
    expect_stderr(&no_key, "the key is empty");
    let no_endpoints = lockfile_env(
        &["status", "etcd:///locks/x"],
        &[("LOCKFILE_ETCD_ENDPOINTS", "")],
    );
    assert_ne!(code(&no_endpoints), 0);
    let bad_port = lockfile(&["status", "etcd://127.0.0.1:notaport/x"]);
    expect_code(&bad_port, 3);
    expect_stderr(&bad_port, "not an endpoint");
    let started = Instant::now();
    let unreachable = lockfile(&[
        "acquire",
        "--lease",
        "5",
        &format!("etcd://127.0.0.1:{}/x", free_port()),
    ]);
    expect_code(&unreachable, 3);
    expect_stderr(&unreachable, "etcd");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "an unreachable endpoint took {:?} to report",
        started.elapsed()
    );

    let etcd = Etcd::start(1);
    let address = etcd.address("locks/garbage");
    // Planted through the library's own store, as etcdctl would.
    let store = lockfile_host::etcd::EtcdStore::connect(&etcd.endpoints, Duration::from_secs(5))
        .expect("connect");
    use lockfile_host::kv::Store;
    store
        .create("locks/garbage", b"not a lock\n", 0)
        .expect("put")
        .expect("created");
    let status = json(&lockfile(&["status", "--json", "--pid", "1", &address]));
    assert_eq!(status["verdict"], "malformed", "{status}");
    let refused = lockfile(&["acquire", "--lease", "5", "--pid", "1", &address]);
    expect_code(&refused, 3);
    expect_stderr(&refused, "left as it is");
    assert_eq!(
        store
            .get("locks/garbage")
            .expect("get")
            .expect("kept")
            .value,
        b"not a lock\n",
        "the garbage was changed"
    );
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    expect_code(
        &lockfile(&[
            "acquire", "--force", "--lease", "5", "--pid", &pid, &address,
        ]),
        0,
    );
    expect_code(&lockfile(&["release", "--pid", &pid, &address]), 0);
}

/// The counter: two simulated hosts, two workers each, 100 `lockfile run`
/// each on a three-member cluster; every run succeeds and the counter is
/// exact.
#[test]
#[ignore = "needs root (`unshare -u` makes other hosts): scripts/test runs it as root"]
fn two_hosts_count_exactly_under_a_lock_in_a_three_member_cluster() {
    require_root("`unshare -u` makes other hosts");
    let etcd = Etcd::start(3);
    let address = etcd.address("locks/counter");
    let dir = sandbox();
    let counter = dir.path().join("counter");
    std::fs::write(&counter, "0\n").expect("counter");
    let failures = dir.path().join("failures");
    let workers: Vec<Child> = ["alpha", "alpha", "beta", "beta"]
        .iter()
        .map(|host| {
            on_host(
                host,
                &address,
                &format!(
                    "for i in $(seq 100); do \"$L\" run -w 120 \"$A\" -- \
                       sh -c 'read n < {c}; echo $((n+1)) > {c}' || echo $? >> {f}; done",
                    c = s(&counter),
                    f = s(&failures),
                ),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn a worker")
        })
        .collect();
    for w in workers {
        let out = w.wait_with_output().expect("worker");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        !failures.exists(),
        "runs failed with codes {:?}",
        std::fs::read_to_string(&failures).unwrap_or_default()
    );
    assert_eq!(
        std::fs::read_to_string(&counter).expect("counter").trim(),
        "400"
    );
}

/// A holder on another host killed (its host crashed): this host is
/// refused while the lease runs (a foreign lock), and takes the lock once
/// etcd has expired it, not before.
#[test]
#[ignore = "needs root (`unshare -u` makes another host): scripts/test runs it as root"]
fn a_killed_holder_on_another_host_holds_until_its_lease_runs_out() {
    require_root("`unshare -u` makes another host");
    let etcd = Etcd::start(1);
    let address = etcd.address("locks/crash");
    let dir = sandbox();
    let pid_file = dir.path().join("pid");
    // `run --lease 2` on host elsewhere; its COMMAND says its pid and sleeps.
    let mut holder = on_host(
        "elsewhere",
        &address,
        &format!(
            "exec \"$L\" run --lease 2 \"$A\" -- sh -c 'echo $$ > {}; exec sleep 600'",
            s(&pid_file)
        ),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("holder");
    wait_for_file(&pid_file);
    let command_pid = std::fs::read_to_string(&pid_file).expect("pid");
    // The whole host goes: `lockfile run` and its COMMAND, with no release.
    let _ = holder.kill();
    let _ = Command::new("kill")
        .args(["-9", command_pid.trim()])
        .status();
    let _ = holder.wait();
    let killed = Instant::now();
    let status = json(&lockfile(&["status", "--json", "--pid", "1", &address]));
    assert_eq!(status["verdict"], "foreign", "{status}");
    let me = Sleeper::new();
    let pid = me.pid_str();
    let refused = lockfile(&["acquire", "--lease", "5", "--pid", &pid, &address]);
    expect_code(&refused, 1);
    // etcd expires a 2 s lease within about 2 s (plus its own tick): then free.
    let taken = lockfile(&[
        "acquire", "-w", "30", "--lease", "5", "--pid", &pid, &address,
    ]);
    expect_code(&taken, 0);
    assert!(
        killed.elapsed() >= Duration::from_millis(1_500),
        "taken {:?} after the crash, before the lease could run out",
        killed.elapsed()
    );
    expect_code(&lockfile(&["release", "--pid", &pid, &address]), 0);
}

/// A holder paused past its lease (SIGSTOP): etcd expires the lease, another
/// acquirer takes the lock with a higher token; the paused `run`, resumed,
/// learns at its next renewal that the lock is lost, sends COMMAND SIGTERM
/// and exits 4, and leaves the new holder's lock alone. With `--on-lost
/// ignore` COMMAND runs on to its end.
#[test]
fn a_paused_holder_loses_to_a_higher_token_and_run_ends_its_command() {
    let etcd = Etcd::start(1);
    for on_lost in ["term", "ignore"] {
        let address = etcd.address(&format!("locks/paused-{on_lost}"));
        let dir = sandbox();
        let first = dir.path().join("first");
        let done = dir.path().join("done");
        let holder = Command::new(lockfile_bin())
            .args(["run", "--lease", "1", "--on-lost", on_lost, &address, "--"])
            .args([
                "sh",
                "-c",
                &format!(
                    "echo $LOCKFILE_TOKEN > {f}; sleep 6; echo finished > {d}",
                    f = s(&first),
                    d = s(&done)
                ),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run");
        let first_token: u64 = wait_for_number(&first);
        let pid = holder.id().to_string();
        assert!(Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .expect("kill")
            .success());
        // The lease (1 s) runs out in etcd; this host waits for it.
        let next = Sleeper::new();
        let next_pid = next.pid_str();
        let taken = lockfile(&[
            "acquire", "-w", "30", "--lease", "30", "--pid", &next_pid, &address,
        ]);
        expect_code(&taken, 0);
        let status = json(&lockfile(&[
            "status", "--json", "--pid", &next_pid, &address,
        ]));
        let second_token = status["token"].as_u64().expect("token");
        assert!(
            second_token > first_token,
            "{second_token} after {first_token}"
        );
        assert!(Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .expect("kill")
            .success());
        let out = holder.wait_with_output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("lost"), "{on_lost}: {err}");
        match on_lost {
            "term" => {
                assert_eq!(out.status.code(), Some(4), "{err}");
                assert!(!done.exists(), "COMMAND ran on after the lock was lost");
            }
            _ => assert!(done.exists(), "COMMAND did not run to its end: {err}"),
        }
        // The new holder's lock is untouched.
        let status = json(&lockfile(&[
            "status", "--json", "--pid", &next_pid, &address,
        ]));
        assert_eq!(status["verdict"], "owned-by-self", "{status}");
        assert_eq!(status["token"].as_u64(), Some(second_token));
        expect_code(&lockfile(&["release", "--pid", &next_pid, &address]), 0);
    }
}

/// A member's own metrics (Prometheus text, on its client port); empty
/// when it does not answer.
fn metrics(endpoint: &str) -> String {
    use std::io::{Read, Write};
    let mut text = String::new();
    if let Ok(mut conn) = std::net::TcpStream::connect(endpoint) {
        let _ = write!(
            conn,
            "GET /metrics HTTP/1.0\r\nHost: {endpoint}\r\nConnection: close\r\n\r\n"
        );
        let _ = conn.read_to_string(&mut text);
    }
    text
}

/// The sum of etcd's `grpc_server_started_total` for `method`.
fn started(endpoint: &str, method: &str) -> u64 {
    let needle = format!("grpc_method=\"{method}\"");
    metrics(endpoint)
        .lines()
        .filter(|l| l.starts_with("grpc_server_started_total") && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// `--wait` on a lock in etcd waits on a watch of the key: woken by the
/// release, with a handful of attempts where polling on the backoff
/// schedule (5 ms growing to 250 ms) would make some twenty in 3 s.
#[test]
fn a_wait_watches_the_key_instead_of_polling() {
    let etcd = Etcd::start(1);
    let address = etcd.address("locks/watched");
    let endpoint = etcd.endpoints[0].clone();
    let holder = Sleeper::new();
    let holder_pid = holder.pid_str();
    expect_code(
        &lockfile(&["acquire", "--lease", "30", "--pid", &holder_pid, &address]),
        0,
    );
    let next = Sleeper::new();
    let next_pid = next.pid_str();
    let (watches, txns) = (started(&endpoint, "Watch"), started(&endpoint, "Txn"));
    let waiter = Command::new(lockfile_bin())
        .args([
            "acquire", "-w", "30", "--lease", "30", "--pid", &next_pid, &address,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("waiter");
    sleep(Duration::from_secs(3));
    expect_code(&lockfile(&["release", "--pid", &holder_pid, &address]), 0);
    let out = waiter.wait_with_output().expect("waiter");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = json(&lockfile(&[
        "status", "--json", "--pid", &next_pid, &address,
    ]));
    assert_eq!(status["verdict"], "owned-by-self", "{status}");
    let (watched, attempts) = (
        started(&endpoint, "Watch") - watches,
        started(&endpoint, "Txn") - txns,
    );
    assert!(watched >= 1, "no watch was opened");
    // One attempt (a transaction) per wake-up: at least one per second of
    // the wait, plus the release's; polling would make about twenty.
    assert!(attempts <= 10, "{attempts} transactions during a 3 s wait");
    expect_code(&lockfile(&["release", "--pid", &next_pid, &address]), 0);
}

/// Whether the member at `endpoint` is the leader (its own metric).
fn is_leader(endpoint: &str) -> bool {
    metrics(endpoint)
        .lines()
        .any(|l| l.trim() == "etcd_server_is_leader 1")
}

/// Shell loops that each run in a process group of their own; killed,
/// group and all, when dropped, so that a test that fails while they run
/// leaves none of them behind.
struct Workers(Vec<Child>);

impl Workers {
    /// Waits for every loop to end by itself.
    fn wait(mut self) {
        for w in &mut self.0 {
            let _ = w.wait();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.0 {
            if let Ok(None) = w.try_wait() {
                if let Some(group) = rustix::process::Pid::from_raw(w.id() as i32) {
                    let _ =
                        rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                }
                let _ = w.wait();
            }
        }
    }
}

/// The leader killed while four workers contend on a three-member cluster:
/// the two members left elect another and the work goes on. Never two
/// holders at once: each COMMAND makes a directory only one can make while
/// it runs, and the counter equals the number of COMMANDs that ran. A run
/// whose request died with the leader may fail (exit 3); runs succeed
/// after the election, and with one member of three down (a minority)
/// nothing blocks.
///
/// The workers run until told to stop, and the test waits for runs to
/// succeed before the kill and after the election (each with a deadline),
/// so that it asserts the same thing whether a run takes 5 ms or 500.
#[test]
fn the_leader_killed_while_workers_contend_never_makes_two_holders() {
    let mut etcd = Etcd::start(3);
    let address = etcd.address("locks/election");
    let dir = sandbox();
    let counter = dir.path().join("counter");
    std::fs::write(&counter, "0\n").expect("counter");
    let (log, ran, overlap, inside, stop) = (
        dir.path().join("log"),
        dir.path().join("ran"),
        dir.path().join("overlap"),
        dir.path().join("inside"),
        dir.path().join("stop"),
    );
    let command = format!(
        "mkdir {i} 2>/dev/null || echo overlap >> {o}; read n < {c}; echo $((n+1)) > {c}; \
         echo x >> {r}; rmdir {i}",
        i = s(&inside),
        o = s(&overlap),
        c = s(&counter),
        r = s(&ran),
    );
    let workers: Vec<Child> = (0..4)
        .map(|_| {
            Command::new("sh")
                .args([
                    "-c",
                    &format!(
                        "while [ ! -e {stop} ] && [ -d {dir} ]; do \
                           \"$0\" run -w 120 \"$1\" -- sh -c \"$2\"; \
                           echo \"$? $(date +%s%N)\" >> {l}; done",
                        stop = s(&stop),
                        dir = s(dir.path()),
                        l = s(&log),
                    ),
                    lockfile_bin(),
                    &address,
                    &command,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("worker")
        })
        .collect();
    let workers = Workers(workers);
    // Each line of the log: a run's exit code and when it ended (ns).
    let results = || -> Vec<(i32, u128)> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (code, at) = l.split_once(' ')?;
                Some((code.parse().ok()?, at.parse().ok()?))
            })
            .collect()
    };
    let succeeded_after = |since: u128| {
        results()
            .iter()
            .filter(|(c, at)| *c == 0 && *at > since)
            .count()
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "{what} within 60 s");
            sleep(Duration::from_millis(50));
        }
    };
    wait_for("20 runs succeeded before the kill", &|| {
        succeeded_after(0) >= 20
    });
    let leader = (0..3)
        .find(|&i| is_leader(&etcd.endpoints[i]))
        .expect("a leader");
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_nanos();
    let _ = etcd.members[leader].kill();
    let _ = etcd.members[leader].wait();
    wait_for(
        "20 runs succeeded a second or more after the election",
        &|| succeeded_after(killed_at + 1_000_000_000) >= 20,
    );
    std::fs::write(&stop, "").expect("stop");
    workers.wait();
    assert!(!overlap.exists(), "two COMMANDs ran at once under the lock");
    let results = results();
    let commands = std::fs::read_to_string(&ran)
        .unwrap_or_default()
        .lines()
        .count();
    assert_eq!(
        std::fs::read_to_string(&counter).expect("counter").trim(),
        commands.to_string(),
        "an update was lost"
    );
    let failed: Vec<i32> = results
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| *c != 0)
        .collect();
    assert!(
        failed.iter().all(|c| *c == 3),
        "runs failed otherwise than by the store: {failed:?}"
    );
    assert!(
        failed.len() <= 8,
        "{} of {} runs failed: a member down must not fail the lock",
        failed.len(),
        results.len()
    );
}

/// TLS with client certificates, and a wrong CA; authentication, and a
/// wrong password: each refusal a clear error (exit 3) that writes nothing.
#[test]
fn tls_members_and_credentials_are_checked() {
    let dir = sandbox();
    let d = dir.path();
    let sh = |script: &str| {
        let out = Command::new("sh")
            .args(["-c", script])
            .current_dir(d)
            .output()
            .expect("sh");
        assert!(out.status.success(), "{script}: {}", stderr(&out));
    };
    // Two CAs; the members' and our certificates signed by the first.
    sh("for ca in ca other; do openssl req -x509 -newkey rsa:2048 -nodes -days 1 \
          -keyout $ca.key -out $ca.pem -subj /CN=$ca 2>/dev/null; done
        for who in server client; do
          openssl req -newkey rsa:2048 -nodes -keyout $who.key -out $who.csr -subj /CN=$who 2>/dev/null
          printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' > $who.ext
          openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
            -extfile $who.ext -out $who.pem 2>/dev/null
        done");
    let (client, peer) = (free_port(), free_port());
    let url = |p: u16, s: &str| format!("{s}://127.0.0.1:{p}");
    let mut member = Command::new(etcd_binary())
        .args(["--name", "tls", "--data-dir", s(&d.join("data"))])
        .args(["--listen-client-urls", &url(client, "https")])
        .args(["--advertise-client-urls", &url(client, "https")])
        .args(["--listen-peer-urls", &url(peer, "http")])
        .args(["--initial-advertise-peer-urls", &url(peer, "http")])
        .args(["--initial-cluster", &format!("tls={}", url(peer, "http"))])
        .args(["--cert-file", s(&d.join("server.pem"))])
        .args(["--key-file", s(&d.join("server.key"))])
        .args(["--trusted-ca-file", s(&d.join("ca.pem"))])
        .arg("--client-cert-auth")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd");
    let address = format!("etcds://127.0.0.1:{client}/locks/tls");
    let ca = d.join("ca.pem");
    let other = d.join("other.pem");
    let (cert, key) = (d.join("client.pem"), d.join("client.key"));
    let with = |env: &[(&str, &std::path::Path)], args: &[&str]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, s(v))).collect();
        lockfile_env(args, &env)
    };
    let good = [
        ("LOCKFILE_ETCD_CA", ca.as_path()),
        ("LOCKFILE_ETCD_CERT", cert.as_path()),
        ("LOCKFILE_ETCD_KEY", key.as_path()),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    while code(&with(&good, &["status", "--pid", "1", &address])) != 0 {
        assert!(Instant::now() < deadline, "the TLS member did not answer");
        sleep(Duration::from_millis(200));
    }
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    expect_code(
        &with(
            &good,
            &["acquire", "--lease", "10", "--pid", &pid, &address],
        ),
        0,
    );
    let status: serde_json::Value =
        serde_json::from_slice(&with(&good, &["status", "--json", "--pid", &pid, &address]).stdout)
            .expect("json");
    assert_eq!(status["verdict"], "owned-by-self", "{status}");
    // Refused: a CA that did not sign the member's certificate, no client
    // certificate, no CA at all, plain TCP to a TLS member.
    let wrong_ca = [
        ("LOCKFILE_ETCD_CA", other.as_path()),
        ("LOCKFILE_ETCD_CERT", cert.as_path()),
        ("LOCKFILE_ETCD_KEY", key.as_path()),
    ];
    let started = Instant::now();
    let out = with(&wrong_ca, &["release", "--force", &address]);
    expect_code(&out, 3);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let err = stderr(&out).to_lowercase();
    assert!(
        err.contains("certificate") || err.contains("tls") || err.contains("transport"),
        "{err}"
    );
    let out = with(
        &[("LOCKFILE_ETCD_CA", ca.as_path())],
        &["release", "--force", &address],
    );
    expect_code(&out, 3);
    let out = with(&[], &["release", "--force", &address]);
    expect_code(&out, 3);
    expect_stderr(&out, "LOCKFILE_ETCD_CA");
    let plain = address.replacen("etcds://", "etcd://", 1);
    expect_code(&lockfile(&["release", "--force", &plain]), 3);
    // None of them removed the lock.
    let status: serde_json::Value =
        serde_json::from_slice(&with(&good, &["status", "--json", "--pid", &pid, &address]).stdout)
            .expect("json");
    assert_eq!(status["verdict"], "owned-by-self", "{status}");
    expect_code(&with(&good, &["release", "--pid", &pid, &address]), 0);
    let _ = member.kill();
    let _ = member.wait();

    // Authentication on a plain member: root with a password.
    let etcd = Etcd::start(1);
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    tokio.block_on(async {
        let mut c = etcd_client::Client::connect(&etcd.endpoints, None)
            .await
            .expect("connect");
        c.user_add("root", "secret", None).await.expect("user");
        let _ = c.role_add("root").await;
        let _ = c.user_grant_role("root", "root").await;
        c.auth_enable().await.expect("auth on");
    });
    let address = etcd.address("locks/auth");
    let creds = |password: &str| {
        vec![
            ("LOCKFILE_ETCD_USER", "root".to_owned()),
            ("LOCKFILE_ETCD_PASSWORD", password.to_owned()),
        ]
    };
    let run_as = |env: Vec<(&str, String)>, args: &[&str]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        lockfile_env(args, &env)
    };
    let out = run_as(
        creds("wrong"),
        &["acquire", "--lease", "10", "--pid", &pid, &address],
    );
    expect_code(&out, 3);
    assert!(
        stderr(&out).contains("authentication failed"),
        "{}",
        stderr(&out)
    );
    let out = run_as(
        Vec::new(),
        &["acquire", "--lease", "10", "--pid", &pid, &address],
    );
    expect_code(&out, 3);
    let status: serde_json::Value = serde_json::from_slice(
        &run_as(
            creds("secret"),
            &["status", "--json", "--pid", &pid, &address],
        )
        .stdout,
    )
    .expect("json");
    assert_eq!(
        status["verdict"], "unlocked",
        "a refused acquisition wrote: {status}"
    );
    expect_code(
        &run_as(
            creds("secret"),
            &["acquire", "--lease", "10", "--pid", &pid, &address],
        ),
        0,
    );
    expect_code(
        &run_as(creds("secret"), &["release", "--pid", &pid, &address]),
        0,
    );
}

/// `list etcd://.../PREFIX`: every lock under the prefix, judged as
/// `status` judges it, garbage included (malformed), named by address.
#[test]
fn list_shows_every_lock_under_a_prefix() {
    let etcd = Etcd::start(1);
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    for key in ["jobs/a", "jobs/b", "other/c"] {
        expect_code(
            &lockfile(&[
                "acquire",
                "--lease",
                "30",
                "--pid",
                &pid,
                &etcd.address(key),
            ]),
            0,
        );
    }
    let store = lockfile_host::etcd::EtcdStore::connect(&etcd.endpoints, Duration::from_secs(5))
        .expect("connect");
    use lockfile_host::kv::Store;
    store
        .create("jobs/garbage", b"not a lock\n", 0)
        .expect("put")
        .expect("created");
    let out = lockfile(&["list", "--json", "--pid", &pid, &etcd.address("jobs/")]);
    expect_code(&out, 0);
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let seen: Vec<(String, String)> = lines
        .iter()
        .map(|v| {
            (
                v["path"].as_str().unwrap_or_default().to_owned(),
                v["verdict"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (etcd.address("jobs/a"), "owned-by-self".to_owned()),
            (etcd.address("jobs/b"), "owned-by-self".to_owned()),
            (etcd.address("jobs/garbage"), "malformed".to_owned()),
        ]
    );
    // The table form names them too.
    let table = lockfile(&["list", "--pid", &pid, &etcd.address("jobs/")]);
    expect_code(&table, 0);
    assert!(
        stdout(&table).contains(&etcd.address("jobs/b")),
        "{}",
        stdout(&table)
    );
}

/// A `run` paused past its lease while its COMMAND runs to its end: the
/// refresher never got to look, but `run` looks once more before it
/// releases, and says the lock was lost (exit 4), not success.
#[test]
fn a_run_whose_command_ended_while_it_was_paused_past_its_lease_says_lost() {
    let etcd = Etcd::start(1);
    let address = etcd.address("locks/ended-while-paused");
    let dir = sandbox();
    let started = dir.path().join("started");
    let holder = Command::new(lockfile_bin())
        .args(["run", "--lease", "1", &address, "--", "sh", "-c"])
        .arg(format!("touch {}; sleep 2", s(&started)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    wait_for_file(&started);
    let pid = holder.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("kill")
        .success());
    // Another process takes it once etcd has expired the lease.
    let next = Sleeper::new();
    let next_pid = next.pid_str();
    expect_code(
        &lockfile(&[
            "acquire", "-w", "30", "--lease", "30", "--pid", &next_pid, &address,
        ]),
        0,
    );
    sleep(Duration::from_secs(3)); // COMMAND has ended meanwhile
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .expect("kill")
        .success());
    let out = holder.wait_with_output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    // Said by the last look, or by the refresher if it woke first.
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("another owner's now"), "{err}");
    let status = json(&lockfile(&[
        "status", "--json", "--pid", &next_pid, &address,
    ]));
    assert_eq!(status["verdict"], "owned-by-self", "{status}");
}

/// No member answers (the only one is stopped): `run` cannot renew its
/// lease, and once a whole lease has passed without a renewal it counts
/// the lock as lost, sends COMMAND SIGTERM and exits 4, rather than let
/// COMMAND run on while another host may take the lock.
#[test]
fn a_run_that_cannot_renew_for_a_whole_lease_ends_its_command() {
    let mut etcd = Etcd::start(1);
    let address = etcd.address("locks/unrenewable");
    let dir = sandbox();
    let started = dir.path().join("started");
    let done = dir.path().join("done");
    let holder = Command::new(lockfile_bin())
        .args(["run", "--lease", "2", &address, "--", "sh", "-c"])
        .arg(format!(
            "touch {}; sleep 30 >/dev/null 2>&1; touch {}",
            s(&started),
            s(&done)
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    wait_for_file(&started);
    let member = etcd.members[0].id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &member])
        .status()
        .expect("kill")
        .success());
    let stopped = Instant::now();
    let out = holder.wait_with_output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    let _ = Command::new("kill").args(["-CONT", &member]).status();
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("could not be renewed"), "{err}");
    assert!(!done.exists(), "COMMAND ran to its end");
    assert!(
        stopped.elapsed() < Duration::from_secs(25),
        "COMMAND ran on for {:?}",
        stopped.elapsed()
    );
    let _ = &mut etcd;
}

/// The first member given does not answer (stopped, not gone): requests
/// that may be repeated go to the next, and the lock is taken and released
/// with two of three members up.
#[test]
fn a_member_that_does_not_answer_is_passed_over() {
    let etcd = Etcd::start(3);
    let address = etcd.address("locks/passed-over");
    let first = etcd.members[0].id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &first])
        .status()
        .expect("kill")
        .success());
    let owner = Sleeper::new();
    let pid = owner.pid_str();
    let taken = lockfile(&[
        "acquire", "-w", "30", "--lease", "10", "--pid", &pid, &address,
    ]);
    let released = lockfile(&["release", "--pid", &pid, &address]);
    let _ = Command::new("kill").args(["-CONT", &first]).status();
    expect_code(&taken, 0);
    expect_code(&released, 0);
}

/// `run`'s lock names COMMAND too (the `companion`), as a lock file's does:
/// `lockfile run` killed while COMMAND runs on leaves a lock that is held,
/// not stale, on this host, until COMMAND ends.
#[test]
fn a_killed_run_whose_command_runs_on_still_holds_the_lock() {
    let etcd = Etcd::start(1);
    let address = etcd.address("locks/companion");
    let dir = sandbox();
    let pid_file = dir.path().join("command");
    let mut run = Command::new(lockfile_bin())
        .args(["run", "--lease", "30", &address, "--", "sh", "-c"])
        // It outlives `lockfile run`, which has it sent SIGTERM as it dies.
        .arg(format!(
            "trap '' TERM; echo $$ > {}; sleep 30 >/dev/null 2>&1",
            s(&pid_file)
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    let command: u32 = wait_for_number(&pid_file);
    let _ = run.kill();
    let _ = run.wait();
    let status = json(&lockfile(&["status", "--json", "--pid", "1", &address]));
    let other = Sleeper::new();
    let taken = lockfile(&[
        "acquire",
        "--lease",
        "30",
        "--pid",
        &other.pid_str(),
        &address,
    ]);
    // COMMAND (it ignores SIGTERM) and its sleep go now.
    let _ = Command::new("pkill")
        .args(["-9", "-P", &command.to_string()])
        .status();
    let _ = Command::new("kill")
        .args(["-9", &command.to_string()])
        .status();
    assert_eq!(status["verdict"], "held", "{status}");
    expect_code(&taken, 1);
}
