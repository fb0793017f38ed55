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
import shutil
import subprocess
import sys
import tempfile

from processes import interleave, spawn


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
    cases = {"flock": (None, [flock, "-n", os.path.join(work, "f.lock"), true], 0)}
    try:
        for i, binary in enumerate(binaries):
            held = os.path.join(work, f"s{i}.lock")
            if spawn([binary, "acquire", "--pid", str(holder.pid), held])[1] != 0:
                sys.exit(f"`{binary} acquire` failed")
            cases[f"{i}:status"] = (None, [binary, "status", held], 0)
            run = [binary, "run", os.path.join(work, f"r{i}.lock"), "--", true]
            cases[f"{i}:run"] = (None, run, 0)
        medians = interleave(cases, rounds)
    finally:
        holder.kill()
        holder.wait()
        shutil.rmtree(work, ignore_errors=True)
    for i, binary in enumerate(binaries):
        print(f"{i}: {binary}")
    for name, ms in medians.items():
        print(f"{name:10s} {ms:.3f} ms  {ms / medians['flock']:.2f}x")


if __name__ == "__main__":
    main()
