#!/usr/bin/env python3
"""Locks in etcd, whole processes, interleaved: `lockfile run etcd://.../k --
true` against etcd's own `etcdctl lock k true`, on a 1-member and a
3-member cluster started here (Debian's etcd-server and etcd-client, on
free 127.0.0.1 ports, removed afterwards); then, with CYCLE (the
`etcd_cycle` example), the in-process cycle of the Rust library against
etcd-client's lock and unlock on the same clusters.

Usage: etcd.py LOCKFILE [ROUNDS] [CYCLE]

Every round runs each case once, in a new random order (see processes.py).
Prints `BENCH <case> <median> ms` and `RATIO <case> <value>`.
"""

import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from processes import spawn


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(n, work):
    """Starts an n-member cluster; returns (processes, endpoints)."""
    ports = [(free_port(), free_port()) for _ in range(n)]
    cluster = ",".join(f"m{i}=http://127.0.0.1:{p}" for i, (_, p) in enumerate(ports))
    members = []
    for i, (client, peer) in enumerate(ports):
        members.append(
            subprocess.Popen(
                [
                    "etcd", "--name", f"m{i}", "--data-dir", os.path.join(work, f"{n}-m{i}"),
                    "--listen-client-urls", f"http://127.0.0.1:{client}",
                    "--advertise-client-urls", f"http://127.0.0.1:{client}",
                    "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                    "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                    "--initial-cluster", cluster,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    endpoints = ",".join(f"127.0.0.1:{c}" for c, _ in ports)
    return members, endpoints


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    lockfile = os.path.abspath(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    etcdctl, true = shutil.which("etcdctl"), shutil.which("true")
    if not shutil.which("etcd") or not etcdctl:
        sys.exit("needs `etcd` and `etcdctl` on PATH (Debian: etcd-server, etcd-client)")
    work = tempfile.mkdtemp(prefix="lockfile-etcd-bench-")
    clusters = {n: start(n, work) for n in (1, 3)}
    env = dict(os.environ, ETCDCTL_API="3")
    try:
        cases = {}
        for n, (_, endpoints) in clusters.items():
            cases[f"lockfile_run_etcd{n}"] = [lockfile, "run", f"etcd://{endpoints}/bench/lf", "--", true]
            cases[f"etcdctl_lock_etcd{n}"] = [etcdctl, "--endpoints", endpoints, "lock", "bench/ctl", true]
        # Until every cluster answers.
        deadline = time.time() + 30
        for name, argv in cases.items():
            while spawn(argv, env)[1] != 0:
                if time.time() > deadline:
                    sys.exit(f"{name}: the cluster did not answer within 30 s")
                time.sleep(0.2)
        times = {name: [] for name in cases}
        for warm in range(10 + rounds):
            order = list(cases)
            random.shuffle(order)
            for name in order:
                ns, code = spawn(cases[name], env)
                if code != 0:
                    sys.exit(f"{name}: `{' '.join(cases[name])}` exited {code}")
                if warm >= 10:
                    times[name].append(ns)
        medians = {name: statistics.median(t) / 1e6 for name, t in times.items()}
        for name, ms in medians.items():
            print(f"BENCH {name}_process {ms:.3f} ms")
        for n in clusters:
            ours, theirs = medians[f"lockfile_run_etcd{n}"], medians[f"etcdctl_lock_etcd{n}"]
            print(f"RATIO lockfile_run_vs_etcdctl_lock_etcd{n} {ours / theirs:.2f}")
        if len(sys.argv) > 3:
            for n, (_, endpoints) in clusters.items():
                out = subprocess.run(
                    [os.path.abspath(sys.argv[3]), endpoints], capture_output=True, text=True, check=True
                ).stdout
                for line in out.splitlines():
                    kind, name, *rest = line.split()
                    print(" ".join([kind, f"{name}_etcd{n}", *rest]))
    finally:
        for members, _ in clusters.values():
            for m in members:
                m.kill()
                m.wait()
        subprocess.run(["rm", "-rf", work], check=False)


if __name__ == "__main__":
    main()
