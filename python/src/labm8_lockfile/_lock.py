"""``LockFile``: labm8's API over the native module, plus waits, leases,
tokens and asyncio; labm8's refusals, which name the lock, and the native
module's failures turned into exceptions."""

from __future__ import annotations

import atexit
import datetime
import os
import time
import weakref
TYPE_CHECKING = False  # as `typing.TYPE_CHECKING`, without importing typing

from . import _native
from ._errors import Error, LockFileError, LockLostError, Owner, Status, to_datetime, to_owner

if TYPE_CHECKING:  # typing costs ~10 ms to import: for type checkers only
    from typing import Any, Callable, Optional, Tuple, TypeVar, Union

    PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
    T = TypeVar("T")

_Failure = _native.Failure
#: Failures a wait retries: another owner holds the lock, or it changed
#: hands too often while we looked.
_RETRIED = ("unable-to-acquire", "contended")

#: Every LockFile that may have a handle open, closed at exit: a handle that
#: acquires and releases keeps a spare file beside the lock, removed when
#: the handle closes (a collected LockFile closes as it goes).
_open: weakref.WeakSet[LockFile] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for lock in list(_open):
        try:
            lock.close()
        except Exception:  # noqa: BLE001 - the interpreter is going away
            pass


def _check_timeout(timeout: Optional[float]) -> None:
    if timeout is not None and not timeout >= 0:
        raise ValueError(
            "timeout={!r}: give None (wait for ever), 0 (do not wait) or a "
            "positive number of seconds".format(timeout)
        )


class LockFile:
    """A lock file at ``path``: labm8's ``LockFile``.

    The lock is the process's: every thread of it shares the lock (as with
    labm8), and ``acquire`` when this process holds it already is a no-op.
    A ``LockFile`` may be used from several threads, and after ``os.fork()``
    the child acts for itself (its own pid) at once.

    Attributes:
        path (str): the path as given, with ``~`` expanded (as labm8 keeps it).
    """

    __slots__ = ("_path", "_native", "__weakref__")

    def __init__(self, path: PathLike) -> None:
        self.path = path  # type: ignore[assignment]
        _open.add(self)

    @property
    def path(self) -> str:
        """The path as given, with ``~`` expanded (as labm8 keeps it)."""
        return self._path

    @path.setter
    def path(self, path: PathLike) -> None:
        # labm8 reads its `path` attribute on every call, so assigning it
        # moves the lock: so it does here (the old handle is closed).
        self._path = _path(path)
        old = getattr(self, "_native", None)
        if old is not None:
            old.close()
        # Opens nothing yet: labm8 touches nothing until the lock is used.
        # A relative path is resolved now, not when first used, so that a
        # later chdir (or a fork child's) cannot move the lock. An address
        # in etcd (etcd://HOST:PORT/KEY) is taken as it is.
        where = self._path if _in_store(self._path) else os.path.abspath(self._path)
        self._native = _native.Lock(where)

    def __reduce__(self) -> Tuple[type, Tuple[str]]:
        # As labm8's pickles: the path only (a handle is per process).
        return (LockFile, (self._path,))

    # -- labm8's API --------------------------------------------------------

    def acquire(
        self,
        replace_stale: bool = False,
        force: bool = False,
        *,
        timeout: Optional[float] = 0,
        lease: Optional[float] = None,
        token: bool = False,
    ) -> "LockFile":
        """Claims the lock: when unheld, when this process holds it already (a
        no-op), with ``force`` always, with ``replace_stale`` when its owner
        is gone. Returns self.

        Args:
            replace_stale: also take over a lock whose owner is gone (dead,
                its pid recycled, from a previous boot).
            force: take it whoever holds it (even a malformed file).
            timeout: how long to keep trying while another owner holds it,
                in seconds: 0 (the default, labm8's behaviour) tries once,
                ``None`` waits for ever. Pauses grow from 5 ms to 250 ms.
            lease: seconds after which another host may take the lock unless
                it is refreshed (see :meth:`refresh`); for locks on shared
                file systems.
            token: issue a fencing token with the acquisition (see :attr:`token`).

        Raises:
            UnableToAcquireLockError: another owner holds it (when the wait
                ran out, the last owner seen).
            LockFileError: anything else (a malformed file, a missing directory).
            ValueError: a negative timeout or lease.
        """
        if timeout != 0:
            _check_timeout(timeout)
        # labm8 takes any truthy value for its flags.
        flags = (bool(replace_stale), bool(force), lease, bool(token))
        failure = self._attempt(flags)
        if failure is None:
            return self
        if timeout == 0:
            raise from_failure(self, failure) from None
        schedule = _native.Schedule(timeout)
        start = time.monotonic()
        while True:
            pause = schedule.pause(time.monotonic() - start)
            if pause is None:
                raise from_failure(self, failure) from None
            time.sleep(pause)
            failure = self._attempt(flags)
            if failure is None:
                return self

    def release(self, force: bool = False) -> None:
        """Releases the lock: a no-op when unheld; with ``force``, whoever holds it.

        Raises:
            UnableToReleaseLockError: another owner holds it.
            LockFileError: anything else.
        """
        try:
            self._native.release(bool(force))
        except _Failure as failure:
            if _missing_directory(failure):
                return  # no directory, so no lock: labm8 returns too
            raise from_failure(self, failure) from None

    @property
    def pid(self) -> Optional[int]:
        """The owner's pid; None when the lock is not held."""
        return self._query(self._native.pid, None)

    @property
    def date(self) -> Optional[datetime.date]:
        """The day the lock was acquired (labm8's ``datetime.date``); None when not held."""
        acquired = self.acquired
        return acquired.date() if acquired is not None else None

    @property
    def islocked(self) -> bool:
        """Whether a lock file exists."""
        return self._query(self._native.is_locked, False)

    @property
    def owned_by_self(self) -> bool:
        """Whether this process holds the lock."""
        return self._query(self._native.owned_by_self, False)

    def __repr__(self) -> str:
        return self.path

    def __enter__(self) -> "LockFile":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    @staticmethod
    def read(path: PathLike) -> Tuple[Optional[int], Optional[datetime.date]]:
        """labm8's ``LockFile.read``: ``(pid, date)`` of the owner at
        ``path``, or ``(None, None)`` when unlocked."""
        path = _path(path)
        if _in_store(path):
            raise ValueError("read takes a lock file; for a lock in etcd use LockFile(address).status()")
        try:
            owner = to_owner(_native.read(path))
        except _Failure as failure:
            if _missing_directory(failure):
                return None, None  # labm8's answer
            raise from_failure(None, failure) from None
        if owner is None:
            return None, None
        return owner.pid, owner.acquired.date()

    @staticmethod
    def write(path: PathLike, pid: int, timestamp: Union[float, datetime.datetime]) -> None:
        """labm8's ``LockFile.write``: plants ``PID TIMESTAMP`` at ``path``,
        replacing a regular file there atomically. ``timestamp``: Unix
        seconds (``time.time()``) or a ``datetime``. Any pid from 0 up, as
        labm8 allows: a lock naming pid 0 is held by an owner whose liveness
        cannot be told, never stale, taken only by force."""
        if _in_store(_path(path)):
            raise ValueError("write plants a lock file; it does not write to etcd")
        if isinstance(timestamp, datetime.datetime):
            timestamp = timestamp.timestamp()
        seconds = float(timestamp)
        if not 0 <= seconds < _END_OF_9999:
            raise ValueError(
                "timestamp {!r} is not a time from 1970 to the year 9999".format(timestamp)
            )
        if not 0 <= int(pid) <= _MAX_PID:
            raise ValueError("pid {!r} is not a pid (0 to {})".format(pid, _MAX_PID))
        whole = int(seconds)
        nanos = min(int(round((seconds - whole) * 1e9)), 999_999_999)
        try:
            _native.write(_path(path), int(pid), whole, nanos)
        except _Failure as failure:
            raise from_failure(None, failure) from None

    # -- beyond labm8 -------------------------------------------------------

    @property
    def acquired(self) -> Optional[datetime.datetime]:
        """When the lock was acquired, to the microsecond; None when not held."""
        date = self._query(self._native.date, None)
        return to_datetime(*date) if date is not None else None

    @property
    def token(self) -> Optional[int]:
        """The fencing token of the lock's current acquisition (taken with
        ``token=True`` or a lease, or of a lock that already had a token
        sequence): larger than every earlier acquisition's of this lock.
        Pass it to the storage you write to, which refuses tokens lower than
        one it has seen. None when unlocked or taken without one."""
        return self._query(self._native.token, None)

    def refresh(self) -> None:
        """Renews the lease of the lock this process holds (taken with
        ``lease=``). Call it well within the lease (a third of it, say).

        Raises:
            LockLostError: the lock is gone, not ours, or its lease already ran out.
            LockFileError: anything else.
        """
        try:
            self._native.refresh()
        except _Failure as failure:
            raise from_failure(self, failure) from None

    def status(self) -> Status:
        """The owner, the verdict (``unlocked``, ``owned-by-self``, ``held``,
        ``stale``, ``foreign``, ``malformed``), its cause and the reason.

        Raises:
            LockFileError: the lock cannot be read (a malformed file is a
                verdict, not an error).
        """
        try:
            path, owner, verdict, cause, reason = self._native.status()
        except _Failure as failure:
            raise from_failure(self, failure) from None
        return Status(path, to_owner(owner), verdict, cause, reason)

    @property
    def verdict(self) -> str:
        """How the lock stands for this process (see :meth:`status`)."""
        return self.status().verdict

    @property
    def reason(self) -> str:
        """Why, as a sentence (see :meth:`status`)."""
        return self.status().reason

    def close(self) -> None:
        """Lets the component clean up after this handle (a handle that
        acquires and releases keeps a spare file beside the lock, removed
        here). Does not release the lock (labm8's rule). Called when the
        object is collected, and for every open handle at exit; the object
        stays usable."""
        self._native.close()

    # -- asyncio ------------------------------------------------------------

    async def acquire_async(
        self,
        replace_stale: bool = False,
        force: bool = False,
        *,
        timeout: Optional[float] = 0,
        lease: Optional[float] = None,
        token: bool = False,
    ) -> "LockFile":
        """:meth:`acquire` for asyncio: pauses between attempts are
        ``asyncio.sleep``, so waiting never blocks the event loop. Each
        attempt is one call of a few microseconds on a local disk, made
        inline, so that a cancelled wait never leaves a lock taken behind
        it."""
        _check_timeout(timeout)
        schedule = _native.Schedule(timeout)
        flags = (bool(replace_stale), bool(force), lease, bool(token))
        start = time.monotonic()
        while True:
            failure = self._attempt(flags)
            if failure is None:
                return self
            pause = schedule.pause(time.monotonic() - start)
            if pause is None:
                raise from_failure(self, failure) from None
            await _sleep(pause)

    async def release_async(self, force: bool = False) -> None:
        """:meth:`release`, for symmetry in asyncio code (one short call)."""
        self.release(force)

    async def __aenter__(self) -> "LockFile":
        return await self.acquire_async()

    async def __aexit__(self, *exc: Any) -> None:
        self.release()

    # -- internals ----------------------------------------------------------

    def _attempt(self, flags: Tuple[bool, bool, Optional[float], bool]) -> Any:
        """One attempt to acquire: None when taken; the failure when a wait
        may retry it (held, or changing hands); anything else is raised."""
        try:
            self._native.acquire(*flags)
            return None
        except _Failure as failure:
            if failure.args[0] not in _RETRIED:
                raise from_failure(self, failure) from None
            return failure

    def _query(self, call: Callable[[], T], absent: T) -> T:
        # labm8 answers "not locked" for a lock whose directory is missing.
        try:
            return call()
        except _Failure as failure:
            if _missing_directory(failure):
                return absent
            raise from_failure(self, failure) from None


#: The largest pid a lock file may name (`pid_t` is a signed 32-bit integer).
_MAX_PID = 2**31 - 1
#: 10000-01-01T00:00:00Z: the file format's timestamps end before it.
_END_OF_9999 = 253402300800


def _in_store(path: str) -> bool:
    """Whether ``path`` is the address of a lock in etcd."""
    return path.startswith(("etcd://", "etcds://"))


def _path(path: PathLike) -> str:
    """A path as labm8 keeps it: ``os.fspath``, bytes decoded as the file
    system does, ``~`` expanded."""
    return os.path.expanduser(os.fsdecode(path))


async def _sleep(seconds: float) -> None:
    # asyncio is imported on first use: it is most of what importing the
    # package would cost otherwise (about 35 ms), and sync users never need it.
    import asyncio

    await asyncio.sleep(seconds)


def _missing_directory(failure: BaseException) -> bool:
    kind, path = failure.args[0], failure.args[1]
    return kind == "unreachable" and not os.path.isdir(os.path.dirname(os.path.abspath(path)))


class _Refused(Error):
    _what = ""

    def __init__(self, lock: LockFile, refusal: Any = None) -> None:
        super().__init__(lock, refusal)
        self.lock = lock
        owner, verdict, cause, reason = refusal if refusal is not None else (None,) * 4
        owner = to_owner(owner)
        #: The owner, as recorded (None when constructed without a refusal).
        self.owner: Optional[Owner] = owner
        #: The owner's pid.
        self.pid: Optional[int] = owner.pid if owner is not None else None
        #: ``held``, ``foreign`` or ``stale``.
        self.verdict: Optional[str] = verdict
        #: Why, as a word (see :class:`Status`).
        self.cause: Optional[str] = cause
        #: Why, as a sentence.
        self.reason: Optional[str] = reason

    @property
    def date(self) -> Optional[datetime.date]:
        """The day the owner acquired the lock (labm8's ``date``)."""
        return self.owner.acquired.date() if self.owner is not None else None

    def __str__(self) -> str:
        # labm8's three lines, then why.
        text = (
            "Unable to {} file lock owned by a different process.\n"
            "Lock acquired by process {} on {}.\n"
            "Lock path: {}"
        ).format(self._what, self.pid, self.date, self.lock.path)
        if self.reason:
            text += "\nWhy: {} ({})".format(self.reason, self.verdict)
        return text


class UnableToAcquireLockError(_Refused):
    """labm8's error: another owner holds the lock (also when a wait for it
    ran out)."""

    _what = "acquire"


class UnableToReleaseLockError(_Refused):
    """labm8's error: the lock belongs to another owner."""

    _what = "release"


def from_failure(lock: Optional[LockFile], failure: BaseException) -> Error:
    """The native module's ``Failure(kind, path, message, text, refusal)`` as ours."""
    kind, path, message, text, refusal = failure.args
    if kind == "unable-to-acquire" or kind == "unable-to-release":
        if lock is None:
            lock = LockFile(path)
        cls = UnableToAcquireLockError if kind == "unable-to-acquire" else UnableToReleaseLockError
        return cls(lock, refusal)
    if kind == "lost":
        return LockLostError(kind, path, message, text)
    return LockFileError(kind, path, message, text)
