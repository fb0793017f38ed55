"""What Python users expect beyond labm8: waits, leases, tokens, status."""

import os
import subprocess
import time

import pytest

from conftest import hold
from labm8_lockfile import (
    LockFile,
    LockFileError,
    LockLostError,
    UnableToAcquireLockError,
)


def test_timeout_waits_for_the_holder_to_release(tmp_path):
    path = str(tmp_path / "LOCK")
    holder = hold(path, 0.5)
    lock = LockFile(path)
    with pytest.raises(UnableToAcquireLockError):
        lock.acquire()
    assert lock.acquire(timeout=30) is lock
    assert lock.owned_by_self
    assert holder.wait(timeout=30) == 0
    lock.release()


def test_timeout_none_waits_for_ever(tmp_path):
    path = str(tmp_path / "LOCK")
    holder = hold(path, 0.5)
    LockFile(path).acquire(timeout=None)
    assert LockFile(path).owned_by_self
    holder.wait(timeout=30)


def test_a_wait_that_runs_out_names_the_owner(tmp_path, sleeper):
    path = str(tmp_path / "LOCK")
    LockFile.write(path, sleeper.pid, time.time())
    start = time.monotonic()
    with pytest.raises(UnableToAcquireLockError) as refused:
        LockFile(path).acquire(replace_stale=True, timeout=0.3)
    assert time.monotonic() - start >= 0.3
    assert refused.value.pid == sleeper.pid
    assert refused.value.verdict == "held"
    assert LockFile(path).pid == sleeper.pid


def test_a_wait_takes_over_a_stale_lock_at_once(tmp_path, dead_pid):
    path = str(tmp_path / "LOCK")
    LockFile.write(path, dead_pid, time.time())
    LockFile(path).acquire(replace_stale=True, timeout=None)
    assert LockFile(path).owned_by_self


def test_a_wait_does_not_retry_what_waiting_cannot_fix(tmp_path):
    path = tmp_path / "LOCK"
    path.write_text("garbage")
    start = time.monotonic()
    with pytest.raises(LockFileError) as failed:
        LockFile(str(path)).acquire(timeout=None)
    assert failed.value.kind == "malformed"
    assert time.monotonic() - start < 30
    assert path.read_text() == "garbage"


@pytest.mark.parametrize("timeout", [-1, -0.5, float("nan")])
def test_a_bad_timeout_is_refused_before_anything_is_written(tmp_path, timeout):
    path = tmp_path / "LOCK"
    with pytest.raises(ValueError, match="timeout"):
        LockFile(str(path)).acquire(timeout=timeout)
    assert not path.exists()


@pytest.mark.parametrize("lease", [0, -1, float("nan"), float("inf")])
def test_a_bad_lease_is_refused_before_anything_is_written(tmp_path, lease):
    path = tmp_path / "LOCK"
    with pytest.raises(ValueError, match="lease"):
        LockFile(str(path)).acquire(lease=lease)
    assert not path.exists()


def test_lease_is_recorded_and_refresh_keeps_it(tmp_path, lockfile_bin):
    path = str(tmp_path / "LOCK")
    lock = LockFile(path).acquire(lease=30)
    assert "lease_ms=30000" in open(path).read()
    lock.refresh()
    out = subprocess.run(
        [lockfile_bin, "refresh", "--pid", str(os.getpid()), path], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    lock.release()
    with pytest.raises(LockLostError) as lost:
        lock.refresh()
    assert lost.value.kind == "lost"


def test_an_expired_lease_is_lost(tmp_path):
    path = str(tmp_path / "LOCK")
    lock = LockFile(path).acquire(lease=0.2)
    # A file's time may read up to a second old: a refresh is refused once
    # the lease and that second have passed.
    time.sleep(1.8)
    with pytest.raises(LockLostError):
        lock.refresh()


def test_tokens_grow_with_every_acquisition(tmp_path):
    path = str(tmp_path / "LOCK")
    lock = LockFile(path)
    assert lock.token is None
    tokens = []
    for _ in range(3):
        lock.acquire(token=True)
        tokens.append(lock.token)
        assert lock.status().owner.token == tokens[-1]
        lock.release()
    assert tokens == sorted(set(tokens)) and len(tokens) == 3
    # Once the lock has a sequence, every acquisition continues it.
    lock.acquire()
    assert lock.token == tokens[-1] + 1
    lock.release()
    # A lock without one gets none unless asked.
    plain = LockFile(str(tmp_path / "PLAIN")).acquire()
    assert plain.token is None
    plain.release()
    # A lease always issues one.
    other = LockFile(str(tmp_path / "LEASED")).acquire(lease=30)
    assert other.token == 1
    other.release()


def test_status_names_owner_verdict_cause_and_reason(tmp_path, sleeper, lockfile_bin):
    path = str(tmp_path / "LOCK")
    lock = LockFile(path)
    status = lock.status()
    assert (status.verdict, status.cause, status.owner) == ("unlocked", "no-lock-file", None)
    subprocess.run([lockfile_bin, "acquire", "--pid", str(sleeper.pid), path], check=True)
    status = lock.status()
    assert status.path == os.path.realpath(path)
    assert (status.verdict, status.cause) == ("held", "running")
    assert status.owner.pid == sleeper.pid
    assert status.owner.hostname == os.uname().nodename
    assert str(sleeper.pid) in status.reason
    assert abs(status.owner.acquired.timestamp() - time.time()) < 60


def test_close_cleans_up_and_the_lock_stays_usable(tmp_path):
    path = str(tmp_path / "LOCK")
    lock = LockFile(path)
    for _ in range(3):
        lock.acquire()
        lock.release()
    lock.close()
    assert os.listdir(tmp_path) == []
    with lock:
        assert lock.owned_by_self
    lock.close()
    assert os.listdir(tmp_path) == []
