//! The directory and the process table as one actor sees them: each call
//! is one step (or two, where a real call is not atomic).

use std::io;
use std::sync::Arc;

use lockfile_core::protocol::{Dir, Kind, System};
use lockfile_core::{Identity, Liveness, Machine, ProcessInfo, Timestamp};

use crate::scheduler::Sim;
use crate::world::*;

pub(crate) struct SimDir {
    pub(crate) sim: Arc<Sim>,
    pub(crate) me: usize,
}

pub(crate) fn not_found() -> io::Error {
    io::ErrorKind::NotFound.into()
}

impl Dir for SimDir {
    fn kind(&self, name: &str) -> io::Result<Option<Kind>> {
        self.sim.step(
            self.me,
            || format!("stat {name}"),
            |w, a| {
                let kind = w
                    .names
                    .get(name)
                    .map(|&i| Kind::File(w.inodes[i].bytes.len() as u64));
                if kind.is_none() && w.claim_on_claim(a).as_deref() == Some(name) {
                    w.actors[a].checked_at = Some(w.steps);
                }
                Ok(kind)
            },
        )
    }

    fn read(&self, name: &str, limit: usize) -> io::Result<Vec<u8>> {
        Ok(self.read_modified(name, limit)?.0)
    }

    fn read_modified(&self, name: &str, limit: usize) -> io::Result<(Vec<u8>, Option<Timestamp>)> {
        // Open and read are two steps: between them the file may be renamed
        // over, unlinked or rewritten, and the read sees what the inode holds.
        self.sim.step(
            self.me,
            || format!("open {name}"),
            |w, a| {
                let inode = *w.names.get(name).ok_or_else(not_found)?;
                w.actors[a].open = Some(inode);
                Ok(())
            },
        )?;
        self.sim.step(
            self.me,
            || format!("read {name}"),
            |w, a| {
                let inode = w.actors[a].open.take().ok_or_else(not_found)?;
                let mut bytes = w.inodes[inode].bytes.clone();
                bytes.truncate(limit);
                if name == LOCK {
                    w.actors[a].judged = Some(bytes.clone());
                }
                Ok((bytes, Some(timestamp(w.inodes[inode].modified))))
            },
        )
    }

    fn touch(&self, name: &str) -> io::Result<()> {
        self.sim.step(
            self.me,
            || format!("touch {name}"),
            |w, _| {
                let inode = *w.names.get(name).ok_or_else(not_found)?;
                w.inodes[inode].modified = w.clock;
                Ok(())
            },
        )
    }

    fn create(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.sim.step(
            self.me,
            || format!("create {name}"),
            |w, a| {
                if w.names.contains_key(name) {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
                let user = w.specs[a].user;
                let inode = w.new_inode(Vec::new(), user);
                w.names.insert(name.to_owned(), inode);
                w.actors[a].open = Some(inode);
                Ok(())
            },
        )?;
        let data = data.to_vec();
        self.sim.step(
            self.me,
            || format!("write {name}"),
            move |w, a| {
                let inode = w.actors[a].open.take().ok_or_else(not_found)?;
                w.inodes[inode].bytes = data;
                w.inodes[inode].modified = w.clock;
                Ok(())
            },
        )
    }

    fn rewrite(&self, name: &str, data: &[u8]) -> io::Result<bool> {
        // Two steps: the first half lands over the old bytes, then the rest
        // and the truncation. A reader in between sees a torn record.
        let first = data.to_vec();
        let rewritten = self.sim.step(
            self.me,
            || format!("rewrite {name} (first half)"),
            move |w, a| {
                let inode = *w.names.get(name).ok_or_else(not_found)?;
                if w.inodes[inode].links != 1 {
                    return Ok(false);
                }
                if w.names.get(LOCK) == Some(&inode) {
                    let msg = format!("{} rewrote the published lock", w.specs[a].name);
                    w.fail(msg);
                }
                let half = first.len() / 2;
                let clock = w.clock;
                let file = &mut w.inodes[inode];
                if file.bytes.len() < half {
                    file.bytes.resize(half, b' ');
                }
                file.bytes[..half].copy_from_slice(&first[..half]);
                file.modified = clock;
                w.actors[a].open = Some(inode);
                Ok(true)
            },
        )?;
        if !rewritten {
            return Ok(false);
        }
        let data = data.to_vec();
        self.sim.step(
            self.me,
            || format!("rewrite {name} (rest)"),
            move |w, a| {
                let inode = w.actors[a].open.take().ok_or_else(not_found)?;
                if w.names.get(LOCK) == Some(&inode) && w.inodes[inode].links > 1 {
                    let msg = format!("{} rewrote the published lock", w.specs[a].name);
                    w.fail(msg);
                }
                w.inodes[inode].bytes = data;
                w.inodes[inode].modified = w.clock;
                Ok(true)
            },
        )
    }

    fn link(&self, existing: &str, new: &str) -> io::Result<()> {
        self.sim.faultable_step(
            self.me,
            || format!("link {existing} -> {new}"),
            |w, a, fault| {
                if fault == Some(Fault::EioNotDone) {
                    return Err(eio());
                }
                if w.names.contains_key(new) && !w.faulty_link {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
                let inode = *w.names.get(existing).ok_or_else(not_found)?;
                if new == LOCK {
                    w.published(a, inode, None);
                } else if new.contains(".break.") {
                    w.actors[a].claim = Some(inode);
                    w.actors[a].claim_name = Some(new.to_owned());
                    w.actors[a].checked_at = None;
                    let at = w.steps;
                    w.claimed_at.insert(new.to_owned(), at);
                }
                w.unlink(new);
                w.inodes[inode].links += 1;
                w.names.insert(new.to_owned(), inode);
                match fault {
                    Some(Fault::ReplyLost) => Err(io::ErrorKind::AlreadyExists.into()),
                    Some(_) => Err(eio()),
                    None => Ok(()),
                }
            },
        )
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.sim.faultable_step(
            self.me,
            || format!("rename {from} -> {to}"),
            |w, a, fault| {
                if fault == Some(Fault::EioNotDone) {
                    return Err(eio());
                }
                let inode = *w.names.get(from).ok_or_else(not_found)?;
                w.may_unlink(a, from)?;
                w.may_unlink(a, to)?;
                if to == LOCK {
                    w.check_judged(a, "replaced");
                    let replaced = w.lock_bytes().map(<[u8]>::to_vec);
                    w.published(a, inode, replaced);
                }
                if to == TOKEN_FILE {
                    let number = |w: &World, name: &str| {
                        let bytes = &w.inodes[*w.names.get(name)?].bytes;
                        std::str::from_utf8(bytes).ok()?.trim().parse::<u64>().ok()
                    };
                    let (old, new) = (number(w, TOKEN_FILE), number(w, from));
                    w.token_file_written(a, old, new);
                }
                w.unlink(to);
                w.names.remove(from);
                w.names.insert(to.to_owned(), inode);
                match fault {
                    Some(Fault::ReplyLost) => Err(not_found()),
                    Some(_) => Err(eio()),
                    None => Ok(()),
                }
            },
        )
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.sim.step(
            self.me,
            || format!("unlink {name}"),
            |w, a| {
                if !w.names.contains_key(name) {
                    return Err(not_found());
                }
                w.may_unlink(a, name)?;
                if name == LOCK {
                    w.check_judged(a, "removed");
                    let acting = w.specs[a].acting;
                    let removed = w.lock_bytes().map(<[u8]>::to_vec);
                    if w.initial_holder.as_ref().is_some_and(|(pid, bytes)| {
                        *pid == acting && removed.as_deref() == Some(bytes.as_slice())
                    }) {
                        w.initial_holder = None;
                    }
                }
                w.unlink(name);
                Ok(())
            },
        )
    }

    fn names(&self) -> io::Result<Vec<String>> {
        self.sim.step(
            self.me,
            || "list the directory".into(),
            |w, _| Ok(w.names.keys().cloned().collect()),
        )
    }
}

/// EIO, which the protocol takes for "it changed under us" (Linux).
fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

impl World {
    /// `actor` puts `inode` at the lock's name, replacing `replaced`.
    fn published(&mut self, actor: usize, inode: usize, replaced: Option<Vec<u8>>) {
        let sequence = self.names.contains_key(TOKEN_FILE);
        let at = self.steps;
        let a = &mut self.actors[actor];
        a.published = Some((inode, at));
        a.sequence_existed = sequence;
        if replaced.is_some() || a.replaced.is_none() {
            a.replaced = replaced;
        }
    }
}

/// The process table as one actor sees it: its own host's processes.
pub(crate) struct SimSys {
    pub(crate) sim: Arc<Sim>,
    pub(crate) spec: ActorSpec,
    pub(crate) host: &'static str,
    pub(crate) counter: std::cell::Cell<u64>,
    pub(crate) seed: u64,
}

impl System for SimSys {
    fn current(&self) -> Identity {
        Identity {
            pid: self.spec.acting,
            start_ticks: Some(start_ticks(self.spec.acting)),
        }
    }
    fn runner(&self) -> Identity {
        Identity {
            pid: self.spec.runner,
            start_ticks: Some(start_ticks(self.spec.runner)),
        }
    }
    fn machine(&self) -> Machine {
        Machine {
            hostname: Some(self.host.into()),
            boot_id: Some(boot_of(self.host)),
            pid_namespace: Some(PIDNS),
        }
    }
    fn query(&self, pid: u32) -> ProcessInfo {
        let w = self.sim.lock();
        // A pid of another host's process names no process here.
        let alive = w.hosts.get(&pid) == Some(&self.host) && w.alive.get(&pid) == Some(&true);
        ProcessInfo {
            liveness: if alive {
                Liveness::Alive
            } else {
                Liveness::Dead
            },
            start_ticks: alive.then(|| start_ticks(pid)),
            start_time: None,
        }
    }
    fn now(&self) -> Timestamp {
        timestamp(self.sim.lock().clock)
    }
    fn random(&self) -> u64 {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        // Unique per actor and call, the same in every replay.
        (self.seed << 32) | n
    }
}
