"""A LockFile is safe from several threads, and a child made by fork acts
for itself at once (no thread of the parent's is needed in the child)."""

import multiprocessing
import os
import threading
import time

import pytest

from labm8_lockfile import LockFile, UnableToAcquireLockError

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")


def run_in_child(body, timeout=60):
    """Runs `body()` in a child made by os.fork(); returns its exit status.
    A child that hangs is killed and fails the test."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = body() or 0
        except BaseException:  # noqa: BLE001 - report anything, exit either way
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the child hung for {} s".format(timeout))


def test_a_forked_child_locks_for_itself_at_once(tmp_path):
    parents = LockFile(str(tmp_path / "parent.lock")).acquire()
    mine = LockFile(str(tmp_path / "child.lock"))
    mine.acquire()
    mine.release()  # the handle is open in the parent when it forks

    def child():
        # The parent's lock is the parent's: held, alive, not ours.
        assert not parents.owned_by_self
        assert parents.pid == os.getppid()
        try:
            parents.acquire(replace_stale=True)
            return 2
        except UnableToAcquireLockError as refused:
            assert refused.pid == os.getppid()
        # The handle the parent opened now acts for the child.
        mine.acquire()
        assert mine.owned_by_self
        assert mine.pid == os.getpid()
        assert LockFile.read(mine.path)[0] == os.getpid()
        mine.release()
        assert not mine.islocked
        return 0

    assert run_in_child(child) == 0
    assert parents.owned_by_self
    assert parents.pid == os.getpid()
    # The parent's handle is still its own, and works.
    mine.acquire()
    assert mine.pid == os.getpid()
    mine.release()
    parents.release()
    # The child ended with os._exit (as multiprocessing's children do), so
    # its handle's spare is left, as a crash leaves one; the next handle that
    # starts keeping a spare sweeps those of dead processes.
    mine.close()
    parents.close()
    sweeper = LockFile(mine.path)
    for _ in range(2):
        sweeper.acquire()
        sweeper.release()
    sweeper.close()
    assert sorted(os.listdir(tmp_path)) == []


def _locks_for_itself(path):
    lock = LockFile(path)
    lock.acquire(timeout=30)
    try:
        return lock.pid == os.getpid() and lock.owned_by_self
    finally:
        lock.release()


def test_a_fork_pool_started_right_after_a_lock_call_works(tmp_path):
    path = str(tmp_path / "LOCK")
    with LockFile(path):
        pass
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        result = pool.map_async(_locks_for_itself, [path] * 16)
        assert result.get(timeout=60) == [True] * 16
    assert not os.path.exists(path)


def test_threads_sharing_a_lockfile_neither_crash_nor_deadlock(tmp_path):
    lock = LockFile(str(tmp_path / "LOCK"))
    errors = []

    def work():
        # The lock is the process's, shared by its threads (as in labm8):
        # any thread's release ends it for all, so each sees it ours or free.
        try:
            for _ in range(200):
                lock.acquire(timeout=30)
                assert lock.pid in (None, os.getpid())
                assert lock.status().verdict in ("owned-by-self", "unlocked")
                lock.release()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread deadlocked"
    assert errors == []
    assert not lock.islocked


def test_fork_while_other_threads_are_inside_lock_calls(tmp_path):
    lock = LockFile(str(tmp_path / "busy.lock"))
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            lock.acquire(timeout=30)
            lock.release()

    threads = [threading.Thread(target=churn) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            mine = str(tmp_path / "child{}.lock".format(i))

            def child():
                other = LockFile(mine).acquire()
                assert other.pid == os.getpid()
                other.release()
                # The handle the churning threads share works here too.
                lock.status()
                return 0

            assert run_in_child(child, timeout=30) == 0
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
