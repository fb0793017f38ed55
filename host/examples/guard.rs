//! Take a lock for this program, work while holding it, release it.
//!
//! ```text
//! cargo run --example guard -- /tmp/job.lock
//! ```

use std::time::Duration;

use lockfile_host::{AcquireOptions, Error, LockError, Runtime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/guard-example.lock".into());
    let runtime = Runtime::new()?; // loads the precompiled component once
    let mut lock = runtime.open(&path)?; // a small sandbox per lock
    let options = AcquireOptions::default() // a free lock only, no waiting...
        .replace_stale() // ...or one whose owner is gone
        .wait_for(Duration::from_secs(5)); // retry with backoff while held
    match lock.lock_with(options) {
        Ok(mut guard) => {
            // The critical section; the lock is released when `guard` drops.
            let status = guard.lock_file().status()?;
            println!("{path}: {} ({})", status.verdict.as_str(), status.reason);
        }
        Err(Error::Lock(LockError::UnableToAcquire(refusal))) => {
            // `refusal.cause` says why, as data; Display says it for people.
            eprintln!("busy: {refusal}");
            std::process::exit(1);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
