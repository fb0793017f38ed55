//! The command line as clap parses it: subcommands, their flags, and the
//! parsers that turn text into pids, durations and exit codes with messages
//! in our words.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use lockfile_core::{Mode, Wait};

use crate::HELD;

const AFTER_HELP: &str = "\
Exit status:
  0  success
  1  the lock is held by another owner (acquire or release refused, --wait timed out),
     or it changed hands too often while we looked; `run --conflict-exit-code N`: N
  2  usage error
  3  any other error (malformed lock file, unreachable path, I/O error)
  4  `run`: the lock was lost while COMMAND ran (its lease could not be renewed)
     and COMMAND was sent SIGTERM (--on-lost term, the default)
  `run` exits with COMMAND's status (128+N if a signal N killed it), 127 if
  COMMAND was not found, 126 if it could not be executed.

A lock taken with `acquire` belongs to --pid, by default the process that ran
`lockfile` (your shell or script): it stays held until released or until that
process exits. `acquire` and `run` take over a lock whose owner is certainly
gone (--no-replace-stale refuses it, as labm8 does).";

/// PID lock files, compatible with labm8's `LockFile`, run in a WebAssembly sandbox.
///
/// A lock file names its owner: the first line is labm8's `PID TIMESTAMP`,
/// and the lines after it say on which host, boot and PID namespace the
/// owner runs and when it started, so that a lock whose owner is gone (dead,
/// its pid recycled, an earlier boot, an expired lease) is told apart from
/// one that is held. `run` holds a lock while a command runs (the cron
/// guard: `lockfile run -w 30 /var/lock/job.lock -- job`); `acquire` and
/// `release` take and give it back for a shell or script; `status`, `list`
/// and `clean` look at locks and tidy up after crashes.
#[derive(Debug, Parser)]
#[command(name = "lockfile", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Cmd,
    /// Say who holds the lock while waiting for it (on stderr).
    #[arg(short, long, global = true, overrides_with = "quiet")]
    pub verbose: bool,
    /// Print nothing when the lock is held or the wait runs out (the exit
    /// status still says so); other errors are always printed.
    #[arg(short, long, global = true, overrides_with = "verbose")]
    pub quiet: bool,
}

/// The subcommands.
// Doc comments here are clap's help text; the flattened `--pid` and
// `--wait` arguments document themselves in `PidArg` and `WaitArg`.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
// Each subcommand's arguments are built only when it is the one run: clap
// otherwise builds every subcommand's at every start (a tenth of a
// `lockfile status` process). What inspects them all (the man page,
// completions) builds the command first.
#[command(defer = true)]
pub enum Cmd {
    /// Take the lock for --pid (default: the parent of `lockfile`, the
    /// shell or script that ran it).
    Acquire {
        #[command(flatten)]
        stale: StaleArg,
        /// Take the lock whoever holds it, replacing even a malformed file.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        pid: PidArg,
        #[command(flatten)]
        wait: WaitArg,
        #[command(flatten)]
        lease: LeaseArg,
        /// Issue a fencing token (one more than every earlier acquisition's of
        /// this lock) and print it on stdout: pass it to the storage you write
        /// to, which refuses tokens lower than one it has seen.
        #[arg(long)]
        print_token: bool,
        /// The lock file.
        path: PathBuf,
    },
    /// Renew the lease of the lock held by --pid (taken with --lease).
    ///
    /// Fails (exit 1), touching nothing, when the lock is gone, belongs to
    /// another owner, or its lease already ran out: another host may have
    /// taken it over by then, and whatever --pid does now it does without
    /// the lock.
    Refresh {
        #[command(flatten)]
        pid: PidArg,
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
        /// Whose point of view `owned_by_self` takes (default: the parent of
        /// `lockfile`, the shell or script that ran it).
        #[arg(long, value_name = "PID", value_parser = parse_pid, allow_negative_numbers = true)]
        pid: Option<u32>,
        /// The lock file.
        path: PathBuf,
    },
    /// List the locks in directories (default: the current one), who holds
    /// them, and what crashed processes left beside them.
    ///
    /// A regular file is listed when it reads as a lock (labm8's files
    /// included), is named `*.lock`, or has private files beside it.
    /// Symlinks are never followed and FIFOs never opened; files that
    /// cannot be read are reported on stderr, and the listing goes on.
    List {
        /// Print one JSON object per lock (as `status --json`, with its
        /// private files under `leftovers`), one per line.
        #[arg(long)]
        json: bool,
        /// Whose point of view `owned-by-self` takes (default: the parent of
        /// `lockfile`, the shell or script that ran it).
        #[arg(long, value_name = "PID", value_parser = parse_pid, allow_negative_numbers = true)]
        pid: Option<u32>,
        /// Directories to list, or lock files to show.
        #[arg(value_name = "DIR|LOCK")]
        paths: Vec<PathBuf>,
    },
    /// Remove stale locks (through the protocol, as `acquire` takes them
    /// over) and what processes that are gone left beside locks.
    ///
    /// Only a lock that `status` judges stale is removed: never one that is
    /// held, foreign, unknown or malformed, and never one taken while
    /// `clean` runs. The token sequence (`.NAME.token`) is kept.
    Clean {
        /// Say what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// The directories to clean.
        #[arg(value_name = "DIR", required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Print this manual as a man page (roff) on stdout: `lockfile man | man -l -`.
    Man,
    /// Print a completion script for SHELL on stdout.
    ///
    /// bash: `source <(lockfile completions bash)`, or save it as
    /// `~/.local/share/bash-completion/completions/lockfile`; zsh: save it
    /// as `_lockfile` in a directory of `$fpath`; fish: save it as
    /// `~/.config/fish/completions/lockfile.fish`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Plant the record `PID TIMESTAMP` as given (labm8's static `write`).
    Write {
        /// The lock file.
        path: PathBuf,
        /// The pid to record (0 as labm8 allows it: a lock of an owner
        /// whose liveness is unknown, held until forced).
        #[arg(value_parser = parse_recorded_pid, allow_negative_numbers = true)]
        pid: u32,
        /// Unix time in seconds (fractions allowed); default: now.
        timestamp: Option<String>,
    },
    /// Run COMMAND while holding the lock; release it when COMMAND ends.
    ///
    /// The lock is taken before COMMAND starts, and names both `lockfile` and
    /// COMMAND: it is held while either runs. On Linux COMMAND is sent
    /// SIGTERM if `lockfile` dies; a COMMAND that survives that (it changed
    /// credentials, or ignores SIGTERM) keeps the lock held until it ends.
    /// SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to COMMAND.
    Run {
        #[command(flatten)]
        stale: StaleArg,
        #[command(flatten)]
        wait: WaitArg,
        /// Take the lock with a lease of SECONDS and renew it every third of
        /// that while COMMAND runs (see `acquire --lease`); implies --token.
        #[arg(long, value_name = "SECONDS", value_parser = parse_lease)]
        lease: Option<Duration>,
        /// Issue a fencing token and pass it to COMMAND as LOCKFILE_TOKEN
        /// (see `acquire --print-token`).
        #[arg(long)]
        token: bool,
        /// Exit with N (not 1) when the lock is held or `--wait` times out,
        /// so that "busy" differs from COMMAND's own exit 1 (flock's -E).
        #[arg(
            short = 'E',
            long,
            value_name = "N",
            default_value_t = HELD,
            value_parser = parse_exit_code,
            allow_negative_numbers = true
        )]
        conflict_exit_code: u8,
        /// What to do when the lock is lost while COMMAND runs (its lease
        /// could not be renewed in time: a pause, a partition): `term` sends
        /// COMMAND SIGTERM and exits 4; `ignore` lets it run on (its fencing
        /// token still stops its late writes where storage checks them).
        #[arg(long, value_name = "WHAT", value_enum, default_value_t = OnLost::Term)]
        on_lost: OnLost,
        /// Run STRING with `sh -c` instead of COMMAND (flock's -c).
        #[arg(
            short = 'c',
            long = "command",
            value_name = "STRING",
            conflicts_with = "argv"
        )]
        shell: Option<String>,
        /// The lock file.
        path: PathBuf,
        /// The command and its arguments: everything after the lock file
        /// (`--` before it is accepted, and needed only if COMMAND starts
        /// with `-`).
        #[arg(
            id = "argv",
            trailing_var_arg = true,
            allow_hyphen_values = true,
            required_unless_present = "shell",
            value_name = "COMMAND"
        )]
        command: Vec<String>,
    },
}

/// What `run` does when the lock is lost while COMMAND runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnLost {
    /// Send COMMAND SIGTERM, and exit 4.
    Term,
    /// Let COMMAND run on, and exit with its status.
    Ignore,
}

// `--no-replace-stale` (and the old `--replace-stale`, now the default).
// (Not a doc comment: clap would take it for the subcommand's about,
// which deferred subcommands set before their flattened arguments.)
#[allow(missing_docs)]
#[derive(Debug, Default, clap::Args)]
pub struct StaleArg {
    /// Refuse a lock whose owner is certainly gone (dead, recycled pid,
    /// previous boot, ended PID namespace, expired lease) instead of taking
    /// it over, as labm8 does by default. A lock whose owner is alive,
    /// unknown or on another host, or a malformed file, is never taken
    /// without --force either way.
    #[arg(long, overrides_with = "replace_stale")]
    pub no_replace_stale: bool,
    /// Take over a lock whose owner is certainly gone: the default (a crash
    /// must not wedge a cron job); accepted for scripts that say so.
    #[arg(long, overrides_with = "no_replace_stale")]
    pub replace_stale: bool,
}

impl StaleArg {
    /// What to do about another owner's lock: take it over when stale
    /// (the CLI's default), or only when free.
    pub fn mode(&self) -> Mode {
        if self.no_replace_stale {
            Mode::Free
        } else {
            Mode::ReplaceStale
        }
    }
}

// `--pid`.
#[allow(missing_docs)]
#[derive(Debug, clap::Args)]
pub struct PidArg {
    /// The process the lock is for (default: the parent of `lockfile`, the
    /// shell or script that ran it).
    #[arg(long, value_name = "PID", value_parser = parse_pid, allow_negative_numbers = true)]
    pub pid: Option<u32>,
}

// `--wait` and `-n`.
#[allow(missing_docs)]
#[derive(Debug, Default, clap::Args)]
pub struct WaitArg {
    /// Retry until the lock is free, for up to SECONDS (fractions allowed, or `forever`).
    #[arg(
        short = 'w',
        long,
        value_name = "SECONDS",
        value_parser = parse_wait,
        allow_negative_numbers = true,
        overrides_with = "nonblock"
    )]
    pub wait: Option<Wait>,
    /// Do not wait: fail at once if the lock is held (the default; flock's -n).
    #[arg(short = 'n', long, overrides_with = "wait")]
    pub nonblock: bool,
}

impl WaitArg {
    /// How long to wait: `-n` (or nothing) means not at all.
    pub fn wait(&self) -> Wait {
        match self.wait {
            Some(wait) if !self.nonblock => wait,
            _ => Wait::No,
        }
    }
}

// `--lease`.
#[allow(missing_docs)]
#[derive(Debug, clap::Args)]
pub struct LeaseArg {
    /// Record a lease of SECONDS (fractions allowed): another host (or PID
    /// namespace), which cannot see whether --pid runs, may take the lock
    /// over once it has not been renewed for that long (plus 3 s for clock
    /// skew and coarse timestamps). Renew it with `lockfile refresh`, or use `run --lease`.
    #[arg(long, value_name = "SECONDS", value_parser = parse_lease)]
    pub lease: Option<Duration>,
}

/// The everyday command lines, `acquire PATH`, `release PATH`, `status
/// PATH` (each also with `--pid PID` first) and `run PATH [--] COMMAND...`,
/// with no other options, as clap would parse them; `None` for any other,
/// which clap parses. Building clap's parser and running it took about
/// 40 µs of a `lockfile status` process, 7-8% of it (bench/README.md).
/// A test checks that this agrees with clap on every line it takes, and
/// declines the lines around them.
pub(crate) fn everyday(args: &[std::ffi::OsString]) -> Option<Cli> {
    let args: Vec<&str> = args.iter().map(|a| a.to_str()).collect::<Option<_>>()?;
    // A path clap would take as one: not empty, not an option.
    let path = |a: &str| (!a.is_empty() && !a.starts_with('-')).then(|| PathBuf::from(a));
    let (&subcommand, rest) = args.get(1..)?.split_first()?;
    // `--pid PID` before the path, or nothing; a bad PID is clap's to report.
    let (pid, rest) = match rest {
        ["--pid", pid, rest @ ..] if subcommand != "run" => (Some(parse_pid(pid).ok()?), rest),
        rest => (None, rest),
    };
    let command = match (subcommand, rest) {
        ("acquire", [p]) => Cmd::Acquire {
            stale: StaleArg::default(),
            force: false,
            pid: PidArg { pid },
            wait: WaitArg::default(),
            lease: LeaseArg { lease: None },
            print_token: false,
            path: path(p)?,
        },
        ("release", [p]) => Cmd::Release {
            force: false,
            pid: PidArg { pid },
            path: path(p)?,
        },
        ("status", [p]) => Cmd::Status {
            json: false,
            pid,
            path: path(p)?,
        },
        ("run", [p, rest @ ..]) => {
            // After `--`, or from COMMAND's first word on (which is not an
            // option), everything is COMMAND's.
            let command = match rest {
                ["--", command @ ..] => command,
                [first, ..] if !first.starts_with('-') => rest,
                _ => return None,
            };
            if command.is_empty() {
                return None;
            }
            Cmd::Run {
                stale: StaleArg::default(),
                wait: WaitArg::default(),
                lease: None,
                token: false,
                conflict_exit_code: HELD,
                on_lost: OnLost::Term,
                shell: None,
                path: path(p)?,
                command: command.iter().map(|&a| a.to_owned()).collect(),
            }
        }
        _ => return None,
    };
    Some(Cli {
        command,
        verbose: false,
        quiet: false,
    })
}

fn parse_lease(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.001..1e9).contains(&v) => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!(
            "`{s}` is not a lease: give a number of seconds, at least 0.001 (fractions allowed)"
        )),
    }
}

/// A pid as Linux has them: one range and one message, whatever is wrong.
fn parse_pid(s: &str) -> Result<u32, String> {
    let max = lockfile_core::format::MAX_PID;
    s.parse::<u64>()
        .ok()
        .filter(|p| (1..=max).contains(p))
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| format!("`{s}` is not a pid: a pid is a whole number from 1 to {max}"))
}

/// A pid to record as given (`write`): 0 too, as labm8's `write` takes it.
fn parse_recorded_pid(s: &str) -> Result<u32, String> {
    if s == "0" {
        return Ok(0);
    }
    parse_pid(s)
}

fn parse_wait(s: &str) -> Result<Wait, String> {
    if s == "forever" {
        return Ok(Wait::Forever);
    }
    match s.parse::<f64>() {
        // Longer than a Duration holds (about 585 billion years) is for ever.
        Ok(v) if v >= 0.0 => Ok(Duration::try_from_secs_f64(v).map_or(Wait::Forever, Wait::For)),
        _ => Err(format!(
            "`{s}` is not a wait: give a number of seconds, 0 or more (fractions allowed), or `forever`"
        )),
    }
}

/// An exit status for `-E`: clap's own error for `-1` would suggest `-- -1`.
fn parse_exit_code(s: &str) -> Result<u8, String> {
    s.parse::<u8>()
        .map_err(|_| format!("`{s}` is not an exit status: give a whole number from 0 to 255"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        Cli::try_parse_from(std::iter::once("lockfile").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    /// The fast path agrees with clap wherever it answers, answers the
    /// everyday lines, and leaves every line near them to clap.
    #[test]
    fn the_everyday_lines_parse_as_clap_parses_them() {
        let lines: &[(&[&str], bool)] = &[
            (&["acquire", "L"], true),
            (&["acquire", "--pid", "42", "L"], true),
            (&["release", "--pid", "4194304", "L"], true),
            (&["status", "--pid", "1", "L"], true),
            (&["acquire", "--pid", "0", "L"], false),
            (&["acquire", "--pid", "x", "L"], false),
            (&["acquire", "--pid", "-1", "L"], false),
            (&["acquire", "--pid", "42"], false),
            (&["acquire", "--pid", "42", "L", "M"], false),
            (&["acquire", "L", "--pid", "42"], false),
            (&["acquire", "--pid=42", "L"], false),
            (&["run", "--pid", "42", "L", "x"], false),
            (&["release", "/var/lock/x.lock"], true),
            (&["status", "L"], true),
            (&["status", "help"], true),
            (&["run", "L", "true"], true),
            (&["run", "L", "--", "true"], true),
            (&["run", "L", "echo", "-n", "hi"], true),
            (&["run", "L", "echo", "--", "-v", "--help"], true),
            (&["run", "L", "--", "-x", "y"], true),
            (&["run", "L", "--", "--", "x"], true),
            (&["run", "L", "sh", "-c", "a && b"], true),
            (&["run", "L", "x", "-c", "y"], true),
            (&["run", "L", "-c", "y"], false),
            (&["run", "L", "-v", "x"], false),
            (&["run", "L", "--"], false),
            (&["run", "L"], false),
            (&["run", "-w", "1", "L", "x"], false),
            (&["run", "--", "L", "x"], false),
            (&["run", "-L", "x"], false),
            (&["run", "", "x"], false),
            (&["status", "L", "--json"], false),
            (&["status", "--json", "L"], false),
            (&["status", "L", "M"], false),
            (&["status", "-"], false),
            (&["status", "--", "L"], false),
            (&["status", "--help"], false),
            (&["status"], false),
            (&["acquire", "L", "-w", "3"], false),
            (&["acquire", "-v", "L"], false),
            (&["release", "--force", "L"], false),
            (&["list", "."], false),
            (&["help", "status"], false),
            (&["--version"], false),
            (&[], false),
        ];
        for &(line, fast) in lines {
            let argv: Vec<std::ffi::OsString> = std::iter::once("lockfile")
                .chain(line.iter().copied())
                .map(Into::into)
                .collect();
            let ours = everyday(&argv);
            assert_eq!(ours.is_some(), fast, "{line:?}: {ours:?}");
            if let Some(ours) = ours {
                let clap = parse(line).unwrap_or_else(|e| panic!("{line:?}: clap: {e}"));
                assert_eq!(format!("{ours:?}"), format!("{clap:?}"), "{line:?}");
            }
        }
        // Arguments that are not UTF-8 are clap's (COMMAND must be UTF-8).
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let argv = ["lockfile", "status"]
                .map(std::ffi::OsString::from)
                .into_iter()
                .chain([std::ffi::OsString::from_vec(vec![0xFF])])
                .collect::<Vec<_>>();
            assert!(everyday(&argv).is_none());
        }
    }

    #[test]
    fn numbers_are_refused_in_our_words() {
        assert_eq!(parse_pid("42"), Ok(42));
        for bad in ["0", "-1", "x", "99999999999"] {
            assert!(
                parse_pid(bad).expect_err(bad).contains("is not a pid"),
                "{bad}"
            );
        }
        assert_eq!(parse_recorded_pid("0"), Ok(0));
        assert_eq!(parse_exit_code("75"), Ok(75));
        assert!(parse_exit_code("-1").expect_err("-1").contains("0 to 255"));
        assert_eq!(parse_wait("forever"), Ok(Wait::Forever));
        assert_eq!(
            parse_wait("1e30"),
            Ok(Wait::Forever),
            "longer than a Duration"
        );
        assert_eq!(parse_wait("0.5"), Ok(Wait::For(Duration::from_millis(500))));
        assert!(parse_wait("-1").is_err());
        assert!(parse_lease("0").is_err());
        assert_eq!(parse_lease("30"), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn run_takes_flocks_forms() {
        let Ok(Cli {
            command: Cmd::Run { command, shell, .. },
            ..
        }) = parse(&["run", "L", "echo", "-n", "hi"])
        else {
            panic!("run parses");
        };
        assert_eq!(command, ["echo", "-n", "hi"], "everything after the lock");
        assert_eq!(shell, None);
        let Ok(Cli {
            command: Cmd::Run { shell, wait, .. },
            ..
        }) = parse(&["run", "-w", "30", "L", "-c", "a && b"])
        else {
            panic!("run -c parses");
        };
        assert_eq!(shell.as_deref(), Some("a && b"));
        assert_eq!(wait.wait(), Wait::For(Duration::from_secs(30)));
        let err = parse(&["run", "-E", "-1", "L", "true"]).expect_err("-E -1");
        assert!(err.contains("0 to 255") && !err.contains("-- -1"), "{err}");
    }

    #[test]
    fn the_cli_takes_over_stale_locks_unless_told_not_to() {
        let mode = |args: &[&str]| match parse(args) {
            Ok(Cli {
                command: Cmd::Acquire { stale, .. },
                ..
            }) => stale.mode(),
            other => panic!("{other:?}"),
        };
        assert_eq!(mode(&["acquire", "L"]), Mode::ReplaceStale);
        assert_eq!(
            mode(&["acquire", "--replace-stale", "L"]),
            Mode::ReplaceStale
        );
        assert_eq!(mode(&["acquire", "--no-replace-stale", "L"]), Mode::Free);
    }

    #[test]
    fn no_wait_wins_over_an_earlier_wait() {
        let Ok(Cli {
            command: Cmd::Acquire { wait, .. },
            ..
        }) = parse(&["acquire", "-w", "5", "-n", "L"])
        else {
            panic!("parses");
        };
        assert_eq!(wait.wait(), Wait::No);
    }
}
