"""The Python lock files people use, against this project's package, in one run.

Prints `BENCH <name> <median> <unit>` lines:

- warm acquire+release cycles in-process: labm8 0.1.2's LockFile, filelock's
  FileLock and SoftFileLock, and labm8_lockfile.LockFile, interleaved: every
  round runs a batch of each in a new random order, so drift on the machine
  falls on all alike; the median is over rounds;
- whole processes, interleaved the same way: `python -c pass` (the
  interpreter alone), importing each package, and importing it and doing one
  cycle (`*_process`); `import_labm8_lockfile` less `python_pass` is what
  the import costs.

Usage: peers.py DIR [ROUNDS] (DIR: a scratch directory on the file system to
measure).
"""
import random
import statistics
import subprocess
import sys
import time

BATCH = 20

#: labm8 0.1.2 predates Python 3.10, which moved these ABCs out of
#: `collections`; put them back so it imports (here and in its processes).
LABM8_SHIM = (
    "import collections, collections.abc\n"
    "for _n in ('Mapping', 'MutableMapping', 'Sequence', 'Iterable', 'Callable'):\n"
    "    setattr(collections, _n, getattr(collections.abc, _n))\n"
)
exec(LABM8_SHIM)


def cycles(d):
    """name -> a function doing one warm cycle."""
    found = {}
    from labm8_lockfile import LockFile

    ours = LockFile(f"{d}/labm8_lockfile.lock")

    def ours_cycle():
        ours.acquire()
        ours.release()

    found["labm8_lockfile"] = ours_cycle
    try:
        from labm8 import lockfile

        theirs = lockfile.LockFile(f"{d}/labm8.lock")

        def labm8_cycle():
            theirs.acquire()
            theirs.release()

        found["labm8"] = labm8_cycle
    except Exception as e:  # labm8 is old; say why it is missing
        print(f"# labm8 unavailable: {e!r}")
    import filelock

    for name, cls in (("filelock", filelock.FileLock), ("softfilelock", filelock.SoftFileLock)):
        lock = cls(f"{d}/{name}.lock")

        def cycle(lock=lock):
            lock.acquire()
            lock.release()

        found[name] = cycle
    return found


def interleaved(cases, rounds, one):
    """name -> median over `rounds` of `one(case)` (seconds), run in a new
    random order every round."""
    samples = {name: [] for name in cases}
    names = list(cases)
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            samples[name].append(one(cases[name]))
    return {name: statistics.median(s) for name, s in samples.items()}


def batch(cycle):
    t = time.perf_counter_ns()
    for _ in range(BATCH):
        cycle()
    return (time.perf_counter_ns() - t) / BATCH / 1e9


def process(argv):
    t = time.perf_counter_ns()
    subprocess.run(argv, check=True)
    return (time.perf_counter_ns() - t) / 1e9


def main(d, rounds):
    found = cycles(d)
    for cycle in found.values():  # warm up
        for _ in range(200):
            cycle()
    for name, median in interleaved(found, rounds, batch).items():
        print(f"BENCH {name}_cycle {median * 1e6:.1f} us")

    py = sys.executable
    one = "L({!r}).acquire(); L({!r}).release()"
    procs = {
        "python_pass": [py, "-c", "pass"],
        "import_labm8_lockfile": [py, "-c", "import labm8_lockfile"],
        "labm8_lockfile_process": [
            py,
            "-c",
            "from labm8_lockfile import LockFile as L\n"
            + one.format(f"{d}/p1.lock", f"{d}/p1.lock"),
        ],
        "import_filelock": [py, "-c", "import filelock"],
        "filelock_process": [
            py,
            "-c",
            "from filelock import FileLock as L\n"
            + "l = L({!r}); l.acquire(); l.release()".format(f"{d}/p3.lock"),
        ],
    }
    if "labm8" in found:
        procs["import_labm8"] = [py, "-c", LABM8_SHIM + "from labm8 import lockfile"]
        procs["labm8_process"] = [
            py,
            "-c",
            LABM8_SHIM
            + "from labm8.lockfile import LockFile as L\n"
            + one.format(f"{d}/p2.lock", f"{d}/p2.lock"),
        ]
    for argv in procs.values():  # warm the page cache
        process(argv)
    for name, median in interleaved(procs, max(rounds // 4, 20), process).items():
        print(f"BENCH {name} {median * 1e3:.2f} ms")


main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200)
