//! `lockfile`: take, release and inspect PID lock files from the shell.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use lockfile_host::{display_time, rfc3339, Error, LockFile, Runtime, Timestamp, Verdict};

/// Exit code: the lock is held by another owner.
const HELD: u8 = 1;
/// Exit code: bad usage.
const USAGE: u8 = 2;
/// Exit code: any other error.
const OTHER: u8 = 3;

const AFTER_HELP: &str = "\
Exit status:
  0  success
  1  the lock is held by another owner (acquire or release refused, --wait timed out)
  2  usage error
  3  any other error (malformed lock file, unreachable path, I/O error)
  `run` exits with COMMAND's status (128+N if a signal N killed it).

A lock taken with `acquire` belongs to --pid, by default the process that ran
`lockfile` (your shell or script): it stays held until released or until that
process exits, after which --replace-stale may take it over.";

/// PID lock files, compatible with labm8's `LockFile`, run in a WebAssembly sandbox.
#[derive(Debug, Parser)]
#[command(name = "lockfile", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Take the lock for --pid (default: the calling process).
    Acquire {
        /// Take over a lock whose owner is gone (dead, recycled pid, previous boot).
        #[arg(long)]
        replace_stale: bool,
        /// Take the lock whoever holds it, replacing even a malformed file.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        pid: PidArg,
        #[command(flatten)]
        wait: WaitArg,
        /// The lock file.
        path: PathBuf,
    },
    /// Release the lock held by --pid.
    Release {
        /// Remove the lock whoever holds it.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        pid: PidArg,
        /// The lock file.
        path: PathBuf,
    },
    /// Show who holds the lock and whether it is stale.
    Status {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        pid: PidArg,
        /// The lock file.
        path: PathBuf,
    },
    /// Plant the record `PID TIMESTAMP` as given (labm8's static `write`).
    Write {
        /// The lock file.
        path: PathBuf,
        /// The pid to record.
        pid: u32,
        /// Unix time in seconds (fractions allowed); default: now.
        timestamp: Option<String>,
    },
    /// Run COMMAND while holding the lock; release it when COMMAND ends.
    ///
    /// The lock is taken for `lockfile`'s own pid, before COMMAND starts: the
    /// lock is held for as long as `lockfile` waits for COMMAND, and on Linux
    /// COMMAND is sent SIGTERM if `lockfile` dies, so it never runs unlocked.
    /// SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to COMMAND.
    Run {
        /// Take over a lock whose owner is gone.
        #[arg(long)]
        replace_stale: bool,
        #[command(flatten)]
        wait: WaitArg,
        /// The lock file.
        path: PathBuf,
        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct PidArg {
    /// The process the lock is for (default: the parent of `lockfile`).
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
}

#[derive(Debug, clap::Args)]
struct WaitArg {
    /// Retry until the lock is free, for up to SECONDS (fractions allowed, or `forever`).
    #[arg(long, value_name = "SECONDS", value_parser = parse_wait)]
    wait: Option<Wait>,
}

#[derive(Debug, Clone, Copy)]
enum Wait {
    For(Duration),
    Forever,
}

fn parse_wait(s: &str) -> Result<Wait, String> {
    if s == "forever" {
        return Ok(Wait::Forever);
    }
    match s.parse::<f64>() {
        Ok(v) if (0.0..1e9).contains(&v) => Ok(Wait::For(Duration::from_secs_f64(v))),
        _ => Err(format!("`{s}` is not a number of seconds or `forever`")),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { USAGE } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lockfile: {}", describe(&e));
            let code = match e.downcast_ref::<Error>() {
                Some(e) if e.is_refusal() => HELD,
                Some(_) => OTHER,
                None if e.downcast_ref::<Usage>().is_some() => USAGE,
                None => OTHER,
            };
            ExitCode::from(code)
        }
    }
}

/// The error for a person: a refusal says why the owner counts as holding
/// the lock, and what would take it anyway.
fn describe(e: &anyhow::Error) -> String {
    let Some(refusal) = e.downcast_ref::<Error>().and_then(Error::refusal) else {
        return format!("{e:#}");
    };
    let acquiring = matches!(e.downcast_ref::<Error>(), Some(Error::UnableToAcquire(_)));
    match refusal.verdict {
        Verdict::Stale if acquiring => format!(
            "{e}; {} (use --replace-stale to take it over)",
            refusal.reason
        ),
        // The plain case needs no more words than `held by pid N (alive)`.
        Verdict::Held
            if refusal
                .reason
                .starts_with(&format!("pid {} is running", refusal.owner.pid)) =>
        {
            format!("{e}")
        }
        _ => format!("{e}; {}", refusal.reason),
    }
}

/// A usage error found after parsing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new().context("cannot load the lockfile component")?;
    match cli.command {
        Cmd::Acquire {
            replace_stale,
            force,
            pid,
            wait,
            path,
        } => {
            let mut lock = open(&runtime, &path, pid.pid)?;
            acquire(&mut lock, replace_stale, force, wait.wait)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Release { force, pid, path } => {
            let mut lock = open(&runtime, &path, pid.pid)?;
            lock.release(force)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status { json, pid, path } => {
            let mut lock = open(&runtime, &path, pid.pid)?;
            status(&mut lock, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Write {
            path,
            pid,
            timestamp,
        } => {
            if let Err(e) = lockfile_core::format::check_pid(pid) {
                return Err(Usage(e).into());
            }
            let timestamp = match timestamp {
                Some(t) => Timestamp::parse(&t).map_err(Usage)?,
                None => now(),
            };
            runtime.write(&path, pid, timestamp)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            replace_stale,
            wait,
            path,
            command,
        } => run_command(&runtime, &path, replace_stale, wait.wait, &command),
    }
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::new(d.as_secs(), d.subsec_nanos())
}

fn open(runtime: &Runtime, path: &std::path::Path, pid: Option<u32>) -> anyhow::Result<LockFile> {
    let pid = match pid {
        Some(0) => return Err(Usage("--pid 0 is not a process".into()).into()),
        Some(pid) => pid,
        None => lockfile_host::process::parent_pid()
            .ok_or_else(|| Usage("cannot tell the parent process here; give --pid".into()))?,
    };
    Ok(runtime.open_as(path, pid)?)
}

/// Acquires, retrying with backoff while another owner holds the lock and
/// the wait allows. Says once on stderr who holds it.
fn acquire(
    lock: &mut LockFile,
    replace_stale: bool,
    force: bool,
    wait: Option<Wait>,
) -> Result<(), Error> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    let mut told = false;
    loop {
        let refusal = match lock.acquire(replace_stale, force) {
            Err(Error::UnableToAcquire(r)) => r,
            other => return other,
        };
        let left = match wait {
            None => return Err(Error::UnableToAcquire(refusal)),
            Some(Wait::Forever) => Duration::MAX,
            Some(Wait::For(limit)) => match limit.checked_sub(start.elapsed()) {
                Some(left) if !left.is_zero() => left,
                _ => return Err(Error::UnableToAcquire(refusal)),
            },
        };
        if !told {
            eprintln!(
                "lockfile: waiting for `{}`: {}",
                refusal.path.display(),
                refusal
            );
            told = true;
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 3 / 2).min(Duration::from_millis(250));
    }
}

fn status(lock: &mut LockFile, json: bool) -> anyhow::Result<()> {
    let s = lock.status()?;
    let locked = !matches!(s.verdict, Verdict::Unlocked);
    let owned = s.verdict == Verdict::OwnedBySelf;
    let mut out = std::io::stdout().lock();
    if json {
        let value = serde_json::json!({
            "path": s.path.display().to_string(),
            "locked": locked,
            "pid": s.owner.as_ref().map(|o| o.pid),
            "timestamp": s.owner.as_ref().map(|o| o.date.as_f64()),
            "acquired": s.owner.as_ref().and_then(|o| rfc3339(o.date)),
            "hostname": s.owner.as_ref().and_then(|o| o.hostname.clone()),
            "owned_by_self": owned,
            "verdict": s.verdict.as_str(),
            "reason": s.reason,
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "path:     {}", s.path.display())?;
        writeln!(out, "locked:   {}", if locked { "yes" } else { "no" })?;
        if let Some(o) = &s.owner {
            writeln!(out, "pid:      {}", o.pid)?;
            writeln!(out, "acquired: {} ({})", display_time(o.date), o.date)?;
            if let Some(host) = &o.hostname {
                writeln!(out, "host:     {host}")?;
            }
        }
        writeln!(out, "verdict:  {}", s.verdict.as_str())?;
        writeln!(out, "reason:   {}", s.reason)?;
    }
    Ok(())
}

fn run_command(
    runtime: &Runtime,
    path: &std::path::Path,
    replace_stale: bool,
    wait: Option<Wait>,
    command: &[String],
) -> anyhow::Result<ExitCode> {
    let mut lock = runtime.open(path)?;
    acquire(&mut lock, replace_stale, false, wait)?;
    let result = spawn_and_wait(command);
    let released = lock.release(false);
    let code = result?;
    if let Err(e) = released {
        eprintln!("lockfile: {e}");
        if code == 0 {
            return Ok(ExitCode::from(OTHER));
        }
    }
    Ok(ExitCode::from(code))
}

/// Runs the command to its end and returns its exit code (128+N for signal N).
fn spawn_and_wait(command: &[String]) -> anyhow::Result<u8> {
    let Some((program, args)) = command.split_first() else {
        bail!(Usage("no COMMAND given".into()));
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the forked child before exec and makes
        // one async-signal-safe system call (prctl).
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::TERM,
                ))
                .map_err(std::io::Error::from)
            });
        }
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run `{program}`"))?;
    #[cfg(unix)]
    let forwarder = forward_signals(child.id())?;
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for `{program}`"))?;
    #[cfg(unix)]
    forwarder.close();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return Ok(128u8.saturating_add(u8::try_from(signal).unwrap_or(127)));
        }
    }
    Ok(status
        .code()
        .map_or(OTHER, |c| u8::try_from(c & 0xff).unwrap_or(OTHER)))
}

/// Forwards termination signals to the child until closed.
#[cfg(unix)]
fn forward_signals(child: u32) -> anyhow::Result<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
        .context("cannot install signal handlers")?;
    let handle = signals.handle();
    let pid = i32::try_from(child)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let sig = rustix::process::Signal::from_named_raw(signal);
            if let (Some(pid), Some(sig)) = (pid, sig) {
                let _ = rustix::process::kill_process(pid, sig);
            }
        }
    });
    Ok(handle)
}
