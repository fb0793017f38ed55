"""labm8's exceptions, and the native module's failures turned into them."""

from __future__ import annotations

import collections
import datetime
import errno
TYPE_CHECKING = False  # as `typing.TYPE_CHECKING`, without importing typing

if TYPE_CHECKING:  # typing costs ~10 ms to import: for type checkers only
    from typing import Any, NamedTuple, Optional, Tuple

    from ._lock import LockFile

    class Owner(NamedTuple):
        pid: int
        acquired: datetime.datetime
        hostname: Optional[str]
        token: Optional[int]

    class Status(NamedTuple):
        path: str
        owner: Optional[Owner]
        verdict: str
        cause: str
        reason: str

else:
    Owner = collections.namedtuple("Owner", "pid acquired hostname token")
    Status = collections.namedtuple("Status", "path owner verdict cause reason")

Owner.__doc__ = """Who a lock file names: ``pid`` (0 when planted so by labm8's
``write``), ``acquired`` (a local ``datetime``, to the microsecond),
``hostname`` (when recorded) and ``token`` (the fencing token its
acquisition issued, if any)."""
Status.__doc__ = """How a lock stands for this process: ``path``, ``owner`` (an
:class:`Owner`, or None), ``verdict`` (``unlocked``, ``owned-by-self``,
``held``, ``stale``, ``foreign`` or ``malformed``), ``cause`` (why, as a
word: ``running``, ``dead``, ``recycled``, ``unknown-liveness``, ...) and
``reason`` (why, as a sentence)."""


def to_datetime(seconds: int, nanos: int) -> datetime.datetime:
    """A record's time as a local ``datetime``, to the microsecond (cut, not
    rounded: never into the next second). A time a local ``datetime`` cannot
    hold (the file format allows up to the end of year 9999 UTC, which some
    time zones put in year 10000) is ``datetime.max``: an error naming its
    owner must not become a ValueError."""
    try:
        return datetime.datetime.fromtimestamp(seconds) + datetime.timedelta(
            microseconds=nanos // 1000
        )
    except (OverflowError, ValueError, OSError):
        return datetime.datetime.max


def to_owner(owner: Optional[Tuple[int, int, int, Optional[str], Optional[int]]]) -> Optional[Owner]:
    if owner is None:
        return None
    pid, seconds, nanos, hostname, token = owner
    return Owner(pid, to_datetime(seconds, nanos), hostname, token)


class Error(Exception):
    """labm8's base class of lock file errors; every error here is one."""


class _Refused(Error):
    _what = ""

    def __init__(self, lock: "LockFile", refusal: Any = None) -> None:
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


class LockFileError(Error, OSError):
    """Any other failure, with the path and what is wrong. An ``OSError``
    too (labm8's lock raised ``OSError`` for these), with ``errno`` set
    where one fits (``ENOENT`` for ``unreachable``, ``EACCES`` for
    ``denied``, ``EIO`` for ``io``) and ``filename`` the path.

    ``kind`` is one of ``malformed`` (the file cannot be parsed; it is left
    alone, only ``force`` replaces it), ``not-a-file``, ``unreachable`` (no
    such directory), ``denied``, ``contended`` (the lock changed hands too
    often while we looked: try again, or wait), ``lost`` (``refresh`` found
    the lock no longer ours), ``io``, ``invalid-identity``,
    ``no-such-process`` and ``runtime`` (a bug: please report it).
    """

    def __init__(self, kind: str, path: str, message: str, text: Optional[str] = None) -> None:
        text = text if text is not None else "{}: {}".format(path, message)
        super().__init__(text)
        self.kind = kind
        self.path = path
        self.message = message
        self.text = text
        self.errno = _ERRNO.get(kind)
        self.strerror = message
        self.filename = path

    def __str__(self) -> str:
        return self.text

    def __reduce__(self) -> Any:
        # Survives pickling (multiprocessing sends a worker's errors home).
        return (type(self), (self.kind, self.path, self.message, self.text))


class LockLostError(LockFileError):
    """``refresh`` found the lock no longer ours: gone, taken over after its
    lease ran out, or its lease already ran out. Whatever the holder does
    now, it does without the lock."""


_ERRNO = {"unreachable": errno.ENOENT, "denied": errno.EACCES, "io": errno.EIO}


def from_failure(lock: Optional["LockFile"], failure: BaseException) -> Error:
    """The native module's ``Failure(kind, path, message, text, refusal)`` as ours."""
    kind, path, message, text, refusal = failure.args
    if kind == "unable-to-acquire" or kind == "unable-to-release":
        if lock is None:
            from ._lock import LockFile

            lock = LockFile(path)
        cls = UnableToAcquireLockError if kind == "unable-to-acquire" else UnableToReleaseLockError
        return cls(lock, refusal)
    if kind == "lost":
        return LockLostError(kind, path, message, text)
    return LockFileError(kind, path, message, text)
