#!/usr/bin/env python3
"""Two or more `lockfile` binaries side by side, as whole processes:
`status` of a held lock and `run L -- true` of each, and `flock -n F true`,
interleaved round by round in a new random order.

Usage: ab.py LOCKFILE LOCKFILE... ROUNDS

For comparing builds (a change and the commit before it): every binary
plays the same cases, so none is favoured. `processes.py` is not for that:
its NATIVE slot runs once less per round than its LOCKFILE slot, and the
binary in the LOCKFILE slot came out about 8% faster whatever it was. Run
it twice with the binaries in the other order and report both. Copy the
binaries with `cp` first (see bench/README.md: pages as the linker wrote
them start slower). Prints `BINARY:case median ratio-to-flock`.
"""

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile

from processes import spawn


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binaries = [os.path.abspath(b) for b in sys.argv[1:-1]]
    rounds = int(sys.argv[-1])
    flock, true = shutil.which("flock"), shutil.which("true")
    if not flock or not true:
        sys.exit("needs `flock` and `true` on PATH (Debian: util-linux, coreutils)")
    work = tempfile.mkdtemp(prefix="lockfile-ab-")
    holder = subprocess.Popen(["sleep", "3600"])
    cases = {"flock": [flock, "-n", os.path.join(work, "f.lock"), true]}
    try:
        for i, binary in enumerate(binaries):
            held = os.path.join(work, f"s{i}.lock")
            if spawn([binary, "acquire", "--pid", str(holder.pid), held])[1] != 0:
                sys.exit(f"`{binary} acquire` failed")
            cases[f"{i}:status"] = [binary, "status", held]
            cases[f"{i}:run"] = [binary, "run", os.path.join(work, f"r{i}.lock"), "--", true]
        times = {name: [] for name in cases}
        for warm in range(20 + rounds):
            order = list(cases)
            random.shuffle(order)
            for name in order:
                ns, code = spawn(cases[name])
                if code != 0:
                    sys.exit(f"{name}: `{' '.join(cases[name])}` exited {code}")
                if warm >= 20:
                    times[name].append(ns)
    finally:
        holder.kill()
        holder.wait()
        shutil.rmtree(work, ignore_errors=True)
    for i, binary in enumerate(binaries):
        print(f"{i}: {binary}")
    medians = {name: statistics.median(t) / 1e6 for name, t in times.items()}
    for name, ms in medians.items():
        print(f"{name:10s} {ms:.3f} ms  {ms / medians['flock']:.2f}x")


if __name__ == "__main__":
    main()
