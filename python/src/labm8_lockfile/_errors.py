"""labm8's exception classes that need no lock handle, and the records
(``Owner``, ``Status``) that the native module's tuples become."""

from __future__ import annotations

import collections
import datetime
import errno
TYPE_CHECKING = False  # as `typing.TYPE_CHECKING`, without importing typing

if TYPE_CHECKING:  # typing costs ~10 ms to import: for type checkers only
    from typing import Any, NamedTuple, Optional, Tuple

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
