//! What makes the module safe across `fork`.
//!
//! A child made by `fork` has one thread, and a copy of everything else:
//! any mutex another thread held at that moment stays held in the child for
//! ever, and every handle and runtime names the parent's pid. So:
//!
//! - every call into a sandbox runs inside the *gate*; `fork` waits (in a
//!   `pthread_atfork` prepare handler) until no call is inside it, so the
//!   child never inherits a lock held mid-call (ours, or wasmtime's own);
//! - the child starts a new *generation*: state made in an earlier one
//!   (the runtime, every handle) is replaced on first use, and the parent's
//!   handles are abandoned, never cleaned up, since what they keep beside
//!   the lock is the parent's.
//!
//! Calls are microseconds long, and a wait's pauses are spent outside the
//! gate, so a `fork` waits at most one call's time.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Calls inside the gate now.
static INSIDE: AtomicUsize = AtomicUsize::new(0);
/// Set while a `fork` is being prepared: no call may enter.
static FORKING: AtomicBool = AtomicBool::new(false);
/// Bumped in every child: state from an older generation is the parent's.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The current generation: which process's state is ours.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// A call inside the gate; leaves it when dropped.
#[derive(Debug)]
pub struct Inside(());

impl Drop for Inside {
    fn drop(&mut self) {
        INSIDE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Enters the gate, waiting while a `fork` is being prepared (which lasts
/// at most as long as the calls already inside).
pub fn enter() -> Inside {
    loop {
        if !FORKING.load(Ordering::SeqCst) {
            INSIDE.fetch_add(1, Ordering::SeqCst);
            // Checked again after counting ourselves: a `fork` that began
            // between the two steps must not find us inside unannounced.
            if !FORKING.load(Ordering::SeqCst) {
                return Inside(());
            }
            INSIDE.fetch_sub(1, Ordering::SeqCst);
        }
        std::thread::yield_now();
    }
}

extern "C" fn prepare() {
    FORKING.store(true, Ordering::SeqCst);
    while INSIDE.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
}

extern "C" fn parent() {
    FORKING.store(false, Ordering::SeqCst);
}

extern "C" fn child() {
    // Only atomics here: a child of a threaded process may call nothing
    // that is not async-signal-safe before it reaches Python again.
    GENERATION.fetch_add(1, Ordering::SeqCst);
    INSIDE.store(0, Ordering::SeqCst);
    FORKING.store(false, Ordering::SeqCst);
}

/// Installs the handlers, once per process (the module is initialised once;
/// a second registration would only make `fork` wait twice).
///
/// # Errors
/// The error `pthread_atfork` returned (it fails only without memory).
#[cfg(unix)]
pub fn install() -> std::io::Result<()> {
    static INSTALLED: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    // SAFETY: the three handlers are `extern "C"` functions that live as
    // long as the process (this module is never unloaded: CPython does not
    // unload extension modules) and touch only atomics.
    let rc = *INSTALLED
        .get_or_init(|| unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) });
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

/// No `fork` off Unix: nothing to install.
#[cfg(not(unix))]
pub fn install() -> std::io::Result<()> {
    Ok(())
}
