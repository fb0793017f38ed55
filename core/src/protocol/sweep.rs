//! Sweeping what crashed processes left beside a lock.
use super::names::temp_owner;
use super::{Dir, Lock, State, System};
use crate::decide::{judge_with, Liveness, ProcessInfo, Verdict};
use crate::format;

impl<'a, D: Dir, S: System> Lock<'a, D, S> {
    /// Removes what crashed processes left beside this lock: claims whose
    /// target is gone and temporary files (spares included) of dead or
    /// recycled processes. Best effort; errors are ignored. Runs by itself
    /// after every takeover and when a handle starts keeping a spare.
    pub fn sweep(&self) {
        let Ok(names) = self.dir.names() else {
            return;
        };
        let claim_prefix = format!(".{}.break.", self.claim_stem);
        let temp_prefix = format!(".{}.", self.temp_stem);
        // Each claim with its target's fingerprint and its own bytes'.
        let claims: Vec<(&str, Option<u64>, Option<u64>)> = names
            .iter()
            .filter_map(|name| {
                let target = name.strip_prefix(&claim_prefix)?;
                let own = match self.load_name(name) {
                    Ok(State::Present { bytes, .. }) => Some(format::fingerprint(&bytes)),
                    _ => None,
                };
                Some((name.as_str(), u64::from_str_radix(target, 16).ok(), own))
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
                .filter(|(_, target, own)| {
                    target.is_some_and(|t| live.contains(&t))
                        && own.is_some_and(|o| !live.contains(&o))
                })
                .filter_map(|(_, _, own)| *own)
                .collect::<Vec<_>>();
            if grown.is_empty() {
                break;
            }
            live.extend(grown);
        }
        for (name, target, _) in &claims {
            if target.is_some_and(|t| !live.contains(&t)) {
                let _ = self.dir.remove(name);
            }
        }
        for name in &names {
            let Some(pid) = name.strip_prefix(&temp_prefix).and_then(temp_owner) else {
                continue;
            };
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
                Some(Verdict::Foreign) => continue,
                Some(Verdict::Stale) => {
                    let _ = self.dir.remove(name);
                    continue;
                }
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
            if runner.liveness == Liveness::Dead || recycled {
                let _ = self.dir.remove(name);
            }
        }
    }
}
