"""asyncio: waits that never block the event loop, and `async with`."""

import asyncio
import time

import pytest

from conftest import hold
from labm8_lockfile import LockFile, UnableToAcquireLockError


async def ticking(ticks, stop):
    while not stop.is_set():
        ticks.append(time.monotonic())
        await asyncio.sleep(0.01)


def test_a_wait_lets_the_event_loop_run(tmp_path):
    path = str(tmp_path / "LOCK")
    holder = hold(path, 0.6)

    async def main():
        ticks, stop = [], asyncio.Event()
        ticker = asyncio.ensure_future(ticking(ticks, stop))
        start = time.monotonic()
        lock = await LockFile(path).acquire_async(timeout=30)
        waited = time.monotonic() - start
        stop.set()
        await ticker
        return lock, ticks, waited

    lock, ticks, waited = asyncio.run(main())
    assert lock.owned_by_self
    # The loop ran all along: ticks every 10 ms through the whole wait, no
    # gap anywhere near the wait's length.
    assert waited > 0.2
    assert len(ticks) > 10
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert max(gaps) < waited / 2, (max(gaps), waited)
    holder.wait(timeout=30)
    lock.release()


def test_async_with_takes_and_releases(tmp_path):
    path = str(tmp_path / "LOCK")

    async def main():
        async with LockFile(path) as lock:
            assert lock.owned_by_self
            assert LockFile.read(path)[0] is not None
        return lock

    lock = asyncio.run(main())
    assert not lock.islocked


def test_async_refusal_and_timeout(tmp_path, sleeper):
    path = str(tmp_path / "LOCK")
    LockFile.write(path, sleeper.pid, time.time())

    async def main():
        with pytest.raises(UnableToAcquireLockError):
            await LockFile(path).acquire_async()
        start = time.monotonic()
        with pytest.raises(UnableToAcquireLockError) as refused:
            await LockFile(path).acquire_async(replace_stale=True, timeout=0.2)
        assert time.monotonic() - start >= 0.2
        assert refused.value.pid == sleeper.pid

    asyncio.run(main())


def test_a_cancelled_wait_leaves_no_lock_behind(tmp_path):
    path = str(tmp_path / "LOCK")
    holder = hold(path, 0.5)

    async def main():
        lock = LockFile(path)
        task = asyncio.ensure_future(lock.acquire_async(timeout=None))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return lock

    lock = asyncio.run(main())
    holder.wait(timeout=30)
    assert not lock.islocked
    assert not lock.owned_by_self
