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
//! How: `lockfile run` forks. The child waits for a line on a pipe (`g`,
//! and the fencing token if any), then execs COMMAND in the same process
//! (same pid, same start time), or exits if `lockfile` gives up or dies
//! (the pipe closes first). A second pipe carries a
//! failed exec's errno back; a successful exec closes it (close-on-exec),
//! as std's own spawn does.
//!
//! The child is a fork of a process that may have threads, so until it
//! execs it makes only async-signal-safe system calls on memory prepared
//! before the fork: no allocation, no locks. Forking (rather than starting
//! a helper binary, as an earlier design did) spares `run` a whole second
//! process start-up: see bench/README.md.
//!
//! On Linux the child shares `lockfile`'s memory (`clone` with `CLONE_VM`,
//! as posix_spawn's child does, but without suspending the parent): no page
//! tables are copied, the parent pays no copy-on-write faults while it
//! loads the component, and COMMAND's exec has no copy to tear down. The
//! child then runs on a stack of its own and touches only [`ChildMemory`],
//! which the parent keeps until the child has exec'd or been reaped, and
//! the system calls it makes that can fail (read, write, execve) are raw
//! ones (rustix's, and `execve` in assembly), which never write the
//! `errno` it shares with the parent's main thread. Elsewhere (other
//! architectures and systems) the child is a fork.

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

/// What the child reads and writes before it execs: the parent's own
/// memory under `CLONE_VM`, so it lives as long as the child may run.
struct ChildMemory {
    /// Owns the strings `args` points into.
    _prepared: Prepared,
    _argv: Vec<*const libc::c_char>,
    _sh_argv: Vec<*const libc::c_char>,
    _envp: Vec<*const libc::c_char>,
    _token: Vec<u8>,
    /// The child's stack (Linux): allocated, never touched by the parent.
    _stack: Vec<u8>,
    args: ChildArgs,
}

// SAFETY: the pointers in `args` point into this same value's vectors,
// which move with it; the parent never dereferences them.
unsafe impl Send for ChildMemory {}

/// The child's stack: `gate_child` needs well under a page.
#[cfg(shared_memory_gate)]
const CHILD_STACK: usize = 64 << 10;

/// [`gate_child`]'s arguments.
#[derive(Clone, Copy)]
struct ChildArgs {
    parent: libc::pid_t,
    fds: ChildFds,
    path: Result<*const libc::c_char, i32>,
    argv: *const *const libc::c_char,
    sh_argv: *const *const libc::c_char,
    envp: *mut *const libc::c_char,
    token_slot: usize,
    token: *mut u8,
}

/// A started COMMAND waiting at its gate.
pub struct Gated {
    pid: libc::pid_t,
    /// What the child may still use: dropped only once it is reaped (see
    /// `Drop`), leaked if it cannot be.
    memory: Option<Box<ChildMemory>>,
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

/// What the child needs, all of it made before it starts.
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
    Ok(Prepared {
        path,
        argv,
        sh_argv,
        env,
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
        let argv = pointers(&prepared.argv, 0);
        let sh_argv = pointers(&prepared.sh_argv, 0);
        // One spare slot, before the NULL, for LOCKFILE_TOKEN.
        let mut envp = pointers(&prepared.env, 1);
        envp.push(std::ptr::null());
        let token_slot = prepared.env.len();
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
        // `LOCKFILE_TOKEN=` and room for the digits, written by the child.
        let mut token = TOKEN_VAR.to_vec();
        token.resize(TOKEN_VAR.len() + TOKEN_ROOM, 0);
        let path = prepared.path.as_ref().map(|p| p.as_ptr()).map_err(|e| *e);
        let args = ChildArgs {
            parent,
            fds,
            path,
            argv: argv.as_ptr(),
            sh_argv: sh_argv.as_ptr(),
            envp: envp.as_mut_ptr(),
            token_slot,
            token: token.as_mut_ptr(),
        };
        #[cfg(shared_memory_gate)]
        let stack = Vec::with_capacity(CHILD_STACK);
        #[cfg(not(shared_memory_gate))]
        let stack = Vec::new();
        // Moving the vectors into the box moves no heap memory: the
        // pointers in `args` stay valid.
        let mut memory = Box::new(ChildMemory {
            _prepared: prepared,
            _argv: argv,
            _sh_argv: sh_argv,
            _envp: envp,
            _token: token,
            _stack: stack,
            args,
        });
        let pid = start_child(&mut memory);
        if pid < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot start a process for `{}`", command[0]));
        }
        drop((go_read, status_write));
        Ok(Gated {
            pid,
            memory: Some(memory),
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
        // Ends with a newline, so that the child goes on as soon as it has
        // read it, without waiting to see the pipe close.
        let go = match token {
            Some(token) => format!("g{token}\n"),
            None => "g\n".to_owned(),
        };
        let opened = match self.go.take() {
            Some(mut gate) => gate.write_all(go.as_bytes()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        // The child's end of the status pipe closes when it execs (or
        // exits): once it is reaped, the pipe holds a failed exec's errno or
        // nothing, and reading it does not block. Waiting first spares
        // `lockfile` waking up in between, while COMMAND starts.
        let status = self.wait();
        let mut failed = String::new();
        let _ = self.status.read_to_string(&mut failed);
        forwarder.close();
        if opened.is_err() || !failed.is_empty() {
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
        let status = status.with_context(|| format!("cannot wait for `{}`", self.program))?;
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
        if !self.reaped {
            // It may still run in our memory: never free what it uses.
            std::mem::forget(self.memory.take());
        }
    }
}

/// Starts the child on `memory`: its pid, or -1 with `errno` set.
#[cfg(shared_memory_gate)]
fn start_child(memory: &mut ChildMemory) -> libc::pid_t {
    extern "C" fn entry(args: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `args` is the `ChildArgs` of a `ChildMemory` the parent
        // keeps until this child is reaped (`Gated`), with the guarantees
        // `gate_child` asks for.
        unsafe {
            let a = &*args.cast::<ChildArgs>();
            gate_child(a)
        }
    }
    // The stack grows down from the end of the allocation (its capacity:
    // the vector is empty).
    let stack = memory
        ._stack
        .as_mut_ptr()
        .wrapping_add(memory._stack.capacity());
    // The ABI wants the stack 16-byte aligned.
    let top = stack.wrapping_sub(stack as usize % 16);
    let args = std::ptr::from_mut(&mut memory.args).cast::<libc::c_void>();
    // SAFETY: `top` ends a writable allocation of CHILD_STACK bytes that
    // nothing else uses; the child shares our memory (CLONE_VM) but not our
    // file descriptors or signal handlers, and runs only `gate_child`.
    unsafe { libc::clone(entry, top.cast(), libc::CLONE_VM | libc::SIGCHLD, args) }
}

/// Starts the child on `memory` (a copy of it, by `fork`).
#[cfg(not(shared_memory_gate))]
fn start_child(memory: &mut ChildMemory) -> libc::pid_t {
    // SAFETY: the child runs only `gate_child`, which makes
    // async-signal-safe calls on memory prepared before and never returns.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let a = &memory.args;
        // SAFETY: we are the freshly forked child; the pointers point into
        // `memory`, alive in our copy.
        unsafe { gate_child(a) }
    }
    pid
}

/// The pipes' ends, as the child sees them.
#[derive(Clone, Copy)]
struct ChildFds {
    go_read: libc::c_int,
    go_write: libc::c_int,
    status_read: libc::c_int,
    status_write: libc::c_int,
}

/// The gate, in the child: never returns.
///
/// # Safety
/// Only in the child (of `fork`, or of `clone` sharing our memory, whose
/// `errno` is the parent's main thread's: the calls here that can fail,
/// read, write and execve, do not go through libc, and the rest cannot
/// fail as made), with every pointer valid and
/// NULL-terminated as [`Gated::spawn`] prepares them; `envp` has a spare
/// slot at `token_slot` (NULL) before its terminating NULL, and `token`
/// holds `LOCKFILE_TOKEN=` and [`TOKEN_ROOM`] bytes.
unsafe fn gate_child(a: &ChildArgs) -> ! {
    let ChildArgs {
        parent,
        fds,
        path,
        argv,
        sh_argv,
        envp,
        token_slot,
        token,
    } = *a;
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
        // `g`, then the fencing token's digits if any, then a newline.
        let mut message = [0u8; 1 + TOKEN_ROOM];
        let mut n = 0;
        let mut end = None;
        let go_read = std::os::fd::BorrowedFd::borrow_raw(fds.go_read);
        while n < message.len() && end.is_none() {
            match rustix::io::read(go_read, &mut message[n..]) {
                Ok(0) => break,
                Ok(r) => {
                    end = message[n..n + r]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map(|i| n + i);
                    n += r;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => libc::_exit(i32::from(OTHER)),
            }
        }
        libc::close(fds.go_read);
        let Some(end) = end else {
            // `lockfile` gave up (the lock is held elsewhere) or died
            // before it said all of it.
            libc::_exit(i32::from(OTHER));
        };
        if message[0] != b'g' {
            libc::_exit(i32::from(OTHER));
        }
        let digits = end - 1;
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
                let e = execve(path, argv, envp.cast_const());
                if e == libc::ENOEXEC {
                    execve(c"/bin/sh".as_ptr(), sh_argv, envp.cast_const());
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
        let status_write = std::os::fd::BorrowedFd::borrow_raw(fds.status_write);
        let _ = rustix::io::write(status_write, &report[..len]);
        libc::_exit(if errno == libc::ENOENT { 127 } else { 126 })
    }
}

/// `execve`: the errno it failed with. With a shared-memory gate, a raw
/// system call, which leaves `errno` (shared with the parent's main thread)
/// alone.
///
/// # Safety
/// As `execve(2)`: NUL-terminated strings and NULL-terminated arrays.
unsafe fn execve(
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> i32 {
    #[cfg(all(shared_memory_gate, target_arch = "x86_64"))]
    {
        let ret: isize;
        // SAFETY: the execve system call, as the caller guarantees; it
        // returns only on failure, with -errno.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") libc::SYS_execve as isize => ret,
                in("rdi") path,
                in("rsi") argv,
                in("rdx") envp,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        i32::try_from(-ret).unwrap_or(libc::EINVAL)
    }
    #[cfg(all(shared_memory_gate, target_arch = "aarch64"))]
    {
        let ret: isize;
        // SAFETY: as above.
        unsafe {
            std::arch::asm!(
                "svc 0",
                in("x8") libc::SYS_execve as isize,
                inlateout("x0") path as isize => ret,
                in("x1") argv,
                in("x2") envp,
                options(nostack),
            );
        }
        i32::try_from(-ret).unwrap_or(libc::EINVAL)
    }
    #[cfg(not(shared_memory_gate))]
    // SAFETY: as the caller guarantees.
    unsafe {
        libc::execve(path, argv, envp);
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL)
    }
}
