"""Locks kept in etcd (`etcd://HOST:PORT/KEY`), from Python: the same
LockFile, against a real etcd member this module starts (Debian's
etcd-server; scripts/setup installs it)."""

import json
import shutil
import socket
import subprocess
import sys
import time

import pytest

from labm8_lockfile import LockFile, UnableToAcquireLockError


def _free_ports(n):
    """`n` different free ports: each probe is held until all are picked,
    so that the kernel cannot hand the same one out twice. (The harness's
    etcd members take theirs from below the ephemeral range, so a port
    picked here is never one of theirs.)"""
    probes = [socket.socket() for _ in range(n)]
    try:
        for p in probes:
            p.bind(("127.0.0.1", 0))
        return [p.getsockname()[1] for p in probes]
    finally:
        for p in probes:
            p.close()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    """`HOST:PORT` of a one-member cluster, stopped afterwards."""
    if shutil.which("etcd") is None:
        pytest.fail("`etcd` is missing: install Debian's etcd-server (scripts/setup does, as root)")
    client, peer = _free_ports(2)
    data = tmp_path_factory.mktemp("etcd")
    log = open(data / "member.log", "wb")
    member = subprocess.Popen(
        [
            "etcd", "--name", "py", "--data-dir", str(data / "data"),
            "--listen-client-urls", "http://127.0.0.1:{}".format(client),
            "--advertise-client-urls", "http://127.0.0.1:{}".format(client),
            "--listen-peer-urls", "http://127.0.0.1:{}".format(peer),
            "--initial-advertise-peer-urls", "http://127.0.0.1:{}".format(peer),
            "--initial-cluster", "py=http://127.0.0.1:{}".format(peer),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    log.close()
    endpoint = "127.0.0.1:{}".format(client)
    deadline = time.time() + 30
    while True:
        try:
            LockFile("etcd://{}/probe".format(endpoint)).status()
            break
        except Exception as e:
            ended = member.poll()
            if ended is not None or time.time() > deadline:
                member.kill()
                member.wait()
                why = "ended ({})".format(ended) if ended is not None else "did not answer within 30 s"
                tail = (data / "member.log").read_text(errors="replace").splitlines()[-30:]
                pytest.fail("etcd {}: {}\nits log:\n{}".format(why, e, "\n".join(tail)))
            time.sleep(0.2)
    yield endpoint
    member.kill()
    member.wait()


def test_a_lock_in_etcd_from_python(etcd, lockfile_bin, sleeper):
    address = "etcd://{}/py/job".format(etcd)
    lock = LockFile(address)
    assert lock.path == address
    assert not lock.islocked
    lock.acquire(lease=30)
    assert lock.islocked and lock.owned_by_self
    import os

    assert lock.pid == os.getpid()
    assert lock.token is not None and lock.token > 0
    lock.refresh()
    # The CLI, for another process, sees this one holding it, and is refused.
    status = json.loads(
        subprocess.run(
            [lockfile_bin, "status", "--json", "--pid", str(sleeper.pid), address],
            capture_output=True, text=True, check=True,
        ).stdout
    )
    assert status["pid"] == os.getpid() and status["verdict"] == "held"
    assert status["token"] == lock.token
    taken = subprocess.run(
        [lockfile_bin, "acquire", "--lease", "30", "--pid", str(sleeper.pid), address],
        capture_output=True, text=True,
    )
    assert taken.returncode == 1, taken.stderr
    lock.release()
    assert not lock.islocked
    # The CLI takes it for another process: refused here, with the owner named.
    subprocess.run(
        [lockfile_bin, "acquire", "--lease", "30", "--pid", str(sleeper.pid), address],
        check=True,
    )
    with pytest.raises(UnableToAcquireLockError) as refused:
        lock.acquire(lease=30)
    assert refused.value.pid == sleeper.pid
    subprocess.run([lockfile_bin, "release", "--pid", str(sleeper.pid), address], check=True)
    # An acquisition needs a lease: without one the key would outlive nothing.
    with pytest.raises(ValueError, match="lease"):
        lock.acquire()
    with pytest.raises(ValueError):
        LockFile.read(address)


def test_an_unreachable_member_is_a_clear_error():
    from labm8_lockfile import LockFileError

    lock = LockFile("etcd://127.0.0.1:{}/py/nowhere".format(_free_ports(1)[0]))
    with pytest.raises(LockFileError) as failed:
        lock.acquire(lease=5)
    assert "etcd" in str(failed.value)
