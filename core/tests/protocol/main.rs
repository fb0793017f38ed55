//! The protocol on a real directory, natively, with a process table given as
//! data: every branch of acquire, takeover, release and sweep.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs;
use std::io;

use lockfile_core::format::{self, Record};
use lockfile_core::protocol::{Dir, Error, Kind, Lock, Spare, System};
use lockfile_core::std_dir::StdDir;
use lockfile_core::{Cause, Identity, Liveness, Machine, ProcessInfo, Timestamp, Verdict};

const ME: u32 = 100;
const RUNNER: u32 = 101;

/// Checkpoint names and what to do at the first of them reached.
type Hook = (Vec<String>, Box<dyn FnMut()>);

struct Sys {
    table: RefCell<HashMap<u32, ProcessInfo>>,
    /// The process running the protocol: RUNNER (acting for ME, as the CLI
    /// does), or ME itself (a library handle).
    runner: Cell<Identity>,
    counter: Cell<u64>,
    /// Runs at a named checkpoint: lets a test act in the middle of an operation.
    hook: RefCell<Option<Hook>>,
    /// The holder tag within ME (a plugin of an application), if any.
    holder: Cell<Option<u64>>,
}

impl Sys {
    fn new() -> Self {
        let sys = Sys {
            table: RefCell::new(HashMap::new()),
            runner: Cell::new(Identity {
                pid: RUNNER,
                start_ticks: Some(8),
            }),
            counter: Cell::new(1),
            hook: RefCell::new(None),
            holder: Cell::new(None),
        };
        sys.set(ME, Liveness::Alive, Some(7));
        sys.set(RUNNER, Liveness::Alive, Some(8));
        sys
    }

    fn set(&self, pid: u32, liveness: Liveness, start_ticks: Option<u64>) {
        self.table.borrow_mut().insert(
            pid,
            ProcessInfo {
                liveness,
                start_ticks,
                start_time: None,
            },
        );
    }

    /// The protocol runs in ME itself, as a library handle does.
    fn run_as_owner(&self) {
        self.runner.set(self.current());
    }

    fn off(&self) {
        *self.hook.borrow_mut() = None;
    }

    fn on(&self, checkpoint: &str, f: impl FnMut() + 'static) {
        self.on_any(&[checkpoint], f);
    }

    fn on_any(&self, checkpoints: &[&str], f: impl FnMut() + 'static) {
        let names = checkpoints.iter().map(|c| (*c).to_owned()).collect();
        *self.hook.borrow_mut() = Some((names, Box::new(f)));
    }
}

impl System for Sys {
    fn current(&self) -> Identity {
        Identity {
            pid: ME,
            start_ticks: Some(7),
        }
    }
    fn runner(&self) -> Identity {
        self.runner.get()
    }
    fn machine(&self) -> Machine {
        Machine {
            hostname: Some("here".into()),
            boot_id: Some("boot".into()),
            pid_namespace: Some(1),
        }
    }
    fn query(&self, pid: u32) -> ProcessInfo {
        self.table
            .borrow()
            .get(&pid)
            .copied()
            .unwrap_or(ProcessInfo {
                liveness: Liveness::Dead,
                start_ticks: None,
                start_time: None,
            })
    }
    fn now(&self) -> Timestamp {
        Timestamp::new(1_800_000_000, 0)
    }
    fn random(&self) -> u64 {
        let n = self.counter.get();
        self.counter.set(n + 1);
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn holder(&self) -> Option<u64> {
        self.holder.get()
    }
    fn checkpoint(&self, name: &str) {
        let mut hook = self.hook.borrow_mut();
        if let Some((at, f)) = hook.as_mut() {
            if at.iter().any(|a| a == name) {
                f();
            }
        }
    }
}

/// A real temporary directory, a process table, and a spare for one lock.
struct Fixture {
    tmp: tempfile::TempDir,
    dir: StdDir,
    sys: Sys,
    spare: Spare,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = StdDir::new(tmp.path());
        Fixture {
            tmp,
            dir,
            sys: Sys::new(),
            spare: Spare::default(),
        }
    }

    fn path(&self) -> &std::path::Path {
        self.tmp.path()
    }

    /// `x.lock`, as a one-shot user opens it.
    fn lock(&self) -> Lock<'_, StdDir, Sys> {
        Lock::new(&self.dir, "x.lock", "/d/x.lock", &self.sys)
    }

    /// `x.lock` through a handle that keeps a spare once it cycles.
    fn spared(&self) -> Lock<'_, StdDir, Sys> {
        self.lock().with_spare(&self.spare)
    }
}

fn record(pid: u32, ticks: Option<u64>, nonce: &str) -> String {
    format::serialize(&Record {
        pid,
        timestamp: Timestamp::new(1_799_999_000, 0),
        hostname: Some("here".into()),
        boot_id: Some("boot".into()),
        start_ticks: ticks,
        pid_namespace: Some(1),
        nonce: Some(nonce.into()),
        ..Record::default()
    })
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn owner(dir: &std::path::Path) -> u32 {
    format::parse(&fs::read(dir.join("x.lock")).expect("lock"))
        .expect("parses")
        .pid
}

fn spares(dir: &std::path::Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with(&format!(".x.lock.{RUNNER}.")) && n.ends_with(".tmp"))
        .collect()
}

fn ino(path: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).expect("metadata");
    (m.ino(), m.nlink())
}

/// Cycles a handle twice so that it keeps a spare from its next acquire on.
fn cycling<'a>(lock: &Lock<'a, StdDir, Sys>) {
    lock.acquire(false, false).expect("acquire");
    lock.release(false).expect("release");
}

mod acquire;
mod leases;
mod nfs;
mod release;
mod spare;
mod sweep;
mod tokens;
