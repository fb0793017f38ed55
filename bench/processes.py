#!/usr/bin/env python3
"""Whole-process timings, interleaved: `lockfile acquire/release/status/run`,
the floor and the native limit, against `flock -n F true`.

Usage: processes.py LOCKFILE FLOOR NATIVE [ROUNDS [PREFIX]]

LOCKFILE is the `lockfile` binary; FLOOR loads and instantiates the same
precompiled component without lock work (`bench/floor.rs`); NATIVE is the
same command line over `lockfile-core` natively, without a sandbox
(`bench/native.rs`).

Every round runs each case once, in a new random order, so drift on this
machine (CPU frequency, page cache, a neighbour's load) lands on every case
alike; hyperfine's one-case-after-another blocks drifted by up to 2x here.
Untimed preparation (removing or taking the lock) runs right before its case.
Prints `BENCH <case> <median> ms` and `RATIO <case>_vs_flock <value>`, the
names prefixed with PREFIX when given.
"""

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def spawn(argv, env=None):
    """Runs argv to completion (stdio to /dev/null), in ``env`` (default:
    ours); returns ns and status."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        actions = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
        start = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, env or os.environ, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        elapsed = time.perf_counter_ns() - start
    finally:
        os.close(devnull)
    return elapsed, os.waitstatus_to_exitcode(status)


def interleave(cases, rounds, warm_up=20):
    """Runs every case of ``cases`` (name -> (prepare or None, argv,
    expected exit code)) once per round, in a new random order each round;
    the first ``warm_up`` rounds are not counted. Returns each case's median
    in milliseconds."""
    times = {name: [] for name in cases}
    for round_ in range(warm_up + rounds):
        order = list(cases)
        random.shuffle(order)
        for name in order:
            prep, argv, expected = cases[name]
            if prep:
                prep()
            ns, code = spawn(argv)
            if code != expected:
                sys.exit(f"{name}: `{' '.join(argv)}` exited {code}, not {expected}")
            if round_ >= warm_up:
                times[name].append(ns)
    return {name: statistics.median(t) / 1e6 for name, t in times.items()}


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    lockfile, floor, native = (os.path.abspath(a) for a in sys.argv[1:4])
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 300
    prefix = sys.argv[5] if len(sys.argv) > 5 else ""
    flock, true = shutil.which("flock"), shutil.which("true")
    if not flock or not true:
        sys.exit("needs `flock` and `true` on PATH (Debian: util-linux, coreutils)")

    work = tempfile.mkdtemp(prefix="lockfile-procs-")
    holder = subprocess.Popen(["sleep", "3600"])
    h = str(holder.pid)

    def path(name):
        return os.path.join(work, name)

    def unlink(name):
        def prep():
            try:
                os.unlink(path(name))
            except FileNotFoundError:
                pass

        return prep

    def take(binary, name):
        def prep():
            code = spawn([binary, "acquire", "--pid", h, path(name)])[1]
            if code != 0:
                sys.exit(f"preparing {name}: `{binary} acquire` exited {code}")

        return prep

    # The status cases look at a lock held by the holder.
    for binary, name in ((lockfile, "s.lock"), (native, "ns.lock")):
        take(binary, name)()

    # name -> (prepare, argv, expected exit code)
    cases = {
        "true": (None, [true], 0),
        "flock": (None, [flock, "-n", path("f.lock"), true], 0),
        "floor": (None, [floor, path("s.lock")], 0),
        "lockfile_acquire": (unlink("a.lock"), [lockfile, "acquire", "--pid", h, path("a.lock")], 0),
        "lockfile_release": (take(lockfile, "r.lock"), [lockfile, "release", "--pid", h, path("r.lock")], 0),
        "lockfile_status": (None, [lockfile, "status", path("s.lock")], 0),
        "lockfile_run": (None, [lockfile, "run", path("run.lock"), "--", true], 0),
        "native_acquire": (unlink("na.lock"), [native, "acquire", "--pid", h, path("na.lock")], 0),
        "native_release": (take(native, "nr.lock"), [native, "release", "--pid", h, path("nr.lock")], 0),
        "native_status": (None, [native, "status", path("ns.lock")], 0),
    }
    try:
        medians = interleave(cases, rounds)
    finally:
        holder.kill()
        holder.wait()
        subprocess.run(["rm", "-rf", work], check=False)

    for name, ms in medians.items():
        print(f"BENCH {prefix}{name}_process {ms:.3f} ms")
    for name, ms in medians.items():
        if name != "flock":
            print(f"RATIO {prefix}{name}_process_vs_flock {ms / medians['flock']:.2f}")


if __name__ == "__main__":
    main()
