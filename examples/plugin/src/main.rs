//! An example plugin: a WASI command that imports `labm8:lockfile/lockfile`
//! (the `plugin` world) and appends a numbered line to a journal under the
//! lock. Composed with `lockfile-wasi.wasm` it runs under the stock
//! `wasmtime run`:
//!
//! ```text
//! wasmtime run --dir /srv/jobs::/srv/jobs --dir /proc::/proc \
//!     target/debug/lockfile-plugin-example.wasm \
//!     /srv/jobs/journal.lock /srv/jobs/journal "nightly run"
//! ```
//!
//! The journal is rewritten whole (read, add a line, write back): without
//! the lock, two writers at once lose a line or repeat a number, which is
//! what the tests look for.
//!
//! Options (before the paths): `--wait-ms N` retries while the lock is held,
//! for up to N ms; `--replace-stale` takes over a dead owner's lock;
//! `--hold-ms N` keeps the lock N ms after writing; `--crash` panics (a
//! trap) while holding it, after writing (the last two for tests);
//! `--cycles N` only acquires and releases the lock N times, writing no
//! journal (for benchmarks: `cargo bench --bench lock -- cycle/plugin`).
//!
//! Exit status: 0 when the line was written, 1 otherwise (WASI 0.2 exits
//! with success or failure only); the message on stderr says why: `the lock
//! is held: ...` (also when `--wait-ms` ran out), `cannot lock: ...`, ....

#[cfg(target_os = "wasi")]
mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../wit",
        with: { "wasi:clocks/wall-clock@0.2.4": wasi::clocks::wall_clock },
    });
}

#[cfg(target_os = "wasi")]
mod plugin {
    use std::time::{Duration, Instant};

    use crate::bindings::labm8::lockfile::lockfile::{Error, LockFile, Verdict};

    fn verdict(v: Verdict) -> &'static str {
        match v {
            Verdict::Unlocked => "unlocked",
            Verdict::OwnedBySelf => "owned by self",
            Verdict::Held => "held",
            Verdict::Stale => "stale",
            Verdict::Foreign => "foreign",
            Verdict::Malformed => "malformed",
        }
    }

    struct Args {
        wait: Duration,
        hold: Duration,
        replace_stale: bool,
        crash: bool,
        cycles: Option<u64>,
        lock: String,
        journal: String,
        message: String,
    }

    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut wait = Duration::ZERO;
        let mut hold = Duration::ZERO;
        let mut replace_stale = false;
        let mut crash = false;
        let mut cycles = None;
        let mut rest = Vec::new();
        while let Some(arg) = args.next() {
            let mut millis = |name: &str| -> Result<Duration, String> {
                let value = args.next().ok_or(format!("{name} needs a number of ms"))?;
                value
                    .parse()
                    .map(Duration::from_millis)
                    .map_err(|_| format!("{name} needs a number of ms, not `{value}`"))
            };
            match arg.as_str() {
                "--wait-ms" => wait = millis("--wait-ms")?,
                "--hold-ms" => hold = millis("--hold-ms")?,
                "--replace-stale" => replace_stale = true,
                "--crash" => crash = true,
                "--cycles" => {
                    let value = args.next().ok_or("--cycles needs a count")?;
                    cycles = Some(
                        value
                            .parse()
                            .map_err(|_| format!("--cycles needs a count, not `{value}`"))?,
                    );
                }
                _ => rest.push(arg),
            }
        }
        if let (Some(_), [lock]) = (cycles, rest.as_slice()) {
            rest = vec![lock.clone(), String::new()];
        }
        let [lock, journal, message @ ..] = rest.as_slice() else {
            return Err(
                "usage: lockfile-plugin-example [--wait-ms N] [--hold-ms N] \
                        [--replace-stale] [--crash] LOCK JOURNAL [MESSAGE]; \
                        or: lockfile-plugin-example --cycles N LOCK"
                    .into(),
            );
        };
        Ok(Args {
            wait,
            hold,
            replace_stale,
            crash,
            cycles,
            lock: lock.clone(),
            journal: journal.clone(),
            message: message.join(" "),
        })
    }

    fn describe(e: &Error) -> String {
        match e {
            Error::UnableToAcquire(r) | Error::UnableToRelease(r) => format!(
                "{}: held by pid {} ({}): {}",
                r.path,
                r.owner.pid,
                verdict(r.verdict),
                r.reason
            ),
            Error::Malformed(f)
            | Error::NotAFile(f)
            | Error::Unreachable(f)
            | Error::Denied(f)
            | Error::InvalidIdentity(f)
            | Error::Contended(f)
            | Error::Lost(f)
            | Error::Io(f) => format!("{}: {}", f.path, f.message),
        }
    }

    /// Takes the lock, retrying while it is held and time is left.
    fn acquire(lock: &LockFile, args: &Args) -> Result<(), (i32, String)> {
        let deadline = Instant::now() + args.wait;
        let mut pause = Duration::from_millis(2);
        loop {
            match lock.acquire(args.replace_stale, false) {
                Ok(()) => return Ok(()),
                Err(Error::UnableToAcquire(_)) if Instant::now() < deadline => {
                    std::thread::sleep(pause.min(deadline - Instant::now()));
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e @ Error::UnableToAcquire(_)) => {
                    return Err((1, format!("the lock is held: {}", describe(&e))))
                }
                Err(e) => return Err((1, format!("cannot lock: {}", describe(&e)))),
            }
        }
    }

    /// The critical section: the journal, one numbered line longer.
    fn append(args: &Args) -> Result<usize, String> {
        let text = match std::fs::read_to_string(&args.journal) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", args.journal)),
        };
        let number = text.lines().count() + 1;
        let line = format!("{number} {}\n", args.message);
        std::fs::write(&args.journal, text + &line)
            .map_err(|e| format!("cannot write {}: {e}", args.journal))?;
        Ok(number)
    }

    pub fn main() -> i32 {
        let args = match parse(std::env::args().skip(1)) {
            Ok(args) => args,
            Err(message) => {
                eprintln!("lockfile-plugin-example: {message}");
                return 1;
            }
        };
        let lock = LockFile::new(&args.lock);
        if let Some(cycles) = args.cycles {
            for _ in 0..cycles {
                if let Err(e) = lock
                    .acquire(false, false)
                    .and_then(|()| lock.release(false))
                {
                    eprintln!("lockfile-plugin-example: {}", describe(&e));
                    return 1;
                }
            }
            return 0;
        }
        if let Err((status, message)) = acquire(&lock, &args) {
            eprintln!("lockfile-plugin-example: {message}");
            return status;
        }
        let written = append(&args);
        if written.is_ok() {
            std::thread::sleep(args.hold);
            assert!(!args.crash, "--crash: trapping while holding the lock");
        }
        let released = lock.release(false);
        match (written, released) {
            (Ok(number), Ok(())) => {
                println!("line {number} written under {}", args.lock);
                0
            }
            (Err(message), _) => {
                eprintln!("lockfile-plugin-example: {message}");
                1
            }
            (Ok(_), Err(e)) => {
                eprintln!("lockfile-plugin-example: cannot release: {}", describe(&e));
                1
            }
        }
    }
}

#[cfg(target_os = "wasi")]
fn main() {
    std::process::exit(plugin::main())
}

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!(
        "lockfile-plugin-example is a WASI command component: lockfile-host's build script \
         builds it for wasm32-wasip2 into target/<profile>/lockfile-plugin-example.wasm; \
         run that with `wasmtime run`"
    );
    std::process::exit(2);
}
