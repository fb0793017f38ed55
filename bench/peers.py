"""Acquire+release cycles of the Python lock files people use, in-process.

Prints `BENCH <name> <median> us` for labm8 0.1.2's LockFile, filelock's
FileLock and SoftFileLock, and this project's Python package
(labm8_lockfile: the component under PyPI's wasmtime), each on a fresh file
in DIR (argv[1]).
"""
import statistics
import sys
import time

N = 2000


def median_us(cycle):
    for _ in range(100):  # warm up
        cycle()
    samples = []
    for _ in range(N):
        t = time.perf_counter_ns()
        cycle()
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1000


def main(d):
    try:
        # labm8 0.1.2 predates Python 3.10, which moved these ABCs out of
        # `collections`; put them back so it imports.
        import collections
        import collections.abc

        for name in ("Mapping", "MutableMapping", "Sequence", "Iterable", "Callable"):
            setattr(collections, name, getattr(collections.abc, name))
        from labm8 import lockfile

        lock = lockfile.LockFile(f"{d}/labm8.lock")

        def labm8_cycle():
            lock.acquire()
            lock.release()

        print(f"BENCH labm8_cycle {median_us(labm8_cycle):.1f} us")
    except Exception as e:  # labm8 is old; say why it is missing
        print(f"# labm8 unavailable: {e!r}")
    from labm8_lockfile import LockFile

    ours = LockFile(f"{d}/labm8_lockfile.lock")

    def ours_cycle():
        ours.acquire()
        ours.release()

    print(f"BENCH labm8_lockfile_cycle {median_us(ours_cycle):.1f} us")
    import filelock

    for name, cls in (("filelock", filelock.FileLock), ("softfilelock", filelock.SoftFileLock)):
        lock = cls(f"{d}/{name}.lock")

        def cycle():
            lock.acquire()
            lock.release()

        print(f"BENCH {name}_cycle {median_us(cycle):.1f} us")


main(sys.argv[1])
