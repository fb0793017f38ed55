"""Our locks against the native CLI and against labm8 0.1.2 itself."""

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import LABM8_SHIM

import labm8.lockfile

from labm8_lockfile import LockFile, UnableToAcquireLockError, UnableToReleaseLockError


def cli(lockfile_bin, *args):
    return subprocess.run([lockfile_bin, *args], capture_output=True, text=True)


def test_the_cli_sees_the_python_process_holding_the_lock(tmp_path, lockfile_bin, sleeper):
    path = str(tmp_path / "shared.lock")
    lock = LockFile(path).acquire()
    out = cli(lockfile_bin, "status", "--json", "--pid", str(sleeper.pid), path)
    status = json.loads(out.stdout)
    assert status["pid"] == os.getpid()
    assert status["verdict"] == "held"
    assert status["cause"] == "running"
    assert cli(lockfile_bin, "acquire", "--pid", str(sleeper.pid), path).returncode == 1
    lock.release()
    assert cli(lockfile_bin, "acquire", "--pid", str(sleeper.pid), path).returncode == 0


def test_python_is_refused_while_the_cli_holds_the_lock(tmp_path, lockfile_bin, sleeper):
    path = str(tmp_path / "shared.lock")
    assert cli(lockfile_bin, "acquire", "--pid", str(sleeper.pid), path).returncode == 0
    lock = LockFile(path)
    with pytest.raises(UnableToAcquireLockError) as refused:
        lock.acquire(replace_stale=True)
    assert refused.value.pid == sleeper.pid
    assert refused.value.cause == "running"
    with pytest.raises(UnableToReleaseLockError):
        lock.release()
    assert cli(lockfile_bin, "release", "--pid", str(sleeper.pid), path).returncode == 0
    lock.acquire()
    assert lock.owned_by_self


def test_labm8_reads_our_locks(tmp_path):
    path = str(tmp_path / "ours.lock")
    LockFile(path).acquire()
    theirs = labm8.lockfile.LockFile(path)
    assert theirs.islocked
    assert theirs.pid == os.getpid()
    assert theirs.owned_by_self
    assert theirs.date == LockFile(path).date
    assert labm8.lockfile.LockFile.read(path) == LockFile.read(path)


def test_we_read_labm8s_locks(tmp_path):
    path = str(tmp_path / "theirs.lock")
    labm8.lockfile.LockFile(path).acquire()
    lock = LockFile(path)
    assert lock.pid == os.getpid()
    assert lock.owned_by_self  # no start time recorded: judged by start vs lock time
    lock.release()
    assert not os.path.exists(path)
    # A lock labm8 took in a process that has exited is stale.
    subprocess.run(
        [
            sys.executable,
            "-c",
            LABM8_SHIM + "import labm8.lockfile as l; l.LockFile({!r}).acquire()".format(path),
        ],
        check=True,
    )
    lock = LockFile(path)
    assert lock.verdict == "stale"
    with pytest.raises(UnableToAcquireLockError):
        lock.acquire()
    lock.acquire(replace_stale=True)
    assert lock.owned_by_self
    lock.release()


WORKER = r"""
import sys, time
from labm8_lockfile import LockFile, UnableToAcquireLockError
path, counter, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
lock = LockFile(path)
for _ in range(n):
    while True:
        try:
            lock.acquire()
            break
        except UnableToAcquireLockError:
            time.sleep(0.002)
    with open(counter) as f:
        value = int(f.read())
    with open(counter, "w") as f:
        f.write(str(value + 1))
    lock.release()
"""


def test_python_processes_and_the_cli_contend_without_losing_an_update(tmp_path, lockfile_bin):
    path = str(tmp_path / "counter.lock")
    counter = tmp_path / "counter"
    counter.write_text("0")
    pythons, per_python, natives, per_native = 4, 25, 4, 25
    increment = 'n=$(cat "$1"); echo $((n + 1)) > "$1"'
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, path, str(counter), str(per_python)])
        for _ in range(pythons)
    ]
    native_script = 'for i in $(seq {}); do "$0" run --wait 120 "$1" -- sh -c {!r} sh "$2" || exit 1; done'
    procs += [
        subprocess.Popen(
            ["sh", "-c", native_script.format(per_native, increment), lockfile_bin, path, str(counter)]
        )
        for _ in range(natives)
    ]
    for proc in procs:
        assert proc.wait(timeout=600) == 0
    assert int(counter.read_text()) == pythons * per_python + natives * per_native
    assert not os.path.exists(path)
