"""labm8 0.1.2's lock file behaviour, through the component."""

import datetime
import os
import time

import pytest

from labm8_lockfile import (
    LockFile,
    LockFileError,
    UnableToAcquireLockError,
    UnableToReleaseLockError,
)


def test_acquire_creates_the_file_and_release_removes_it(tmp_path):
    path = tmp_path / "LOCK"
    lock = LockFile(str(path))
    assert not path.exists()
    assert not lock.islocked
    assert lock.pid is None and lock.date is None
    assert lock.acquire() is lock
    assert path.exists()
    assert lock.islocked
    assert lock.owned_by_self
    assert lock.pid == os.getpid()
    assert lock.date == datetime.date.today()
    lock.release()
    assert not path.exists()
    assert not lock.islocked


def test_the_file_is_what_labm8_writes(tmp_path):
    path = tmp_path / "LOCK"
    LockFile(str(path)).acquire()
    tokens = path.read_text().split()
    assert int(tokens[0]) == os.getpid()
    assert abs(float(tokens[1]) - time.time()) < 60


def test_reacquire_is_a_noop_and_release_of_unheld_too(tmp_path):
    path = str(tmp_path / "LOCK")
    lock = LockFile(path)
    lock.acquire()
    before = open(path).read()
    lock.acquire()
    LockFile(path).acquire()
    assert open(path).read() == before
    lock.release()
    lock.release()
    assert not os.path.exists(path)


def test_replace_stale(tmp_path, dead_pid):
    path = str(tmp_path / "LOCK")
    LockFile.write(path, dead_pid, time.time())
    lock = LockFile(path)
    assert lock.pid == dead_pid
    with pytest.raises(UnableToAcquireLockError) as refused:
        lock.acquire()
    assert refused.value.pid == dead_pid
    assert refused.value.verdict == "stale"
    assert "Unable to acquire file lock owned by a different process." in str(refused.value)
    lock.acquire(replace_stale=True)
    assert lock.owned_by_self
    assert lock.pid == os.getpid()
    lock.release()


def test_replace_stale_never_takes_a_live_owners_lock(tmp_path, sleeper):
    path = str(tmp_path / "LOCK")
    LockFile.write(path, sleeper.pid, time.time())
    lock = LockFile(path)
    with pytest.raises(UnableToAcquireLockError) as refused:
        lock.acquire(replace_stale=True)
    assert refused.value.verdict == "held"
    assert lock.pid == sleeper.pid
    assert not lock.owned_by_self


def test_force(tmp_path, sleeper):
    path = str(tmp_path / "LOCK")
    LockFile.write(path, sleeper.pid, time.time())
    lock = LockFile(path)
    lock.acquire(force=True)
    assert lock.owned_by_self
    lock.release()
    assert not lock.islocked


def test_a_lock_planted_for_pid_0_is_held_until_forced(tmp_path):
    # labm8's own test of `force` plants pid 0 with the static `write`.
    path = str(tmp_path / "LOCK")
    LockFile.write(path, 0, time.time())
    assert open(path).read().split()[0] == "0"
    lock = LockFile(path)
    assert lock.islocked
    assert lock.pid == 0
    assert not lock.owned_by_self
    status = lock.status()
    assert (status.verdict, status.cause) == ("held", "unknown-liveness")
    for replace_stale in (False, True):
        with pytest.raises(UnableToAcquireLockError) as refused:
            lock.acquire(replace_stale=replace_stale)
        assert refused.value.pid == 0
        assert refused.value.cause == "unknown-liveness"
    with pytest.raises(UnableToReleaseLockError):
        lock.release()
    assert lock.pid == 0
    lock.acquire(force=True)
    assert lock.islocked and lock.owned_by_self
    lock.release()
    assert not os.path.exists(path)


def test_flags_may_be_any_truthy_value_as_in_labm8(tmp_path, dead_pid):
    path = str(tmp_path / "LOCK")
    LockFile.write(path, dead_pid, time.time())
    lock = LockFile(path).acquire(replace_stale=1)
    assert lock.owned_by_self
    lock.release(force=0)
    assert not lock.islocked


def test_paths_may_be_path_objects_and_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    lock = LockFile(tmp_path / "LOCK")
    assert lock.path == str(tmp_path / "LOCK")
    with lock:
        assert LockFile("~/LOCK").owned_by_self
        assert LockFile.read(tmp_path / "LOCK")[0] == os.getpid()
    assert repr(LockFile("~/LOCK")) == str(tmp_path / "LOCK")


def test_release_of_anothers_lock_needs_force(tmp_path, sleeper):
    path = str(tmp_path / "LOCK")
    LockFile.write(path, sleeper.pid, time.time())
    lock = LockFile(path)
    with pytest.raises(UnableToReleaseLockError) as refused:
        lock.release()
    assert refused.value.pid == sleeper.pid
    assert os.path.exists(path)
    lock.release(force=True)
    assert not os.path.exists(path)


def test_read_and_write(tmp_path):
    path = str(tmp_path / "LOCK")
    assert LockFile.read(path) == (None, None)
    stamp = time.time() - 3600
    LockFile.write(path, 12345, stamp)
    pid, date = LockFile.read(path)
    assert pid == 12345
    assert date == datetime.date.fromtimestamp(stamp)
    # labm8 prints `PID TIMESTAMP`: the first line still says just that.
    tokens = open(path).read().split()
    assert tokens[0] == "12345" and abs(float(tokens[1]) - stamp) < 1e-5
    LockFile.write(path, 777, datetime.datetime(2020, 1, 2, 3, 4, 5))
    assert LockFile.read(path) == (777, datetime.date(2020, 1, 2))


def test_context_manager(tmp_path):
    path = str(tmp_path / "LOCK")
    with LockFile(path) as lock:
        assert lock.owned_by_self
        assert os.path.exists(path)
    assert not os.path.exists(path)


def test_verdict_and_reason(tmp_path, dead_pid):
    path = str(tmp_path / "LOCK")
    lock = LockFile(path)
    assert lock.verdict == "unlocked"
    LockFile.write(path, dead_pid, time.time())
    status = lock.status()
    assert status.verdict == "stale"
    assert status.cause == "dead"
    assert "{} is not running".format(dead_pid) in status.reason
    assert status.owner.pid == dead_pid


def test_bad_input_gets_a_clear_error_and_loses_nothing(tmp_path):
    path = tmp_path / "LOCK"
    path.write_text("garbage\n")
    lock = LockFile(str(path))
    assert lock.verdict == "malformed"
    with pytest.raises(LockFileError) as failed:
        lock.acquire(replace_stale=True)
    assert failed.value.kind == "malformed"
    assert str(path) in str(failed.value)
    assert path.read_text() == "garbage\n"
    (tmp_path / "dir.lock").mkdir()
    with pytest.raises(LockFileError) as failed:
        LockFile(str(tmp_path / "dir.lock")).acquire(force=True)
    assert failed.value.kind == "not-a-file"
    missing = LockFile(str(tmp_path / "missing" / "x.lock"))
    assert not missing.islocked
    with pytest.raises(LockFileError) as failed:
        missing.acquire()
    assert failed.value.kind == "unreachable"
    with pytest.raises(ValueError):
        LockFile.write(str(tmp_path / "w.lock"), 1, -5.0)


def test_no_file_is_left_beside_the_lock_when_the_process_ends(tmp_path):
    import subprocess
    import sys

    script = (
        "from labm8_lockfile import LockFile\n"
        "lock = LockFile({!r})\n"
        "for _ in range(5):\n"
        "    lock.acquire(); lock.release()\n"
    ).format(str(tmp_path / "LOCK"))
    subprocess.run([sys.executable, "-c", script], check=True)
    assert sorted(os.listdir(tmp_path)) == []
