//! The rig for tests across hosts: an NFS server and two simulated hosts
//! sharing its export, on one machine (the tests are in `nfs.rs`).
//!
//! # How the rig works
//!
//! [`Rig::start`] builds, on this one machine, a server and (by default) two
//! simulated hosts, `alpha` and `beta`:
//!
//! - **The server** is PID 1 of a new network, mount and PID namespace
//!   (`tests/nfs/server.sh`). Its network namespace has only `lo`, so every
//!   port in it is reachable from 127.0.0.1 and nowhere else, and rigs running
//!   at the same time (test threads, or two `cargo test`s) never share a port:
//!   no lock between rigs is needed. A private tmpfs on `/run` keeps rpcbind's
//!   and ganesha's lock, socket and pid files apart in the same way. In it run
//!   rpcbind (handed sockets on `/run/rpcbind.sock` and 127.0.0.1:111 by
//!   `systemd-socket-activate`, see the quirks below) and nfs-ganesha, which
//!   serves the rig's `export/` directory over NFSv3/TCP with the VFS backend,
//!   `No_Root_Squash`, read-write (`tests/nfs/ganesha.conf.in`).
//! - **Each host** is PID 1 of a new UTS, mount and PID namespace (with its own
//!   `/proc`) inside the server's network namespace (`tests/nfs/host.sh`). It
//!   sets its hostname, bind-mounts its own boot id file over
//!   `/proc/sys/kernel/random/boot_id`, and mounts the export with fuse-nfs (a
//!   userspace NFS client: there is no kernel NFS here) at its own mount
//!   point, `hosts/NAME/mnt` in the rig directory, with `-d -E 0 -T 0 -q`
//!   (direct I/O, no entry or attribute caching, real inode numbers). The
//!   mount exists only in that host's mount namespace.
//! - **Commands run in a host** through `nsenter` into its PID 1's UTS, PID,
//!   mount and network namespaces ([`Host::command`], [`Host::run`],
//!   [`Host::spawn`]), with the host's mount point as working directory. The
//!   rest of the filesystem is the machine's, so host binaries such as
//!   `lockfile_bin()` run unchanged. Each runs as the child of a `sh` in the
//!   host, so that its parent (`lockfile`'s default owner) is a process of
//!   that host rather than nsenter, which the host sees as pid 0.
//! - **A crash** ([`Host::crash`]) is `kill -9` of the host's PID 1: the kernel
//!   kills every process in its PID namespace, fuse-nfs included, and the
//!   mount goes with the namespace. **A reboot as lock files see it**
//!   ([`Host::reboot_boot_id`]) keeps the PID namespace and hostname and
//!   bind-mounts a fresh boot id.
//! - **Teardown** is by `Drop`, whatever happens: the hosts' PID 1s, then the
//!   server's, are killed (which ends fuse-nfs, ganesha and rpcbind and
//!   unmounts everything), then the rig directory is removed. Every namespace
//!   is made by `unshare --kill-child` with a parent-death signal, so even a
//!   test binary that dies without unwinding leaves nothing running. Keep a
//!   `Rig` on the thread that started it: the parent-death signal follows that
//!   thread.
//!
//! It starts in well under a second once fuse-nfs is built.
//!
//! # What it needs
//!
//! Root, `/dev/fuse`, and the Debian packages `nfs-ganesha nfs-ganesha-vfs
//! rpcbind systemd iproute2` (plus `util-linux`, `mount`, `bash`, `hostname`,
//! always present). fuse-nfs is built once from its source tarball
//! (`$FUSE_NFS_SRC`, default `../shared/tools/fuse-nfs-src.tar.gz` beside the
//! project, else `/work/shared/tools/fuse-nfs-src.tar.gz`) into
//! `target/nfs-tools/fuse-nfs`, which needs `libnfs-dev libfuse-dev autoconf
//! automake libtool pkg-config make gcc`; `$FUSE_NFS` names a prebuilt binary
//! instead. When anything is missing the rig fails the test (it never skips)
//! and says what to install.
//!
//! # Quirks met on loopback
//!
//! - `rpcbind -h 127.0.0.1` aborts with a double free, and `-h` never limits
//!   its TCP listener: hence socket activation.
//! - ganesha's `Bind_Addr = 127.0.0.1` fails in a namespace with only `lo`
//!   (its resolver wants a configured IPv4 address); the namespace confines it
//!   instead.
//! - rpcbind must answer before ganesha starts: when ganesha's own
//!   registration is what starts the socket-activated rpcbind, about one start
//!   in 13 failed with "Cannot register NFS V3 on TCP".
//! - NFSv4 through fuse-nfs showed files owned by nobody and failed writes:
//!   the server speaks NFSv3 only, and NFSv3 mounts by the export's real path.
//! - `nsenter --wd=DIR` opens DIR before it enters the mount namespace, so the
//!   rig names the mount point through `/proc/PID1/root`.
//! - ganesha's VFS backend exports by file handle: the rig directory (under
//!   `$TMPDIR`) must be on a filesystem that has them (ext4, xfs, btrfs,
//!   tmpfs), not overlayfs. The export lives on that real filesystem rather
//!   than a tmpfs because disk filesystems reuse inode numbers, as real
//!   servers do.
//! - ganesha logs CRIT lines about D-Bus and Kerberos at startup: harmless.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::common::*;

/// A running rig: an NFS server and its hosts, all torn down on drop.
#[derive(Debug)]
pub struct Rig {
    // Dropped in this order: hosts (they use the server), server, directory.
    hosts: Vec<Host>,
    server: Namespace,
    dir: tempfile::TempDir,
    export: PathBuf,
    startup: Duration,
    /// fuse-nfs options for the hosts' mounts.
    mount_options: &'static str,
    /// Namespaces are being made (see `common::NAMESPACES`).
    _namespaces: std::sync::RwLockReadGuard<'static, ()>,
}

/// No client caching: every call reaches the server.
const UNCACHED: &str = "-d -E 0 -T 0 -q";
/// fuse-nfs's (and FUSE's) default entry and attribute caching; file data
/// still uncached (`-d`), since no lock can make a stale page cache
/// consistent.
const CACHED: &str = "-d -q";

impl Rig {
    /// A server and two hosts, `alpha` and `beta`. Panics (the test fails,
    /// never skips) when the machine lacks something the rig needs, saying
    /// what and how to install it.
    #[track_caller]
    pub fn start() -> Rig {
        Rig::with_hosts(&["alpha", "beta"])
    }

    /// As [`Rig::start`], with the clients' entry and attribute caches on
    /// (fuse-nfs's defaults): lookups and attributes, link counts included,
    /// may be stale.
    #[track_caller]
    pub fn start_caching() -> Rig {
        Rig::with_options(&["alpha", "beta"], CACHED)
    }

    /// A server and one host per name.
    #[track_caller]
    pub fn with_hosts(names: &[&str]) -> Rig {
        Rig::with_options(names, UNCACHED)
    }

    #[track_caller]
    fn with_options(names: &[&str], mount_options: &'static str) -> Rig {
        let namespaces = creating_namespaces();
        let tools = Tools::get();
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("lockfile-nfs-")
            .tempdir()
            .expect("rig dir");
        let export = dir.path().join("export");
        fs::create_dir(&export).expect("export dir");
        // OVERLAYFS_SUPER_MAGIC
        let on_overlayfs = rustix::fs::statfs(&export).is_ok_and(|s| s.f_type == 0x794c_7630);
        assert!(
            !on_overlayfs,
            "the NFS rig cannot export `{}`: it is on overlayfs, which has no file handles \
             for ganesha; set TMPDIR to a directory on ext4, xfs, btrfs or tmpfs",
            export.display()
        );
        let config = dir.path().join("ganesha.conf");
        let template = fs::read_to_string(rig_file("ganesha.conf.in")).expect("ganesha template");
        fs::write(
            &config,
            template
                .replace("@EXPORT@", s(&export))
                .replace("@PLUGINS_DIR@", s(&tools.ganesha_plugins)),
        )
        .expect("ganesha config");
        let log = dir.path().join("ganesha.log");

        let mut cmd = Command::new(&tools.unshare);
        cmd.args(["--net", "--mount", "--pid", "--fork", "--mount-proc"])
            .arg("--kill-child=KILL")
            .arg("sh")
            .arg(rig_file("server.sh"))
            .args([&config, &log])
            .env("PATH", SYSTEM_PATH)
            .env("RIG_SOCKET_ACTIVATE", &tools.socket_activate)
            .env("RIG_RPCBIND", &tools.rpcbind)
            .env("RIG_GANESHA", &tools.ganesha)
            .env("RIG_RPCINFO", &tools.rpcinfo);
        let server = Namespace::start("server", cmd, &dir.path().join("server"), &[&log]);

        let mut rig = Rig {
            hosts: Vec::new(),
            server,
            dir,
            export,
            startup: Duration::ZERO,
            mount_options,
            _namespaces: namespaces,
        };
        for name in names {
            rig.add_host(name);
        }
        rig.startup = started.elapsed();
        rig
    }

    /// Starts one more host, `name` (its hostname), with a fresh boot id and
    /// its own mount of the export.
    #[track_caller]
    pub fn add_host(&mut self, name: &str) -> &Host {
        assert!(
            self.hosts.iter().all(|h| h.name != name),
            "host `{name}` exists"
        );
        let tools = Tools::get();
        let dir = self.dir.path().join("hosts").join(name);
        let mount = dir.join("mnt");
        fs::create_dir_all(&mount).expect("mount point");
        let boot_id_file = dir.join("boot_id");
        let boot_id = fresh_uuid();
        fs::write(&boot_id_file, format!("{boot_id}\n")).expect("boot id");
        let url = format!("nfs://127.0.0.1{}", self.export.display());

        let mut cmd = Command::new(&tools.nsenter);
        cmd.arg(format!("--net=/proc/{}/ns/net", self.server.pid1))
            .arg("--")
            .arg(&tools.unshare)
            .args(["--uts", "--pid", "--mount", "--fork", "--mount-proc"])
            .arg("--kill-child=KILL")
            .arg(&tools.bash)
            .arg(rig_file("host.sh"))
            .args([name, s(&boot_id_file), &url, s(&mount)])
            .env("PATH", SYSTEM_PATH)
            .env("RIG_FUSE_NFS", &tools.fuse_nfs)
            .env("RIG_FUSE_NFS_OPTS", self.mount_options);
        let ns = Namespace::start(
            name,
            cmd,
            &dir.join("pid1"),
            &[&self.dir.path().join("ganesha.log")],
        );
        self.hosts.push(Host {
            name: name.to_owned(),
            dir,
            mount,
            boot_id: Mutex::new(boot_id),
            ns,
        });
        self.hosts.last().expect("just pushed")
    }

    /// The host named `name`.
    #[track_caller]
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host `{name}` in the rig"))
    }

    /// The exported directory as the server sees it (on this machine's
    /// filesystem, outside any host): for setting up and checking files
    /// without going through NFS.
    pub fn export_path(&self) -> &Path {
        &self.export
    }

    /// ganesha's log, for diagnosing a failure.
    #[allow(dead_code)]
    pub fn server_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("ganesha.log")).unwrap_or_default()
    }

    /// How long [`Rig::start`] took.
    pub fn startup(&self) -> Duration {
        self.startup
    }
}

/// A simulated host: its own hostname, boot id, PID namespace and NFS mount.
#[derive(Debug)]
pub struct Host {
    name: String,
    dir: PathBuf,
    mount: PathBuf,
    boot_id: Mutex<String>,
    ns: Namespace,
}

impl Host {
    /// The hostname.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where this host mounts the export (a path that means the export only
    /// inside this host).
    pub fn mount_path(&self) -> &Path {
        &self.mount
    }

    /// `name` in this host's mount of the export.
    pub fn path(&self, name: &str) -> PathBuf {
        self.mount.join(name)
    }

    /// The boot id this host reports.
    pub fn boot_id(&self) -> String {
        self.boot_id.lock().expect("boot id").clone()
    }

    /// `program` to run in this host (its namespaces, the mount point as
    /// working directory, stdin null); add arguments and run it as usual.
    /// It runs as the child of a shell in the host, as on a real machine, so
    /// a signal that kills it shows as exit status 128+N.
    #[track_caller]
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        assert!(!self.is_crashed(), "host `{}` has crashed", self.name);
        let mut cmd = Command::new(&Tools::get().nsenter);
        cmd.arg(format!("--target={}", self.ns.pid1))
            .args(["--uts", "--pid", "--mount", "--net"])
            // nsenter opens the --wd directory before it enters the mount
            // namespace: name it through PID 1's root, which is in there.
            .arg(format!(
                "--wd=/proc/{}/root{}",
                self.ns.pid1,
                self.mount.display()
            ))
            .arg("--")
            // Under a shell of the host: a process whose parent is nsenter,
            // outside the PID namespace, sees its parent as pid 0, and
            // `lockfile` takes its parent as the default owner. The `exit`
            // keeps the shell from exec'ing the program in its place.
            .args(["sh", "-c", r#""$@"; exit $?"#, "sh"])
            .arg(program)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `lockfile ARGS` in this host.
    pub fn lockfile(&self, args: &[&str]) -> Output {
        self.command(lockfile_bin())
            .args(args)
            .output()
            .expect("run lockfile in the host")
    }

    /// Runs the shell script `script` in this host.
    pub fn run(&self, script: &str) -> Output {
        self.command("sh")
            .args(["-c", script])
            .output()
            .expect("run in the host")
    }

    /// Runs `script` in this host, which must succeed; returns its stdout.
    #[track_caller]
    pub fn run_ok(&self, script: &str) -> String {
        let out = self.run(script);
        assert!(
            out.status.success(),
            "`{script}` on `{}`: {}\nstdout: {}\nstderr: {}",
            self.name,
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Starts the shell script `script` in this host and returns once it
    /// runs, with its pid as this host sees it. Killed when dropped.
    #[track_caller]
    pub fn spawn(&self, script: &str) -> HostChild {
        let mut child = self
            .command("sh")
            .args(["-c", r#"echo $$; exec sh -c "$1""#, "sh", script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn in the host");
        // Byte by byte, so that the rest of stdout stays in the pipe for the
        // caller.
        let mut line = Vec::new();
        let out = child.stdout.as_mut().expect("piped stdout");
        let mut byte = [0];
        while out.read(&mut byte).expect("read pid") == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        let pid = String::from_utf8_lossy(&line)
            .parse()
            .unwrap_or_else(|_| panic!("`{script}` on `{}` did not start", self.name));
        // nsenter forks the process into the PID namespace: its only child.
        let outer = children(child.id()).first().copied();
        HostChild { child, pid, outer }
    }

    /// Crashes the host: `kill -9` of its PID 1, which kills every process
    /// in it (fuse-nfs too) and drops its mount. Later commands panic.
    pub fn crash(&self) {
        self.ns.kill();
    }

    /// Whether [`Host::crash`] was called.
    pub fn is_crashed(&self) -> bool {
        self.ns.is_dead()
    }

    /// Gives the host a new boot id (as after a reboot), bind-mounted over
    /// the previous one; the processes, PID namespace and hostname stay.
    /// Returns the new id.
    #[track_caller]
    pub fn reboot_boot_id(&self) -> String {
        let mut current = self.boot_id.lock().expect("boot id");
        let id = fresh_uuid();
        let file = self.dir.join(format!("boot_id.{id}"));
        fs::write(&file, format!("{id}\n")).expect("boot id");
        // Stacked on the previous bind mount: readers see the old id or the
        // new one, never the machine's.
        self.run_ok(&format!(
            "mount --bind '{}' /proc/sys/kernel/random/boot_id",
            file.display()
        ));
        current.clone_from(&id);
        id
    }
}

/// A process started in a host by [`Host::spawn`], killed when dropped.
#[derive(Debug)]
pub struct HostChild {
    child: Child,
    pid: u32,
    outer: Option<u32>,
}

impl HostChild {
    /// Its pid in its host.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for HostChild {
    fn drop(&mut self) {
        // Killing nsenter alone would orphan the process in the host.
        if let (Ok(None), Some(outer)) = (self.child.try_wait(), self.outer) {
            kill9(outer);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `unshare --fork` whose child is PID 1 of new namespaces.
#[derive(Debug)]
struct Namespace {
    unshare: Mutex<Child>,
    /// The PID 1's pid on this machine.
    pid1: u32,
}

impl Namespace {
    /// Runs `cmd` (an `unshare --fork`, perhaps behind `nsenter`) and waits
    /// until its PID 1 prints `ready`. `out` is the prefix of its
    /// `.out`/`.err` files; `logs` are shown when it fails.
    #[track_caller]
    fn start(what: &str, mut cmd: Command, out: &Path, logs: &[&Path]) -> Namespace {
        let stdout = out.with_extension("out");
        let stderr = out.with_extension("err");
        cmd.stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("stdout file"))
            .stderr(fs::File::create(&stderr).expect("stderr file"));
        // SAFETY: prctl is async-signal-safe. If this thread ends without
        // dropping the rig (the test binary aborts), unshare is killed, and
        // `--kill-child` takes the namespace's PID 1 with it.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))?;
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let failure = loop {
            if fs::read_to_string(&stdout).is_ok_and(|s| s.lines().any(|l| l == "ready")) {
                break None;
            }
            if let Ok(Some(status)) = child.try_wait() {
                break Some(format!("exited with {status}"));
            }
            if Instant::now() > deadline {
                break Some(format!("not ready after {STARTUP_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if let Some(failure) = failure {
            let _ = child.kill();
            let _ = child.wait();
            let mut text = format!(
                "the NFS rig's {what} did not start: {failure}\nstderr:\n{}",
                fs::read_to_string(&stderr).unwrap_or_default()
            );
            for log in logs {
                let log_text = fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = log_text.lines().rev().take(20).collect();
                text += &format!("\n{} (last lines):\n", log.display());
                for line in tail.iter().rev() {
                    text += line;
                    text.push('\n');
                }
            }
            panic!("{text}");
        }
        let pid1 = children(child.id())
            .first()
            .copied()
            .unwrap_or_else(|| panic!("the {what}'s PID 1 is not unshare's child"));
        Namespace {
            unshare: Mutex::new(child),
            pid1,
        }
    }

    fn kill(&self) {
        let mut unshare = self.unshare.lock().expect("namespace");
        if let Ok(None) = unshare.try_wait() {
            kill9(self.pid1);
            let _ = unshare.kill();
        }
        let _ = unshare.wait();
    }

    fn is_dead(&self) -> bool {
        !matches!(self.unshare.lock().expect("namespace").try_wait(), Ok(None))
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        self.kill();
    }
}

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// For the rig's own scripts: the tools live in sbin.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn rig_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/nfs")
        .join(name)
}

fn kill9(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// The children of `pid` (of its main thread, which is the one that forks).
fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn fresh_uuid() -> String {
    fs::read_to_string("/proc/sys/kernel/random/uuid")
        .expect("a fresh uuid")
        .trim()
        .to_owned()
}

/// The absolute paths of everything the rig runs, found (and fuse-nfs built)
/// once per test binary.
#[derive(Debug)]
struct Tools {
    unshare: PathBuf,
    nsenter: PathBuf,
    bash: PathBuf,
    socket_activate: PathBuf,
    rpcbind: PathBuf,
    rpcinfo: PathBuf,
    ganesha: PathBuf,
    ganesha_plugins: PathBuf,
    fuse_nfs: PathBuf,
}

/// Something the rig needs and lacks, and the Debian packages that provide
/// it (none when no package does).
type Missing = (String, Vec<&'static str>);

impl Tools {
    #[track_caller]
    fn get() -> &'static Tools {
        static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
        match TOOLS.get_or_init(Tools::find) {
            Ok(tools) => tools,
            Err(why) => panic!("{why}"),
        }
    }

    fn find() -> Result<Tools, String> {
        let mut missing: Vec<Missing> = Vec::new();
        if !is_root() {
            missing.push((
                "root: run the tests as root (the rig makes namespaces and mounts)".into(),
                vec![],
            ));
        }
        if !Path::new("/dev/fuse").exists() {
            missing.push((
                "/dev/fuse: load the fuse module (`modprobe fuse`), or give the container \
                 the device (`--device /dev/fuse`)"
                    .into(),
                vec![],
            ));
        }
        let mut tool = |name: &str, package: &'static str| {
            which(name).unwrap_or_else(|| {
                missing.push((
                    format!("`{name}` (Debian package `{package}`)"),
                    vec![package],
                ));
                PathBuf::new()
            })
        };
        let unshare = tool("unshare", "util-linux");
        let nsenter = tool("nsenter", "util-linux");
        let bash = tool("bash", "bash");
        let _ = tool("mount", "mount");
        let _ = tool("hostname", "hostname");
        let _ = tool("ip", "iproute2");
        let socket_activate = tool("systemd-socket-activate", "systemd");
        let rpcbind = tool("rpcbind", "rpcbind");
        let rpcinfo = tool("rpcinfo", "rpcbind");
        let ganesha = tool("ganesha.nfsd", "nfs-ganesha");
        let ganesha_plugins = ganesha_plugins_dir().unwrap_or_else(|| {
            missing.push((
                "ganesha's VFS backend, `/usr/lib/*/ganesha/libfsalvfs.so` (Debian package \
                 `nfs-ganesha-vfs`)"
                    .into(),
                vec!["nfs-ganesha-vfs"],
            ));
            PathBuf::new()
        });
        let fuse_nfs = fuse_nfs()
            .map_err(|why| missing.push(why))
            .unwrap_or_default();
        if !missing.is_empty() {
            let what: Vec<&str> = missing.iter().map(|(what, _)| what.as_str()).collect();
            let mut packages: Vec<&str> = Vec::new();
            for package in missing.iter().flat_map(|(_, p)| p) {
                if !packages.contains(package) {
                    packages.push(package);
                }
            }
            let install = if packages.is_empty() {
                String::new()
            } else {
                format!(
                    "\ninstall them with `apt-get install -y --no-install-recommends {}`",
                    packages.join(" ")
                )
            };
            return Err(format!(
                "the NFS rig cannot start; missing:\n  - {}{install}\n(the rig and what it \
                 needs are described at the top of tests/harness/nfs_rig.rs)",
                what.join("\n  - ")
            ));
        }
        Ok(Tools {
            unshare,
            nsenter,
            bash,
            socket_activate,
            rpcbind,
            rpcinfo,
            ganesha,
            ganesha_plugins,
            fuse_nfs,
        })
    }
}

/// `name` on PATH or in the sbin directories (tests may run with a user's
/// PATH).
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(SYSTEM_PATH.split(':'))
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn ganesha_plugins_dir() -> Option<PathBuf> {
    let lib = Path::new("/usr/lib");
    let mut dirs = vec![lib.join("ganesha")];
    for entry in fs::read_dir(lib).ok()?.flatten() {
        dirs.push(entry.path().join("ganesha"));
    }
    dirs.into_iter().find(|d| d.join("libfsalvfs.so").is_file())
}

/// The fuse-nfs binary: `$FUSE_NFS`, else `target/nfs-tools/fuse-nfs`,
/// built there from `$FUSE_NFS_SRC` the first time (under a file lock, as
/// several test binaries may want it at once).
fn fuse_nfs() -> Result<PathBuf, Missing> {
    if let Some(bin) = std::env::var_os("FUSE_NFS") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(alone(format!(
                "fuse-nfs: `$FUSE_NFS` (`{}`) is not a file",
                bin.display()
            )))
        };
    }
    let exe = std::env::current_exe().map_err(|e| alone(format!("test binary path: {e}")))?;
    // target/debug/deps/harness-HASH
    let target = exe
        .ancestors()
        .nth(3)
        .ok_or_else(|| alone("no target directory above the test binary".into()))?;
    let tools = target.join("nfs-tools");
    let bin = tools.join("fuse-nfs");
    if bin.is_file() {
        return Ok(bin);
    }
    fs::create_dir_all(&tools).map_err(|e| alone(format!("create `{}`: {e}", tools.display())))?;
    let lock = fs::File::create(tools.join(".build.lock")).map_err(|e| alone(e.to_string()))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| alone(format!("lock `{}`: {e}", tools.display())))?;
    if bin.is_file() {
        return Ok(bin);
    }

    // `../shared/tools` beside the project (where this machine's image keeps
    // it), else the image's absolute path.
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/fuse-nfs-src.tar.gz");
    let src = std::env::var_os("FUSE_NFS_SRC")
        .map(PathBuf::from)
        .or_else(|| beside.is_file().then_some(beside))
        .unwrap_or_else(|| "/work/shared/tools/fuse-nfs-src.tar.gz".into());
    if !src.is_file() {
        return Err(alone(format!(
            "the fuse-nfs source tarball `{}` (github.com/sahlberg/fuse-nfs; set \
             `$FUSE_NFS_SRC` to it, or `$FUSE_NFS` to a built fuse-nfs)",
            src.display()
        )));
    }
    let mut missing: Vec<String> = [
        "autoconf",
        "automake",
        "libtoolize",
        "pkg-config",
        "make",
        "gcc",
    ]
    .iter()
    .filter(|t| which(t).is_none())
    .map(|t| format!("`{t}`"))
    .collect();
    for lib in ["libnfs", "fuse"] {
        let found = Command::new("pkg-config")
            .args(["--exists", lib])
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            missing.push(format!(
                "pkg-config's `{lib}` (`lib{}-dev`)",
                lib.trim_start_matches("lib")
            ));
        }
    }
    if !missing.is_empty() {
        return Err((
            format!(
                "what builds fuse-nfs (once): {} (Debian packages `{}`)",
                missing.join(", "),
                FUSE_NFS_BUILD_PACKAGES.join(" ")
            ),
            FUSE_NFS_BUILD_PACKAGES.to_vec(),
        ));
    }

    let build = tools.join(format!("build-{}", std::process::id()));
    let _ = fs::remove_dir_all(&build);
    fs::create_dir_all(&build).map_err(|e| alone(e.to_string()))?;
    let log = tools.join("build.log");
    let log_file = fs::File::create(&log).map_err(|e| alone(e.to_string()))?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(r#"set -ex; tar xzf "$1"; cd fuse-nfs; ./setup.sh; ./configure; make"#)
        .args(["sh", s(&src)])
        .current_dir(&build)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| alone(e.to_string()))?)
        .stderr(log_file)
        .status()
        .map_err(|e| alone(format!("run the fuse-nfs build: {e}")))?;
    let built = build.join("fuse-nfs/fuse/fuse-nfs");
    if !status.success() || !built.is_file() {
        let text = fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(alone(format!(
            "a fuse-nfs build that works: building `{}` failed ({status}, log in `{}`):\n{}",
            src.display(),
            log.display(),
            tail.join("\n")
        )));
    }
    let tmp = tools.join("fuse-nfs.tmp");
    fs::copy(&built, &tmp).map_err(|e| alone(e.to_string()))?;
    fs::rename(&tmp, &bin).map_err(|e| alone(e.to_string()))?;
    let _ = fs::remove_dir_all(&build);
    Ok(bin)
}

/// Debian packages that build fuse-nfs (which links libnfs and libfuse 2).
const FUSE_NFS_BUILD_PACKAGES: [&str; 8] = [
    "libnfs-dev",
    "libfuse-dev",
    "autoconf",
    "automake",
    "libtool",
    "pkg-config",
    "make",
    "gcc",
];

/// A lack that no package fills.
fn alone(what: String) -> Missing {
    (what, vec![])
}
