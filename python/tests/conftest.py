"""Fixtures: the native CLI and processes to own locks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: labm8 0.1.2 predates Python 3.10, which moved these ABCs out of
#: `collections`; this puts them back so that it imports (here and in the
#: subprocesses the tests start). It also asks `pkg_resources` at import for
#: its own version, which checks that numpy, pandas, scipy and matplotlib are
#: installed, none of which `labm8.lockfile` uses: python/ci.sh installs it
#: without them, and this answers that question without the check.
LABM8_SHIM = (
    "import collections, collections.abc, sys, types\n"
    "for _n in ('Mapping', 'MutableMapping', 'Sequence', 'Iterable', 'Callable'):\n"
    "    setattr(collections, _n, getattr(collections.abc, _n))\n"
    "_pr = types.ModuleType('pkg_resources')\n"
    "_pr.require = lambda name: [types.SimpleNamespace(version='0.1.2')]\n"
    "sys.modules['pkg_resources'] = _pr\n"
)
exec(LABM8_SHIM)


@pytest.fixture
def lockfile_bin() -> str:
    """The native `lockfile` CLI: $LOCKFILE_BIN, else target/debug/lockfile."""
    path = os.environ.get("LOCKFILE_BIN", str(ROOT / "target" / "debug" / "lockfile"))
    if not os.access(path, os.X_OK):
        pytest.fail("the lockfile CLI is missing at {}: run `cargo build` first".format(path))
    return path


@pytest.fixture
def sleeper():
    """A live process other than this one."""
    child = subprocess.Popen(["sleep", "600"])
    yield child
    child.kill()
    child.wait()


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


#: A process that takes the lock at argv[1], says so, holds it for argv[2]
#: seconds and releases it.
HOLD = (
    "import sys, time\n"
    "from labm8_lockfile import LockFile\n"
    "lock = LockFile(sys.argv[1]).acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
    "lock.release()\n"
)


def hold(path, seconds):
    """A process holding the lock at `path` for `seconds`, then releasing it
    (returned once it holds the lock)."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, path, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline() == "held\n"
    return child
