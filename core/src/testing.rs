//! The test pause hook: `LOCKFILE_TEST_PAUSE=CHECKPOINT:FILE[,...]` in the
//! environment of the code running the protocol. At checkpoint CHECKPOINT
//! (`after-judge`, `after-claim`, `before-publish`, `before-remove`) it
//! creates FILE, holding the pid the lock is taken for, and waits until FILE
//! is removed (at most two minutes). The test harness pauses and kills
//! processes mid-protocol with it.
//!
//! No interface carries it: a component reads its WASI environment, which
//! its host fills only if it means to (the `lockfile` binary passes its own
//! variable, and preopens FILE's directory; a library embedder passes
//! nothing and never pauses). Unset, it costs one environment lookup per
//! process or component instance.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable.
pub const PAUSE_VAR: &str = "LOCKFILE_TEST_PAUSE";

/// Parses the variable's value: `CHECKPOINT:FILE` items, comma-separated.
pub fn parse(spec: &str) -> Vec<(String, PathBuf)> {
    spec.split(',')
        .filter_map(|item| item.split_once(':'))
        .map(|(name, file)| (name.to_owned(), PathBuf::from(file)))
        .collect()
}

fn pauses() -> &'static [(String, PathBuf)] {
    static PAUSES: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    PAUSES.get_or_init(|| {
        std::env::var(PAUSE_VAR)
            .map(|s| parse(&s))
            .unwrap_or_default()
    })
}

/// Pauses at `checkpoint` if the environment asks for it.
pub fn pause_at(checkpoint: &str, pid: u32) {
    let Some((_, file)) = pauses().iter().find(|(name, _)| name == checkpoint) else {
        return;
    };
    if std::fs::write(file, pid.to_string()).is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            parse("after-claim:/tmp/a,before-publish:/tmp/b"),
            vec![
                ("after-claim".to_owned(), PathBuf::from("/tmp/a")),
                ("before-publish".to_owned(), PathBuf::from("/tmp/b")),
            ]
        );
        assert!(parse("").is_empty());
    }
}
