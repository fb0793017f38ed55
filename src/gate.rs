//! COMMAND's process for `lockfile run`, started before the lock is taken
//! and held at a gate, so that the lock can name it as well as `lockfile`.
//!
//! Why: the lock names `lockfile`'s pid, and COMMAND dies with `lockfile`
//! through its parent-death signal. But Linux clears that signal when a
//! process changes credentials (`setpriv`, `su`, a setuid binary, a daemon
//! dropping privileges): such a COMMAND outlives a SIGKILLed `lockfile`, and
//! the lock must stay held while it runs. So the record names COMMAND too
//! (its pid and start time), and the lock is stale only when both are gone.
//!
//! How: `lockfile run` starts itself with [`ARG`]. That process waits for a
//! byte on an inherited pipe, then execs COMMAND in the same process (same
//! pid, same start time), or exits if `lockfile` gives up or dies (the pipe
//! closes). A second pipe carries a failed exec's error back; a successful
//! exec closes it (close-on-exec), as std's own spawn does.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitCode};

use anyhow::Context;
use lockfile_cli::{OTHER, USAGE};
use rustix::io::{fcntl_getfd, fcntl_setfd, FdFlags};

/// The hidden first argument of the gate: `lockfile ARG GO STATUS -- COMMAND...`.
pub const ARG: &str = "__lockfile-run-gate";

/// COMMAND could not be started: 127 when it was not found, 126 when it
/// was found but could not be executed (the shell's and flock's codes).
#[derive(Debug)]
pub struct CannotRun {
    /// 126 or 127.
    pub code: u8,
    /// What and why.
    pub message: String,
}

impl std::fmt::Display for CannotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CannotRun {}

/// A started COMMAND waiting at its gate.
pub struct Gated {
    child: Child,
    go: File,
    status: File,
    program: String,
}

impl Gated {
    /// Starts the gate for `command`.
    pub fn spawn(command: &[String]) -> anyhow::Result<Gated> {
        let Some(program) = command.first() else {
            anyhow::bail!("no COMMAND given");
        };
        let (go_read, go_write) = std::io::pipe().context("cannot create a pipe")?;
        let (status_read, status_write) = std::io::pipe().context("cannot create a pipe")?;
        let (go_fd, status_fd) = (go_read.as_raw_fd(), status_write.as_raw_fd());
        // This very binary, even if its file was replaced since it started
        // (where /proc is mounted).
        let this = std::path::Path::new("/proc/self/exe");
        let exe = if this.exists() {
            this.to_path_buf()
        } else {
            std::env::current_exe().context("cannot find the lockfile binary")?
        };
        let mut cmd = Command::new(exe);
        cmd.arg(ARG)
            .arg(go_fd.to_string())
            .arg(status_fd.to_string())
            .arg("--")
            .args(command);
        let parent = rustix::process::getpid();
        // SAFETY: the closure runs in the forked child before exec and makes
        // only async-signal-safe system calls (prctl, getppid, fcntl) on
        // descriptors the child holds until the exec.
        unsafe {
            cmd.pre_exec(move || {
                #[cfg(target_os = "linux")]
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::TERM,
                ))?;
                // If `lockfile` died before the prctl, no signal will come:
                // do not start COMMAND at all.
                if rustix::process::getppid() != Some(parent) {
                    return Err(std::io::Error::other(
                        "lockfile exited before COMMAND started",
                    ));
                }
                for fd in [go_fd, status_fd] {
                    fcntl_setfd(BorrowedFd::borrow_raw(fd), FdFlags::empty())?;
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start lockfile's gate for `{program}`"))?;
        drop((go_read, status_write));
        Ok(Gated {
            child,
            go: File::from(OwnedFd::from(go_write)),
            status: File::from(OwnedFd::from(status_read)),
            program: program.clone(),
        })
    }

    /// COMMAND's pid (the gate's, which COMMAND keeps).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes the gate for good: COMMAND never starts. The gate is killed
    /// too (it has not exec'd anything), in case it is stopped and would
    /// never see the pipe close.
    pub fn abandon(mut self) {
        drop(self.go);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Lets COMMAND start (with `LOCKFILE_TOKEN` set to `token`, if any),
    /// runs it to its end and returns its exit code (128+N for signal N).
    pub fn open_and_wait(mut self, token: Option<u64>) -> anyhow::Result<u8> {
        let forwarder = crate::forward_signals(self.child.id())?;
        let go = match token {
            Some(token) => format!("g{token}"),
            None => "g".to_owned(),
        };
        let opened = self.go.write_all(go.as_bytes());
        drop(self.go);
        let mut failed = String::new();
        let _ = self.status.read_to_string(&mut failed);
        if opened.is_err() || !failed.is_empty() {
            let _ = self.child.wait();
            forwarder.close();
            // The gate writes `CODE MESSAGE`.
            let (code, why) = match failed.split_once(' ') {
                Some((code, why)) => (code.parse().unwrap_or(126), why.to_owned()),
                None => (
                    126,
                    "lockfile's gate process ended before it could start it".to_owned(),
                ),
            };
            return Err(CannotRun {
                code,
                message: format!("cannot run `{}`: {why}", self.program),
            }
            .into());
        }
        let status = self
            .child
            .wait()
            .with_context(|| format!("cannot wait for `{}`", self.program))?;
        forwarder.close();
        if let Some(signal) = status.signal() {
            return Ok(128u8.saturating_add(u8::try_from(signal).unwrap_or(127)));
        }
        Ok(status
            .code()
            .map_or(OTHER, |c| u8::try_from(c & 0xff).unwrap_or(OTHER)))
    }
}

/// The gate itself, in the child: `GO STATUS -- PROGRAM [ARGS...]` (the
/// arguments after [`ARG`]).
pub fn main(args: &[OsString]) -> ExitCode {
    let fd = |i: usize| -> Option<RawFd> {
        let fd: RawFd = args.get(i)?.to_str()?.parse().ok()?;
        // SAFETY: only asks whether the descriptor is open.
        fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) }).ok()?;
        Some(fd)
    };
    let program = args
        .get(3..)
        .filter(|_| args.get(2).is_some_and(|a| a == "--"))
        .and_then(<[OsString]>::split_first);
    let (Some(go_fd), Some(status_fd), Some((program, rest))) = (fd(0), fd(1), program) else {
        eprintln!("lockfile: `{ARG}` is internal to `lockfile run`");
        return ExitCode::from(USAGE);
    };
    // SAFETY: `lockfile run` passed these two descriptors, open (checked
    // above) and distinct, for this process to own.
    let (mut go, mut status) = unsafe { (File::from_raw_fd(go_fd), File::from_raw_fd(status_fd)) };
    // A successful exec closes the status pipe: that is the all-clear.
    if fcntl_setfd(&status, FdFlags::CLOEXEC).is_err() {
        return ExitCode::from(OTHER);
    }
    // `g`, then the fencing token if any, then the pipe closes.
    let mut message = Vec::new();
    if go.read_to_end(&mut message).is_err() || message.first() != Some(&b'g') {
        // `lockfile` gave up (the lock is held elsewhere) or died.
        return ExitCode::from(OTHER);
    }
    drop(go);
    let mut command = Command::new(program);
    command.args(rest);
    if let Some(token) = std::str::from_utf8(&message[1..])
        .ok()
        .filter(|t| !t.is_empty())
    {
        command.env("LOCKFILE_TOKEN", token);
    }
    let error = command.exec();
    let code: u8 = if error.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    let _ = write!(status, "{code} {error}");
    ExitCode::from(code)
}
