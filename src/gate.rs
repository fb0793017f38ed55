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
//! How: `lockfile run` forks. The child waits for a byte on a pipe, then
//! execs COMMAND in the same process (same pid, same start time), or exits
//! if `lockfile` gives up or dies (the pipe closes). A second pipe carries a
//! failed exec's errno back; a successful exec closes it (close-on-exec),
//! as std's own spawn does.
//!
//! The child is a fork of a process that may have threads, so until it
//! execs it makes only async-signal-safe system calls on memory prepared
//! before the fork: no allocation, no locks. Forking (rather than starting
//! a helper binary, as an earlier design did) spares `run` a whole second
//! process start-up: see bench/README.md.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use anyhow::Context;
use lockfile_cli::OTHER;

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
    pid: libc::pid_t,
    /// The gate: closing it without a byte sent keeps COMMAND from starting.
    go: Option<File>,
    status: File,
    program: String,
    /// Whether the child has been waited for.
    reaped: bool,
}

/// The environment variable that carries the fencing token to COMMAND.
const TOKEN_VAR: &[u8] = b"LOCKFILE_TOKEN=";
/// Room for the token's digits (u64: at most 20) and a NUL.
const TOKEN_ROOM: usize = 21;

/// What the child needs, all of it made before the fork.
struct Prepared {
    /// The program's path, from a `PATH` search made here, or the errno
    /// the search ended with (ENOENT, EACCES), for the child to report.
    path: Result<CString, i32>,
    argv: Vec<CString>,
    /// `/bin/sh PATH ARGS...`: what execvp runs for a file the kernel does
    /// not recognise as an executable (ENOEXEC), a script without `#!`.
    sh_argv: Vec<CString>,
    /// The environment without LOCKFILE_TOKEN.
    env: Vec<CString>,
    /// `LOCKFILE_TOKEN=` and room for the digits, written by the child.
    token: Vec<u8>,
}

fn cstring(bytes: &[u8]) -> anyhow::Result<CString> {
    CString::new(bytes).context("an argument or environment variable holds a NUL byte")
}

/// Finds `program` as execvp would: as given if it has a `/`, else in each
/// directory of `PATH` (the current one for an empty entry).
fn search(program: &OsStr) -> Result<CString, i32> {
    let bytes = program.as_bytes();
    let executable = |candidate: &[u8]| -> Result<CString, i32> {
        let c = CString::new(candidate).map_err(|_| libc::ENOENT)?;
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
            let is_dir = std::fs::metadata(OsStr::from_bytes(candidate)).is_ok_and(|m| m.is_dir());
            return if is_dir { Err(libc::EACCES) } else { Ok(c) };
        }
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::ENOENT))
    };
    if bytes.contains(&b'/') {
        return executable(bytes);
    }
    if bytes.is_empty() {
        return Err(libc::ENOENT);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/bin:/usr/bin"));
    let mut found_unusable = false;
    for dir in path.as_bytes().split(|&b| b == b':') {
        let mut candidate = if dir.is_empty() {
            b".".to_vec()
        } else {
            dir.to_vec()
        };
        candidate.push(b'/');
        candidate.extend_from_slice(bytes);
        match executable(&candidate) {
            Ok(c) => return Ok(c),
            Err(libc::ENOENT | libc::ENOTDIR) => {}
            Err(_) => found_unusable = true,
        }
    }
    Err(if found_unusable {
        libc::EACCES
    } else {
        libc::ENOENT
    })
}

fn prepare(command: &[String]) -> anyhow::Result<Prepared> {
    let Some(program) = command.first() else {
        anyhow::bail!("no COMMAND given");
    };
    let path = search(OsStr::new(program));
    let argv = command
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut sh_argv = vec![cstring(b"/bin/sh")?];
    if let Ok(p) = &path {
        sh_argv.push(p.clone());
        sh_argv.extend(argv.iter().skip(1).cloned());
    }
    let env = std::env::vars_os()
        .filter(|(k, _)| k != "LOCKFILE_TOKEN")
        .map(|(k, v)| {
            let mut entry = k.into_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            cstring(&entry)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut token = TOKEN_VAR.to_vec();
    token.resize(TOKEN_VAR.len() + TOKEN_ROOM, 0);
    Ok(Prepared {
        path,
        argv,
        sh_argv,
        env,
        token,
    })
}

/// A NULL-terminated array of pointers into `strings`.
fn pointers(strings: &[CString], spare: usize) -> Vec<*const libc::c_char> {
    let mut v = Vec::with_capacity(strings.len() + spare + 1);
    v.extend(strings.iter().map(|s| s.as_ptr()));
    v.push(std::ptr::null());
    v
}

impl Gated {
    /// Starts the gate for `command`.
    pub fn spawn(command: &[String]) -> anyhow::Result<Gated> {
        let prepared = prepare(command)?;
        let mut token = prepared.token;
        let argv = pointers(&prepared.argv, 0);
        let sh_argv = pointers(&prepared.sh_argv, 0);
        // One spare slot, before the NULL, for LOCKFILE_TOKEN.
        let mut envp = pointers(&prepared.env, 1);
        envp.push(std::ptr::null());
        let token_slot = prepared.env.len();
        let path = prepared.path.as_ref().map(|p| p.as_ptr()).map_err(|e| *e);
        let (go_read, go_write) = std::io::pipe().context("cannot create a pipe")?;
        let (status_read, status_write) = std::io::pipe().context("cannot create a pipe")?;
        let go_write = OwnedFd::from(go_write);
        let status_read = OwnedFd::from(status_read);
        let fds = ChildFds {
            go_read: go_read.as_raw_fd(),
            go_write: go_write.as_raw_fd(),
            status_read: status_read.as_raw_fd(),
            status_write: status_write.as_raw_fd(),
        };
        // SAFETY: plain system calls.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the child runs only `gate_child`, which makes
        // async-signal-safe calls on memory prepared above and never returns.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: we are the freshly forked child; the pointers point
            // into `prepared` and the vectors above, alive in our copy.
            unsafe {
                gate_child(
                    parent,
                    fds,
                    path,
                    argv.as_ptr(),
                    sh_argv.as_ptr(),
                    envp.as_mut_ptr(),
                    token_slot,
                    token.as_mut_ptr(),
                )
            }
        }
        if pid < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot start a process for `{}`", command[0]));
        }
        drop((go_read, status_write));
        Ok(Gated {
            pid,
            go: Some(File::from(go_write)),
            status: File::from(status_read),
            program: command[0].clone(),
            reaped: false,
        })
    }

    /// COMMAND's pid (the gate's, which COMMAND keeps).
    pub fn pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// Closes the gate for good: COMMAND never starts. The gate is killed
    /// too (it has not exec'd anything), in case it is stopped and would
    /// never see the pipe close.
    pub fn abandon(mut self) {
        drop(self.go.take());
        // SAFETY: our own child, not yet reaped.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let _ = self.wait();
    }

    /// Waits for the child; its raw wait status.
    fn wait(&mut self) -> std::io::Result<i32> {
        let mut status = 0;
        loop {
            // SAFETY: our own child; `status` is a valid out-pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                self.reaped = true;
                return Ok(status);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Lets COMMAND start (with `LOCKFILE_TOKEN` set to `token`, if any),
    /// runs it to its end and returns its exit code (128+N for signal N).
    pub fn open_and_wait(mut self, token: Option<u64>) -> anyhow::Result<u8> {
        let forwarder = crate::forward_signals(self.pid())?;
        let go = match token {
            Some(token) => format!("g{token}"),
            None => "g".to_owned(),
        };
        // The child reads until the pipe closes.
        let opened = match self.go.take() {
            Some(mut gate) => gate.write_all(go.as_bytes()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        let mut failed = String::new();
        let _ = self.status.read_to_string(&mut failed);
        if opened.is_err() || !failed.is_empty() {
            let _ = self.wait();
            forwarder.close();
            // The child writes `E` and the errno of the exec that failed.
            let errno = failed.strip_prefix('E').and_then(|e| e.parse::<i32>().ok());
            let (code, why) = match errno {
                Some(libc::ENOENT) => (127, "not found".to_owned()),
                Some(e) => (
                    126,
                    lockfile_core::plain::words(&std::io::Error::from_raw_os_error(e)),
                ),
                None => (126, "its process ended before it could start it".to_owned()),
            };
            return Err(CannotRun {
                code,
                message: format!("cannot run `{}`: {why}", self.program),
            }
            .into());
        }
        let status = self
            .wait()
            .with_context(|| format!("cannot wait for `{}`", self.program))?;
        forwarder.close();
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            return Ok(128u8.saturating_add(u8::try_from(signal).unwrap_or(127)));
        }
        Ok(u8::try_from(libc::WEXITSTATUS(status) & 0xff).unwrap_or(OTHER))
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: our own child, not yet reaped.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.wait();
        }
    }
}

/// The pipes' ends, as the child sees them.
#[derive(Clone, Copy)]
struct ChildFds {
    go_read: libc::c_int,
    go_write: libc::c_int,
    status_read: libc::c_int,
    status_write: libc::c_int,
}

/// The gate, in the forked child: never returns.
///
/// # Safety
/// Only in the child of `fork`, with every pointer valid and
/// NULL-terminated as [`Gated::spawn`] prepares them; `envp` has a spare
/// slot at `token_slot` (NULL) before its terminating NULL, and `token`
/// holds `LOCKFILE_TOKEN=` and [`TOKEN_ROOM`] bytes.
#[allow(clippy::too_many_arguments)]
unsafe fn gate_child(
    parent: libc::pid_t,
    fds: ChildFds,
    path: Result<*const libc::c_char, i32>,
    argv: *const *const libc::c_char,
    sh_argv: *const *const libc::c_char,
    envp: *mut *const libc::c_char,
    token_slot: usize,
    token: *mut u8,
) -> ! {
    // SAFETY (whole body): async-signal-safe calls only, on memory that
    // the caller guarantees (see above).
    unsafe {
        // Our copies of the parent's ends: the go pipe must read EOF when
        // `lockfile` closes or dies, which it cannot while we hold a writer.
        libc::close(fds.go_write);
        libc::close(fds.status_read);
        #[cfg(target_os = "linux")]
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGTERM as libc::c_ulong,
            0,
            0,
            0,
        );
        // If `lockfile` died before the prctl, no signal will come: do not
        // start COMMAND at all.
        if libc::getppid() != parent {
            libc::_exit(i32::from(OTHER));
        }
        // `g`, then the fencing token's digits if any, then the pipe closes.
        let mut message = [0u8; 1 + TOKEN_ROOM];
        let mut n = 0;
        while n < message.len() {
            let r = libc::read(
                fds.go_read,
                message.as_mut_ptr().add(n).cast(),
                message.len() - n,
            );
            if r == 0 {
                break;
            }
            if r < 0 {
                if *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                libc::_exit(i32::from(OTHER));
            }
            n += r.unsigned_abs();
        }
        libc::close(fds.go_read);
        if n == 0 || message[0] != b'g' {
            // `lockfile` gave up (the lock is held elsewhere) or died.
            libc::_exit(i32::from(OTHER));
        }
        let digits = n - 1;
        if digits > 0 && digits < TOKEN_ROOM {
            let at = token.add(TOKEN_VAR.len());
            std::ptr::copy_nonoverlapping(message.as_ptr().add(1), at, digits);
            *at.add(digits) = 0;
            *envp.add(token_slot) = token.cast_const().cast();
        }
        // As std's spawn does: COMMAND starts with default SIGPIPE (Rust
        // ignores it) and no blocked signals.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        let errno = match path {
            Ok(path) => {
                libc::execve(path, argv, envp.cast_const());
                let e = *libc::__errno_location();
                if e == libc::ENOEXEC {
                    libc::execve(c"/bin/sh".as_ptr(), sh_argv, envp.cast_const());
                }
                e
            }
            Err(e) => e,
        };
        // `E` and the errno in decimal.
        let mut report = [0u8; 12];
        report[0] = b'E';
        let mut len = 1;
        let mut digits = [0u8; 10];
        let mut d = 0;
        let mut rest = errno.unsigned_abs();
        loop {
            digits[d] = b'0' + (rest % 10) as u8;
            d += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        while d > 0 {
            d -= 1;
            report[len] = digits[d];
            len += 1;
        }
        libc::write(fds.status_write, report.as_ptr().cast(), len);
        libc::_exit(if errno == libc::ENOENT { 127 } else { 126 })
    }
}
