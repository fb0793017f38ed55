//! The `lockfile` command line: arguments, exit codes, messages and output.
//!
//! Shared by the native `lockfile` binary (which runs the lock component in
//! wasmtime) and `lockfile-command.wasm` (which runs the same core under
//! `wasmtime run`), so both speak exactly the same language. Each supplies a
//! [`Backend`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use lockfile_core::protocol::Leftover;
use lockfile_core::{
    display_time, rfc3339, AcquireOptions, Cause, Mode, Refusal, Status, Timestamp, Verdict,
};

mod survey;
pub use survey::Listing;

/// Exit code: the lock is held by another owner.
pub const HELD: u8 = 1;
/// Exit code: bad usage.
pub const USAGE: u8 = 2;
/// Exit code: any other error.
pub const OTHER: u8 = 3;

const AFTER_HELP: &str = "\
Exit status:
  0  success
  1  the lock is held by another owner (acquire or release refused, --wait timed out),
     or it changed hands too often while we looked; `run --conflict-exit-code N`: N
  2  usage error
  3  any other error (malformed lock file, unreachable path, I/O error)
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

/// Whether `-v` was given: the wait loop says who it waits for. A flag of
/// the process, set once from the command line, like a log level.
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The subcommands.
// Doc comments here are clap's help text; the flattened `--pid` and
// `--wait` arguments document themselves in `PidArg` and `WaitArg`.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
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

/// `--no-replace-stale` (and the old `--replace-stale`, now the default).
#[derive(Debug, clap::Args)]
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

/// `--pid`.
#[derive(Debug, clap::Args)]
pub struct PidArg {
    /// The process the lock is for (default: the parent of `lockfile`, the
    /// shell or script that ran it).
    #[arg(long, value_name = "PID", value_parser = parse_pid, allow_negative_numbers = true)]
    pub pid: Option<u32>,
}

/// `--wait` and `-n`.
#[derive(Debug, clap::Args)]
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

/// `--lease`.
#[derive(Debug, clap::Args)]
pub struct LeaseArg {
    /// Record a lease of SECONDS (fractions allowed): another host (or PID
    /// namespace), which cannot see whether --pid runs, may take the lock
    /// over once it has not been renewed for that long (plus 3 s for clock
    /// skew and coarse timestamps). Renew it with `lockfile refresh`, or use `run --lease`.
    #[arg(long, value_name = "SECONDS", value_parser = parse_lease)]
    pub lease: Option<Duration>,
}

pub use lockfile_core::Wait;

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

/// Another owner holds the lock: the refusal, and what was refused.
#[derive(Debug, Clone)]
pub struct Refused {
    /// Refused while acquiring (else releasing).
    pub acquiring: bool,
    /// Who holds it, and why that counts.
    pub refusal: Refusal,
}

/// Why a command failed; decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Exit 1.
    Refused(Box<Refused>),
    /// Exit 1: a contention limit was hit (the lock changed hands too often
    /// while we looked); `--wait` retries it like a refusal.
    Busy(String),
    /// Exit 2.
    Usage(String),
    /// Exit 1: `refresh` found the lock no longer ours.
    Lost(String),
    /// Exit 3.
    Other(String),
    /// This exit code, with what went wrong already said.
    Silent(u8),
}

impl Failure {
    /// The exit code.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Refused(_) | Failure::Busy(_) | Failure::Lost(_) => HELD,
            Failure::Usage(_) => USAGE,
            Failure::Other(_) => OTHER,
            Failure::Silent(code) => *code,
        }
    }

    /// The message, without the `lockfile: ` prefix.
    pub fn message(&self) -> String {
        match self {
            Failure::Refused(r) => {
                let Refused {
                    acquiring,
                    refusal: ref f,
                } = **r;
                let head = format!(
                    "cannot {} `{}`: {f}",
                    if acquiring { "acquire" } else { "release" },
                    f.path,
                );
                // The plain case needs no more words than `held by pid N (alive)`.
                match (f.verdict, f.cause) {
                    (Verdict::Held, Cause::Running | Cause::RunningUnverified) => head,
                    (Verdict::Stale, _) if acquiring => {
                        format!(
                            "{head}; {} (without --no-replace-stale it is taken over)",
                            f.reason
                        )
                    }
                    (Verdict::Stale, _) => {
                        format!("{head}; {} (use --force to remove it)", f.reason)
                    }
                    _ => format!("{head}; {}", f.reason),
                }
            }
            Failure::Busy(m) | Failure::Usage(m) | Failure::Lost(m) | Failure::Other(m) => {
                m.clone()
            }
            Failure::Silent(_) => String::new(),
        }
    }
}

/// One open lock.
pub trait Lock {
    /// Claims it once, as `options` say (their `wait` is the caller's:
    /// see [`acquire`]).
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn acquire(&mut self, options: &AcquireOptions) -> Result<(), Failure>;
    /// The fencing token of its current acquisition, if it issued one.
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn token(&mut self) -> Result<Option<u64>, Failure>;
    /// Renews its lease.
    ///
    /// # Errors
    /// [`Failure::Lost`] when it is no longer ours; another [`Failure`].
    fn refresh(&mut self) -> Result<(), Failure>;
    /// Releases it.
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn release(&mut self, force: bool) -> Result<(), Failure>;
    /// Its state.
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn status(&mut self) -> Result<Status, Failure>;
}

/// Where the lock logic runs.
pub trait Backend {
    /// An open lock.
    type Lock: Lock;
    /// Opens the lock at `path` for `pid` (`None`: the caller's parent).
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn open(&self, path: &Path, pid: Option<u32>) -> Result<Self::Lock, Failure>;
    /// Opens the lock at `path` only to look at it (`status`): as [`Backend::open`],
    /// but a backend that cannot tell the caller's parent may still report
    /// the lock's state.
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn inspect(&self, path: &Path, pid: Option<u32>) -> Result<Self::Lock, Failure> {
        self.open(path, pid)
    }
    /// Every lock in the directory `dir`, seen from `pid` (`None`: the
    /// caller's parent, or no process where that cannot be told).
    ///
    /// # Errors
    /// A [`Failure`] saying why the directory cannot be listed.
    fn list(&self, dir: &Path, pid: Option<u32>) -> Result<Listing, Failure>;
    /// Removes the private files in `dir` of processes that are gone, and
    /// returns them.
    ///
    /// # Errors
    /// As [`Backend::list`].
    fn sweep(&self, dir: &Path) -> Result<Vec<Leftover>, Failure>;
    /// Who the default `--pid` is, for messages.
    fn default_pid(&self) -> &'static str {
        "the parent of `lockfile`, the shell or script that ran it"
    }
    /// The pid of the process running the command (the one `clean` takes
    /// stale locks over for).
    ///
    /// # Errors
    /// A [`Failure`] where it cannot be told.
    fn own_pid(&self) -> Result<u32, Failure> {
        Ok(std::process::id())
    }
    /// Plants a record.
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn write(&self, path: &Path, pid: u32, timestamp: Timestamp) -> Result<(), Failure>;
    /// Runs a command under the lock and returns its exit code.
    ///
    /// # Errors
    /// A [`Failure`] saying why.
    fn run(&self, path: &Path, options: &AcquireOptions, command: &[String])
        -> Result<u8, Failure>;
}

/// A lock run by `lockfile-core`'s protocol in this process, with no
/// sandbox in between: the command component's, and the benchmark's native
/// limit's.
#[derive(Debug)]
pub struct CoreLock<D, S> {
    /// The lock's directory.
    pub dir: D,
    /// The lock's name in it.
    pub name: String,
    /// The lock's full path, for messages.
    pub path: String,
    /// What the protocol knows about processes.
    pub sys: S,
    /// How protocol errors become failures ([`failure`], or a backend's own
    /// that says more).
    pub failure: fn(lockfile_core::Error) -> Failure,
}

impl<D: lockfile_core::Dir, S: lockfile_core::System> CoreLock<D, S> {
    fn lock(&self) -> lockfile_core::Lock<'_, D, S> {
        lockfile_core::Lock::new(&self.dir, &self.name, &self.path, &self.sys)
    }
}

impl<D: lockfile_core::Dir, S: lockfile_core::System> Lock for CoreLock<D, S> {
    fn acquire(&mut self, options: &AcquireOptions) -> Result<(), Failure> {
        let (replace_stale, force) = options.mode.flags();
        self.lock()
            .with_lease(options.lease_ms())
            .with_tokens(options.token)
            .acquire(replace_stale, force)
            .map_err(self.failure)
    }

    fn token(&mut self) -> Result<Option<u64>, Failure> {
        self.lock().token().map_err(self.failure)
    }

    fn refresh(&mut self) -> Result<(), Failure> {
        self.lock().refresh().map_err(self.failure)
    }

    fn release(&mut self, force: bool) -> Result<(), Failure> {
        self.lock().release(force).map_err(self.failure)
    }

    fn status(&mut self) -> Result<Status, Failure> {
        self.lock().status().map_err(self.failure)
    }
}

/// The failure a protocol error is: refusals name the owner, contention is
/// "busy", a lost lease is lost, anything else is an error.
pub fn failure(e: lockfile_core::Error) -> Failure {
    use lockfile_core::Error;
    match e {
        Error::UnableToAcquire(refusal) => Failure::Refused(Box::new(Refused {
            acquiring: true,
            refusal: *refusal,
        })),
        Error::UnableToRelease(refusal) => Failure::Refused(Box::new(Refused {
            acquiring: false,
            refusal: *refusal,
        })),
        Error::Contended { .. } => Failure::Busy(e.to_string()),
        Error::Lost { .. } => Failure::Lost(e.to_string()),
        other => Failure::Other(other.to_string()),
    }
}

/// Parses the arguments, runs the command on the backend made by `backend`,
/// prints errors as `lockfile: MESSAGE`, and returns the exit code.
/// `run_about` replaces the help of `run` when given.
pub fn main<B: Backend>(
    backend: impl FnOnce() -> Result<B, Failure>,
    run_about: Option<&'static str>,
) -> u8 {
    let mut command = Cli::command();
    if let Some(about) = run_about {
        command = command.mut_subcommand("run", |c| c.about(about).long_about(about));
    }
    let parsed = command
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { USAGE } else { 0 };
        }
    };
    // Neither needs a lock, so neither loads the component.
    match cli.command {
        Cmd::Man => return print_or_fail(&man_page(&command)),
        Cmd::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "lockfile", &mut script);
            return print_or_fail(&script);
        }
        _ => {}
    }
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

/// Writes `bytes` to stdout: exit 0, or 3 with the reason (a closed pipe
/// is not a failure: the reader has what it wanted).
fn print_or_fail(bytes: &[u8]) -> u8 {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("lockfile: cannot print: {e}");
            OTHER
        }
    }
}

/// The man page of `command`: the command itself, then each subcommand
/// with its synopsis, description and options, in one page (`lockfile.1`).
pub fn man_page(command: &clap::Command) -> Vec<u8> {
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(command.clone());
    // Writing to a Vec cannot fail.
    let _ = man.render_title(&mut page);
    let _ = man.render_name_section(&mut page);
    let _ = man.render_synopsis_section(&mut page);
    let _ = man.render_description_section(&mut page);
    let _ = man.render_options_section(&mut page);
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("lockfile {}", sub.get_name());
        let sub = sub.clone().bin_name(name.clone());
        let mut part = Vec::new();
        let man = clap_mangen::Man::new(sub);
        let _ = man.render_synopsis_section(&mut part);
        let _ = man.render_description_section(&mut part);
        let _ = man.render_options_section(&mut part);
        // One section per subcommand; its parts become subsections.
        let part = String::from_utf8_lossy(&part).replace(".SH ", ".SS ");
        page.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        page.extend_from_slice(part.as_bytes());
    }
    page.extend_from_slice(MAN_TAIL.as_bytes());
    let _ = man.render_version_section(&mut page);
    page
}

/// The man page's closing sections: `--help` shows the same facts as
/// preformatted text (`AFTER_HELP`), which roff would reflow badly.
const MAN_TAIL: &str = r#".SH "EXIT STATUS"
.TP
0
Success.
.TP
1
The lock is held by another owner (acquire or release refused,
\fB\-\-wait\fR timed out), or it changed hands too often while we looked;
with \fBrun \-E\fR \fIN\fR, \fIN\fR.
.TP
2
Usage error.
.TP
3
Any other error (malformed lock file, unreachable path, I/O error).
.PP
\fBrun\fR exits with COMMAND's status (128+\fIN\fR if signal \fIN\fR killed it),
127 if COMMAND was not found, 126 if it could not be executed.
.SH NOTES
A lock taken with \fBacquire\fR belongs to \fB\-\-pid\fR, by default the
process that ran \fBlockfile\fR (your shell or script): it stays held until
released or until that process exits.
\fBacquire\fR and \fBrun\fR take over a lock whose owner is certainly gone
(\fB\-\-no\-replace\-stale\fR refuses it, as labm8 does).
A lock whose owner is alive, unknown or on another host, or a malformed
file, is never taken without \fB\-\-force\fR.
.SH "SEE ALSO"
\fBflock\fR(1), \fBlslocks\fR(8)
"#;

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
            return match backend.run(&path, &options, &command) {
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
    options.wait.retry(
        || lock.acquire(options),
        |f| matches!(f, Failure::Refused(_) | Failure::Busy(_)),
        |refusal| {
            if !told && VERBOSE.load(std::sync::atomic::Ordering::Relaxed) {
                let message = refusal.message();
                let rest = message.strip_prefix("cannot acquire ").unwrap_or(&message);
                eprintln!("lockfile: waiting for {rest}");
                told = true;
            }
        },
    )
}

/// The JSON object `status --json` prints (and `list --json`, one per lock).
pub fn status_json(s: &Status) -> serde_json::Value {
    let o = s.owner.as_ref();
    serde_json::json!({
        "path": s.path,
        "locked": !matches!(s.verdict, Verdict::Unlocked),
        "pid": o.map(|o| o.pid),
        "token": o.and_then(|o| o.token),
        "timestamp": o.map(|o| o.date.as_f64()),
        "acquired": o.and_then(|o| rfc3339(o.date)),
        "hostname": o.and_then(|o| o.hostname.clone()),
        "lease_ms": o.and_then(|o| o.lease_ms),
        "expires": o.and_then(|o| o.expires).and_then(rfc3339),
        "owned_by_self": s.verdict == Verdict::OwnedBySelf,
        "verdict": s.verdict.as_str(),
        "cause": s.cause.as_str(),
        "reason": s.reason,
    })
}

/// `30 s, runs out at 2026-… (in 12 s)`, or `… ran out 4 s ago`.
fn lease_line(lease_ms: u64, expires: Option<Timestamp>) -> String {
    let lease = lockfile_core::decide::human_duration(i128::from(lease_ms / 1000));
    let lease = if lease_ms < 10_000 {
        format!("{:.1} s", lease_ms as f64 / 1000.0)
    } else {
        lease
    };
    let Some(expires) = expires else {
        return lease;
    };
    let left = lockfile_core::decide::millis_since(expires, now()) / 1000;
    let when = display_time(expires);
    if left >= 0 {
        format!(
            "{lease}, runs out at {when} (in {}) unless renewed",
            lockfile_core::decide::human_duration(left)
        )
    } else {
        format!(
            "{lease}, ran out at {when} ({} ago)",
            lockfile_core::decide::human_duration(-left)
        )
    }
}

fn print_status(s: &Status, json: bool) -> std::io::Result<()> {
    let locked = !matches!(s.verdict, Verdict::Unlocked);
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", status_json(s))
    } else {
        writeln!(out, "path:     {}", s.path)?;
        writeln!(out, "locked:   {}", if locked { "yes" } else { "no" })?;
        if let Some(o) = &s.owner {
            writeln!(out, "pid:      {}", o.pid)?;
            writeln!(out, "acquired: {} ({})", display_time(o.date), o.date)?;
            if let Some(host) = &o.hostname {
                writeln!(out, "host:     {host}")?;
            }
            if let Some(ms) = o.lease_ms {
                writeln!(out, "lease:    {}", lease_line(ms, o.expires))?;
            }
            if let Some(token) = o.token {
                writeln!(out, "token:    {token}")?;
            }
        }
        writeln!(out, "verdict:  {}", s.verdict.as_str())?;
        writeln!(out, "reason:   {}", s.reason)
    }
}
