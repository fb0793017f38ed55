//! The `lockfile` command line: arguments, exit codes, messages and output.
//!
//! Shared by the native `lockfile` binary (which runs the lock component in
//! wasmtime) and `lockfile-command.wasm` (which runs the same core under
//! `wasmtime run`), so both speak exactly the same language. Each supplies a
//! [`Backend`].

use clap::{CommandFactory, FromArgMatches};
use lockfile_core::{AcquireOptions, Mode, Timestamp, Verdict};

use manual::print_or_fail;
use output::print_status;

mod args;
mod backend;
mod failure;
mod manual;
mod output;
mod survey;

pub use args::{Cli, Cmd, LeaseArg, OnLost, PidArg, StaleArg, WaitArg};
pub use backend::{Backend, CoreLock, Lock};
pub use failure::{failure, Failure, Refused};
pub use lockfile_core::Wait;
pub use manual::man_page;
pub use output::status_json;
pub use survey::Listing;

/// Exit code: the lock is held by another owner.
pub const HELD: u8 = 1;
/// Exit code: bad usage.
pub const USAGE: u8 = 2;
/// Exit code: any other error.
pub const OTHER: u8 = 3;
/// Exit code of `run`: the lock was lost while COMMAND ran (its lease could
/// not be renewed), and COMMAND was sent SIGTERM (`--on-lost term`).
pub const LOST: u8 = 4;

/// Whether `-v` was given: the wait loop says who it waits for. A flag of
/// the process, set once from the command line, like a log level.
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Parses the arguments, runs the command on the backend made by `backend`,
/// prints errors as `lockfile: MESSAGE`, and returns the exit code.
/// `run_about` replaces the help of `run` when given.
pub fn main<B: Backend>(
    backend: impl FnOnce() -> Result<B, Failure>,
    run_about: Option<&'static str>,
) -> u8 {
    main_with_args(std::env::args_os(), backend, run_about)
}

/// As [`main`], with the arguments given (the first is the program's
/// name): for a binary whose entry point skips std's runtime start, which
/// is where std learns them on some C libraries (musl).
pub fn main_with_args<B: Backend>(
    args: impl IntoIterator<Item = std::ffi::OsString>,
    backend: impl FnOnce() -> Result<B, Failure>,
    run_about: Option<&'static str>,
) -> u8 {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let cli = match args::everyday(&args) {
        Some(cli) => cli,
        None => match parse(args, run_about) {
            Ok(cli) => cli,
            Err(code) => return code,
        },
    };
    VERBOSE.store(cli.verbose, std::sync::atomic::Ordering::Relaxed);
    let quiet = cli.quiet;
    match backend().and_then(|b| execute(&b, cli.command, quiet)) {
        Ok(code) => code,
        Err(e) => {
            if !(quiet && e.code() == HELD || matches!(e, Failure::Silent(_))) {
                eprintln!("lockfile: {}", e.message());
            }
            e.code()
        }
    }
}

/// The command line as clap parses it. `Err` means the command is done,
/// with that exit code: a usage error, help or the version printed, or
/// `man` and `completions`, which need no lock, run here.
fn parse(args: Vec<std::ffi::OsString>, run_about: Option<&'static str>) -> Result<Cli, u8> {
    let mut command = Cli::command();
    if let Some(about) = run_about {
        command = command.mut_subcommand("run", |c| c.about(about).long_about(about));
    }
    // clap's command tree and matches are forgotten, not dropped: freeing
    // them cost more than the process exit that follows one command, and
    // their freed memory, reused after `run` forks, cost copy-on-write faults.
    let parsed = command.try_get_matches_from_mut(args).and_then(|m| {
        let cli = Cli::from_arg_matches(&m);
        std::mem::forget(m);
        cli
    });
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return Err(if e.use_stderr() { USAGE } else { 0 });
        }
    };
    match cli.command {
        Cmd::Man => return Err(print_or_fail(&man_page(&command))),
        Cmd::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "lockfile", &mut script);
            return Err(print_or_fail(&script));
        }
        _ => {}
    }
    std::mem::forget(command);
    Ok(cli)
}

fn execute<B: Backend>(backend: &B, command: Cmd, quiet: bool) -> Result<u8, Failure> {
    match command {
        Cmd::Acquire {
            stale,
            force,
            pid,
            wait,
            lease,
            print_token,
            path,
        } => {
            let mode = if force { Mode::Force } else { stale.mode() };
            let options = AcquireOptions {
                mode,
                wait: wait.wait(),
                lease: lease.lease,
                token: print_token,
            };
            let mut lock = backend.open(&path, check_pid(pid.pid)?)?;
            acquire(&mut lock, &options)?;
            if print_token {
                let token = lock.token()?.ok_or_else(|| {
                    Failure::Other("the lock was taken but carries no token".into())
                })?;
                println!("{token}");
            }
        }
        Cmd::Refresh { pid, path } => {
            backend.open(&path, check_pid(pid.pid)?)?.refresh()?;
        }
        Cmd::Release { force, pid, path } => {
            backend.open(&path, check_pid(pid.pid)?)?.release(force)?;
        }
        Cmd::Status { json, pid, path } => {
            let mut view = backend.inspect(&path, check_pid(pid)?)?.status()?;
            if pid.is_none() && view.verdict == Verdict::OwnedBySelf {
                // "the current process" would read as `lockfile` itself.
                view.reason
                    .push_str(&format!(" (the default --pid: {})", backend.default_pid()));
            }
            match print_status(&view, json) {
                // Whoever reads our output stopped reading (`| head -0`): what
                // they wanted is done, as ripgrep and coreutils see it.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.map_err(|e| Failure::Other(format!("cannot print: {e}")))?,
            }
        }
        Cmd::List { json, pid, paths } => {
            survey::list(backend, &paths, check_pid(pid)?, json)?;
        }
        Cmd::Clean { dry_run, dirs } => {
            survey::clean(backend, &dirs, dry_run)?;
        }
        // Handled by `main` before any backend exists.
        Cmd::Man | Cmd::Completions { .. } => {}
        Cmd::Write {
            path,
            pid,
            timestamp,
        } => {
            lockfile_core::format::check_recorded_pid(pid).map_err(Failure::Usage)?;
            let timestamp = match timestamp {
                Some(t) => Timestamp::parse(&t).map_err(Failure::Usage)?,
                None => now(),
            };
            backend.write(&path, pid, timestamp)?;
        }
        Cmd::Run {
            stale,
            wait,
            lease,
            token,
            conflict_exit_code,
            on_lost,
            shell,
            path,
            command,
        } => {
            let options = AcquireOptions {
                mode: stale.mode(),
                wait: wait.wait(),
                lease,
                token: token || lease.is_some(),
            };
            let command = match shell {
                Some(string) => vec!["sh".to_owned(), "-c".to_owned(), string],
                None => command,
            };
            return match backend.run(&path, &options, on_lost, &command) {
                Err(f @ (Failure::Refused(_) | Failure::Busy(_))) => {
                    if !quiet {
                        eprintln!("lockfile: {}", f.message());
                    }
                    Ok(conflict_exit_code)
                }
                other => other,
            };
        }
    }
    Ok(0)
}

fn check_pid(pid: Option<u32>) -> Result<Option<u32>, Failure> {
    match pid {
        Some(0) => Err(Failure::Usage("--pid 0 is not a process".into())),
        Some(p) => lockfile_core::format::check_pid(p)
            .map(|()| Some(p))
            .map_err(Failure::Usage),
        None => Ok(None),
    }
}

/// The current time.
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::new(d.as_secs(), d.subsec_nanos())
}

/// Acquires as `options` say, retrying with backoff (5 ms growing to
/// 250 ms) while another owner holds the lock and `options.wait` allows;
/// with `-v`, says once on stderr who holds it (a wait that ends well is
/// otherwise silent: cron mails whatever a job writes).
///
/// # Errors
/// The last refusal when the wait is over, or any other failure at once.
pub fn acquire<L: Lock>(lock: &mut L, options: &AcquireOptions) -> Result<(), Failure> {
    let mut told = false;
    let start = std::time::Instant::now();
    let mut backoff = lockfile_core::Backoff::default();
    loop {
        let refusal = match lock.acquire(options) {
            Err(f @ (Failure::Refused(_) | Failure::Busy(_))) => f,
            done => return done,
        };
        let Some(pause) = options.wait.pause(start.elapsed(), &mut backoff) else {
            return Err(refusal);
        };
        if !told && VERBOSE.load(std::sync::atomic::Ordering::Relaxed) {
            let message = refusal.message();
            let rest = message.strip_prefix("cannot acquire ").unwrap_or(&message);
            eprintln!("lockfile: waiting for {rest}");
            told = true;
        }
        // A lock that can be watched wakes us when it changes; looked at
        // again at least every second all the same (a holder on this host
        // that dies changes nothing in the store).
        let left = match options.wait {
            Wait::For(limit) => limit.saturating_sub(start.elapsed()),
            _ => WATCH_AT_MOST,
        };
        match lock.wait_for_change(left.min(WATCH_AT_MOST)) {
            Some(watched) => watched?,
            None => std::thread::sleep(pause),
        }
    }
}

/// The longest a watch of the lock lasts before it is looked at again.
const WATCH_AT_MOST: std::time::Duration = std::time::Duration::from_secs(1);
