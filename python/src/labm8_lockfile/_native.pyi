"""The native module: the lockfile component embedded by the Rust host
library. Private: use :class:`labm8_lockfile.LockFile`."""

from os import PathLike
from typing import Optional, Tuple, Union

_Path = Union[str, "PathLike[str]"]
#: (pid, seconds, nanoseconds, hostname, token)
_Owner = Tuple[int, int, int, Optional[str], Optional[int]]

__version__: str

class Failure(Exception):
    """A lock operation failed. ``args``: ``(kind, path, message, text,
    refusal)``, where ``refusal`` is ``(owner, verdict, cause, reason)``
    for ``unable-to-acquire`` and ``unable-to-release``, else None."""

class Lock:
    """One lock file, opened in its own sandbox on first use. Each method is
    one call into the sandbox, made without the GIL; safe from several
    threads and in a child after ``fork`` (which acts for itself)."""

    def __init__(self, path: _Path) -> None: ...
    def acquire(
        self, replace_stale: bool, force: bool, lease_seconds: Optional[float], token: bool
    ) -> None:
        """One attempt; ``force`` wins over ``replace_stale``."""
    def release(self, force: bool) -> None: ...
    def refresh(self) -> None: ...
    def pid(self) -> Optional[int]: ...
    def date(self) -> Optional[Tuple[int, int]]:
        """``(seconds, nanoseconds)`` of the acquisition; None when unlocked."""
    def is_locked(self) -> bool: ...
    def owned_by_self(self) -> bool: ...
    def token(self) -> Optional[int]: ...
    def status(self) -> Tuple[str, Optional[_Owner], str, str, str]:
        """``(path, owner, verdict, cause, reason)``."""
    def close(self) -> None:
        """Lets the component clean up after the handle; the next call opens a new one."""

class Schedule:
    """The pauses of one wait: 5 ms growing to 250 ms, within ``timeout``
    seconds (None: for ever; 0: no wait)."""

    def __init__(self, timeout: Optional[float]) -> None: ...
    @property
    def waits(self) -> bool: ...
    def pause(self, waited: float) -> Optional[float]:
        """Seconds to pause before the next attempt; None when the wait is over."""

def read(path: _Path) -> Optional[_Owner]:
    """labm8's static ``read``: the owner at ``path``, or None."""

def write(path: _Path, pid: int, seconds: int, nanos: int) -> None:
    """labm8's static ``write``: plants ``PID TIMESTAMP`` at ``path``."""
