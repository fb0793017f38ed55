//! [`System`] over the host's `process` interface and WASI clocks and random.

use std::cell::{Cell, OnceCell};

use lockfile_core::{Identity, Liveness, Machine, ProcessInfo, System, Timestamp};

use crate::bindings::labm8::lockfile::process as host;

/// The host's view of processes. Who we are and which machine we are on are
/// cached for the life of a lock handle: the host fixes both when it opens
/// the lock, and asking again costs a call across the sandbox each time.
#[derive(Default)]
pub struct HostSystem {
    current: OnceCell<Identity>,
    runner: OnceCell<Identity>,
    companion: OnceCell<Option<Identity>>,
    holder: OnceCell<Option<u64>>,
    machine: OnceCell<Machine>,
    /// The state of [`System::random`]'s generator: seeded from the host's
    /// secure random source on first use.
    random: Cell<Option<u64>>,
}

/// The increment of SplitMix64's counter (2^64 / golden ratio, odd).
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijection on `u64`, so distinct counter
/// values give distinct outputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn identity(id: host::Identity) -> Identity {
    Identity {
        pid: id.pid,
        start_ticks: id.start_ticks,
    }
}

impl System for HostSystem {
    fn current(&self) -> Identity {
        *self.current.get_or_init(|| identity(host::current()))
    }

    fn runner(&self) -> Identity {
        *self.runner.get_or_init(|| identity(host::runner()))
    }

    fn companion(&self) -> Option<Identity> {
        *self
            .companion
            .get_or_init(|| host::companion().map(identity))
    }

    fn holder(&self) -> Option<u64> {
        *self.holder.get_or_init(host::holder)
    }

    fn pid_namespace_alive(&self, inode: u64) -> Option<bool> {
        host::pid_namespace_alive(inode)
    }

    fn machine(&self) -> Machine {
        self.machine
            .get_or_init(|| {
                let m = host::machine();
                Machine {
                    hostname: m.hostname,
                    boot_id: m.boot_id,
                    pid_namespace: m.pid_namespace,
                }
            })
            .clone()
    }

    fn query(&self, pid: u32) -> ProcessInfo {
        let info = host::query(pid);
        ProcessInfo {
            liveness: match info.liveness {
                host::Liveness::Alive => Liveness::Alive,
                host::Liveness::Dead => Liveness::Dead,
                host::Liveness::Unknown => Liveness::Unknown,
            },
            start_ticks: info.start_ticks,
            start_time: info
                .start_time
                .map(|t| Timestamp::new(t.seconds, t.nanoseconds)),
        }
    }

    fn now(&self) -> Timestamp {
        let now = wasi::clocks::wall_clock::now();
        Timestamp::new(now.seconds, now.nanoseconds)
    }

    /// Unique names and nonces, not secrets: SplitMix64 over a counter
    /// seeded once per handle from the host's secure random source. Its
    /// outputs never repeat within a handle (2^64 of them), and handles'
    /// seeds are independent. Asking the host each time cost a call across
    /// the sandbox on every acquire.
    fn random(&self) -> u64 {
        let state = self
            .random
            .get()
            .unwrap_or_else(wasi::random::random::get_random_u64)
            .wrapping_add(GOLDEN_GAMMA);
        self.random.set(Some(state));
        mix(state)
    }

    fn checkpoint(&self, name: &str) {
        lockfile_core::testing::pause_at(name, self.current().pid);
    }
}
