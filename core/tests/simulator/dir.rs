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
            |w, _| {
                Ok(w.names
                    .get(name)
                    .map(|&i| Kind::File(w.inodes[i].bytes.len() as u64)))
            },
        )
    }

    fn read(&self, name: &str, limit: usize) -> io::Result<Vec<u8>> {
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
                Ok(bytes)
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
                let inode = w.new_inode(Vec::new());
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
                let bytes = &mut w.inodes[inode].bytes;
                if bytes.len() < half {
                    bytes.resize(half, b' ');
                }
                bytes[..half].copy_from_slice(&first[..half]);
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
                Ok(true)
            },
        )
    }

    fn link(&self, existing: &str, new: &str) -> io::Result<()> {
        self.sim.step(
            self.me,
            || format!("link {existing} -> {new}"),
            |w, _| {
                if w.names.contains_key(new) && !w.faulty_link {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
                let inode = *w.names.get(existing).ok_or_else(not_found)?;
                w.unlink(new);
                w.inodes[inode].links += 1;
                w.names.insert(new.to_owned(), inode);
                Ok(())
            },
        )
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.sim.step(
            self.me,
            || format!("rename {from} -> {to}"),
            |w, a| {
                if !w.names.contains_key(from) {
                    return Err(not_found());
                }
                if to == LOCK {
                    w.check_judged(a, "replaced");
                }
                w.unlink(to);
                let inode = w.names.remove(from).ok_or_else(not_found)?;
                w.names.insert(to.to_owned(), inode);
                Ok(())
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

/// The process table as one actor sees it.
pub(crate) struct SimSys {
    pub(crate) sim: Arc<Sim>,
    pub(crate) spec: ActorSpec,
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
            hostname: Some(HOST.into()),
            boot_id: Some(BOOT.into()),
            pid_namespace: Some(PIDNS),
        }
    }
    fn query(&self, pid: u32) -> ProcessInfo {
        let alive = self.sim.lock().alive.get(&pid).copied().unwrap_or(false);
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
        Timestamp::new(1_800_000_000 + self.sim.lock().clock, 0)
    }
    fn random(&self) -> u64 {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        // Unique per actor and call, the same in every replay.
        (self.seed << 32) | n
    }
}
