//! Sweeping what crashed processes left beside a lock.
use super::names::temp_owner;
use super::{Dir, Lock, State, System};
use crate::decide::{judge_with, Liveness, ProcessInfo, Verdict};
use crate::format;

/// What a private file beside a lock is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftoverKind {
    /// A temporary file (`.NAME.PID.NONCE.tmp`): a record being written, or
    /// a handle's spare kept for its next acquisition.
    Temporary,
    /// A takeover or release claim (`.NAME.break.FINGERPRINT`).
    Claim,
    /// The fencing-token sequence (`.NAME.token`, and in a sticky directory
    /// `.NAME.token.NUMBER` and `.NAME.token.users`): never removed, or
    /// tokens would be issued again.
    Token,
}

impl LeftoverKind {
    /// The kind as one word: `temporary`, `claim`, `token`.
    pub fn as_str(self) -> &'static str {
        match self {
            LeftoverKind::Temporary => "temporary",
            LeftoverKind::Claim => "claim",
            LeftoverKind::Token => "token",
        }
    }
}

/// A private file beside a lock, and whether a sweep removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Its name in the directory.
    pub name: String,
    /// The lock it belongs to.
    pub lock: String,
    /// What it is.
    pub kind: LeftoverKind,
    /// The process whose it is: the one that wrote a temporary file (from
    /// its name), the claimer recorded in a claim; `None` for the token.
    pub pid: Option<u32>,
    /// Whether it is garbage: its process is gone (dead, recycled, earlier
    /// boot, ended namespace) or, for a claim, what it claimed is gone. A
    /// sweep removes exactly these.
    pub gone: bool,
}

/// A claim's name, its target's fingerprint, its own bytes' and its claimer.
type ClaimFile<'n> = (&'n str, Option<u64>, Option<u64>, Option<u32>);

impl<'a, D: Dir, S: System> Lock<'a, D, S> {
    /// Removes what crashed processes left beside this lock: claims whose
    /// target is gone and temporary files (spares included) of dead or
    /// recycled processes. Best effort; errors are ignored. Runs by itself
    /// after every takeover and when a handle starts keeping a spare.
    pub fn sweep(&self) {
        let Ok(names) = self.dir.names() else {
            return;
        };
        for leftover in self.leftovers(&names) {
            if leftover.gone {
                let _ = self.dir.remove(&leftover.name);
            }
        }
    }

    /// This lock's private files among `names`, each judged as [`Lock::sweep`]
    /// judges it.
    pub fn leftovers(&self, names: &[String]) -> Vec<Leftover> {
        let claim_prefix = format!(".{}.break.", self.claim_stem);
        let temp_prefix = format!(".{}.", self.temp_stem);
        let leftover = |name: &str, kind, pid, gone| Leftover {
            name: name.to_owned(),
            lock: self.name.to_owned(),
            kind,
            pid,
            gone,
        };
        let mut found = Vec::new();
        // Each claim with its target's fingerprint, its own bytes' and its claimer.
        let claims: Vec<ClaimFile<'_>> = names
            .iter()
            .filter_map(|name| {
                let target = name.strip_prefix(&claim_prefix)?;
                let (own, pid) = match self.load_name(name) {
                    Ok(State::Present { bytes, record }) => (
                        Some(format::fingerprint(&bytes)),
                        record.ok().map(|r| r.pid),
                    ),
                    _ => (None, None),
                };
                Some((
                    name.as_str(),
                    u64::from_str_radix(target, 16).ok(),
                    own,
                    pid,
                ))
            })
            .collect();
        // A claim is live while its target is: the lock, or a live claim (a
        // claim on an abandoned claim). Every other claim can never pass the
        // check of its chain again.
        let mut live = Vec::new();
        if !claims.is_empty() {
            if let Ok(State::Present { bytes, .. }) = self.load() {
                live.push(format::fingerprint(&bytes));
            }
        }
        loop {
            let grown = claims
                .iter()
                .filter(|(_, target, own, _)| {
                    target.is_some_and(|t| live.contains(&t))
                        && own.is_some_and(|o| !live.contains(&o))
                })
                .filter_map(|(_, _, own, _)| *own)
                .collect::<Vec<_>>();
            if grown.is_empty() {
                break;
            }
            live.extend(grown);
        }
        for (name, target, _, pid) in &claims {
            // A claim whose name is not a fingerprint is no claim of ours:
            // left alone, as the sweep always has.
            if let Some(t) = target {
                found.push(leftover(name, LeftoverKind::Claim, *pid, !live.contains(t)));
            }
        }
        let token = format!(".{}.token", self.temp_stem);
        let is_token = |name: &str| {
            name == token
                || name
                    .strip_prefix(&token)
                    .and_then(|r| r.strip_prefix('.'))
                    .is_some_and(super::token::is_token_file_suffix)
        };
        for name in names {
            if is_token(name) {
                found.push(leftover(name, LeftoverKind::Token, None, false));
                continue;
            }
            let Some(pid) = name.strip_prefix(&temp_prefix).and_then(temp_owner) else {
                continue;
            };
            found.push(leftover(
                name,
                LeftoverKind::Temporary,
                Some(pid),
                self.temp_gone(name, pid),
            ));
        }
        found
    }

    /// Whether the temporary file `name`, written by `pid`, belongs to a
    /// process that is gone.
    fn temp_gone(&self, name: &str, pid: u32) -> bool {
        let record = match self.load_name(name) {
            Ok(State::Present { record: Ok(r), .. }) => Some(r),
            _ => None,
        };
        // Judged without asking about any pid: a temp file written on
        // another host or in a live namespace elsewhere names a pid we
        // cannot see, so it is left alone; one from an earlier boot or an
        // ended namespace belongs to a process that is gone.
        let verdict = record.as_ref().map(|r| {
            judge_with(
                r,
                &self.sys.current(),
                &self.sys.machine(),
                |_| ProcessInfo::UNKNOWN,
                |ns| self.sys.pid_namespace_alive(ns),
            )
            .verdict
        });
        match verdict {
            Some(Verdict::Foreign) => return false,
            Some(Verdict::Stale) => return true,
            _ => {}
        }
        let runner = self.sys.query(pid);
        // A handle's spare lives as long as its process, so its pid
        // may have been recycled: the record's start time tells.
        let recycled = record.as_ref().is_some_and(|r| {
            r.pid == pid
                && matches!((r.start_ticks, runner.start_ticks),
                            (Some(then), Some(now)) if then != now)
        });
        runner.liveness == Liveness::Dead || recycled
    }
}
