"""What labm8 users count on beyond its own tests: pickling (so that
multiprocessing carries locks and errors), moving a lock by assigning its
path, bytes paths, OSError, and times at the ends of the file format."""

import errno
import multiprocessing
import os
import pickle
import subprocess
import sys
import time

import pytest

from labm8_lockfile import (
    Error,
    LockFile,
    LockFileError,
    UnableToAcquireLockError,
    UnableToReleaseLockError,
)


def test_a_lockfile_pickles_as_its_path(tmp_path):
    lock = LockFile(str(tmp_path / "LOCK")).acquire()
    again = pickle.loads(pickle.dumps(lock))
    assert again.path == lock.path
    assert again.owned_by_self
    lock.release()


def _fail(kind, path):
    if kind == "refused":
        LockFile(path).acquire()
    elif kind == "release":
        LockFile(path).release()
    else:
        LockFile(os.path.join(path, "missing", "x.lock")).acquire()


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("refused", UnableToAcquireLockError),
        ("release", UnableToReleaseLockError),
        ("unreachable", LockFileError),
    ],
)
def test_errors_raised_in_a_pool_worker_arrive_whole(tmp_path, sleeper, kind, expected):
    path = str(tmp_path / "LOCK")
    if kind != "unreachable":
        LockFile.write(path, sleeper.pid, time.time())
    else:
        path = str(tmp_path)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        result = pool.apply_async(_fail, (kind, path))
        with pytest.raises(expected) as raised:
            result.get(timeout=60)
    error = raised.value
    if kind == "unreachable":
        assert error.kind == "unreachable"
        assert "missing" in str(error)
    else:
        assert error.pid == sleeper.pid
        assert error.lock.path == path
        assert "Lock acquired by process {}".format(sleeper.pid) in str(error)


def test_assigning_path_moves_the_lock_as_in_labm8(tmp_path):
    lock = LockFile(str(tmp_path / "old.lock"))
    lock.path = str(tmp_path / "new.lock")
    lock.acquire()
    assert os.listdir(tmp_path) == ["new.lock"]
    lock.release()


def test_a_relative_path_is_resolved_when_the_lockfile_is_made(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    lock = LockFile("job.lock")
    monkeypatch.chdir(tmp_path / "b")
    lock.acquire()
    assert lock.path == "job.lock"
    assert os.path.exists(tmp_path / "a" / "job.lock")
    assert not os.path.exists(tmp_path / "b" / "job.lock")
    lock.release()


def test_bytes_paths_are_accepted(tmp_path):
    path = os.fsencode(str(tmp_path / "LOCK"))
    lock = LockFile(path).acquire()
    assert lock.path == str(tmp_path / "LOCK")
    assert LockFile.read(path)[0] == os.getpid()
    LockFile.write(path, 1, time.time())
    assert LockFile(path).pid == 1


def test_release_without_a_directory_is_a_noop_as_in_labm8(tmp_path):
    lock = LockFile(str(tmp_path / "missing" / "x.lock"))
    assert lock.release() is None
    assert lock.release(force=True) is None


def test_other_failures_are_oserrors_naming_the_path(tmp_path):
    path = str(tmp_path / "missing" / "x.lock")
    with pytest.raises(OSError) as failed:
        LockFile(path).acquire()
    assert isinstance(failed.value, LockFileError) and isinstance(failed.value, Error)
    assert failed.value.errno == errno.ENOENT
    assert failed.value.filename == failed.value.path
    assert "does not exist" in str(failed.value)


@pytest.mark.parametrize("pid", [-1, 2**31, 2**40])
def test_write_refuses_what_is_not_a_pid(tmp_path, pid):
    with pytest.raises(ValueError, match="not a pid"):
        LockFile.write(str(tmp_path / "LOCK"), pid, time.time())
    assert not (tmp_path / "LOCK").exists()


@pytest.mark.parametrize("stamp", [-1.0, 1e14, float("nan"), float("inf")])
def test_write_refuses_times_the_format_cannot_hold(tmp_path, stamp):
    with pytest.raises(ValueError, match="1970 to the year 9999"):
        LockFile.write(str(tmp_path / "LOCK"), 1, stamp)
    assert not (tmp_path / "LOCK").exists()


def test_the_last_second_of_9999_reads_in_any_time_zone(tmp_path, sleeper):
    # 9999-12-31T23:59:59.5Z is year 10000 in Tokyo, which no datetime holds.
    path = str(tmp_path / "LOCK")
    LockFile.write(path, sleeper.pid, 253402300799.5)
    script = (
        "import sys\n"
        "from labm8_lockfile import LockFile, UnableToAcquireLockError\n"
        "lock = LockFile(sys.argv[1])\n"
        "print(LockFile.read(sys.argv[1])[0], lock.status().verdict)\n"
        "try:\n"
        "    lock.acquire()\n"
        "except UnableToAcquireLockError as e:\n"
        "    print(e.pid)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, path],
        env=dict(os.environ, TZ="Asia/Tokyo"),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(sleeper.pid), "held", str(sleeper.pid)]
