//! A worker process for the test harness and the contention benchmark, and
//! an example of embedding the lock.
//!
//! ```text
//! contend cycles DIR CYCLES   acquire -> critical section -> release, CYCLES times
//! contend takeover LOCK GO    wait for the file GO, then one replace-stale
//!                             acquire; a winner holds on until GO.done exists
//! ```
//!
//! `cycles` proves exclusion two ways: `DIR/counter` is incremented with a
//! deliberately non-atomic read-sleep-write, and `DIR/occupied` is created
//! exclusively on entry and removed on exit, so two holders would collide.
//! Exit status: 0 done, 1 refused (takeover lost), 10 exclusion violated,
//! 3 any other error.

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use lockfile_host::{Error, LockError, Runtime};

// The contention benchmark includes this file as a module and calls `run`.
#[allow(dead_code)]
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ExitCode::from(run(&args))
}

/// Runs a mode given its arguments; returns the exit status.
pub(crate) fn run(args: &[String]) -> u8 {
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["cycles", dir, cycles] => match cycles.parse() {
            Ok(n) => cycles_mode(Path::new(dir), n),
            Err(_) => Err(format!("bad cycle count `{cycles}`")),
        },
        ["takeover", lock, go] => takeover_mode(Path::new(lock), Path::new(go)),
        _ => Err("usage: contend cycles DIR CYCLES | contend takeover LOCK GO".into()),
    };
    result.unwrap_or_else(|e| {
        eprintln!("contend: {e}");
        3
    })
}

fn cycles_mode(dir: &Path, cycles: u32) -> Result<u8, String> {
    let runtime = Runtime::new().map_err(|e| e.to_string())?;
    let mut lock = runtime.open(dir.join("lock")).map_err(|e| e.to_string())?;
    let counter = dir.join("counter");
    let occupied = dir.join("occupied");
    for _ in 0..cycles {
        let mut backoff = 1;
        let guard = loop {
            match lock.lock(false, false) {
                Ok(guard) => break guard,
                Err(Error::Lock(LockError::UnableToAcquire(_))) => {
                    std::thread::sleep(Duration::from_micros(backoff));
                    backoff = (backoff * 2).min(2000);
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        if OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&occupied)
            .is_err()
        {
            eprintln!(
                "contend: `{}` exists: two holders at once",
                occupied.display()
            );
            return Ok(10);
        }
        let value: u64 = fs::read_to_string(&counter)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        // Widen the window a lost update would need.
        std::thread::sleep(Duration::from_micros(50));
        fs::write(&counter, (value + 1).to_string()).map_err(|e| e.to_string())?;
        fs::remove_file(&occupied).map_err(|e| e.to_string())?;
        guard.release().map_err(|e| e.to_string())?;
    }
    Ok(0)
}

fn takeover_mode(lock_path: &Path, go: &Path) -> Result<u8, String> {
    let runtime = Runtime::new().map_err(|e| e.to_string())?;
    let mut lock = runtime.open(lock_path).map_err(|e| e.to_string())?;
    while !go.exists() {
        std::thread::sleep(Duration::from_micros(200));
    }
    match lock.acquire(true, false) {
        Ok(()) => {
            println!("{}", std::process::id());
            // Stay alive: a winner that exited would leave a stale lock for
            // the next racer to take over, legitimately.
            let done = go.with_extension("done");
            while !done.exists() {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(0)
        }
        Err(Error::Lock(LockError::UnableToAcquire(_))) => Ok(1),
        Err(e) => Err(e.to_string()),
    }
}
