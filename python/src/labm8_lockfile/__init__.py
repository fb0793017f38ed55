"""labm8's ``LockFile``, run by the sandboxed lockfile component.

A drop-in replacement for ``labm8.lockfile``::

    from labm8_lockfile import LockFile   # instead of: from labm8.lockfile import LockFile

    with LockFile("/tmp/nightly.lock"):
        ...  # the critical section

The lock logic is the lockfile WebAssembly component, embedded by the Rust
host library in this package's native module (``labm8_lockfile._native``):
each lock gets a sandbox that sees only its directory. The owner of every
lock is this Python process. Unlike labm8, a lock is judged by more than its
pid (a recycled pid, a previous boot, another host are told apart), and two
processes racing for a lock never both get it.

Beyond labm8: ``acquire(timeout=...)`` waits, ``lease=`` and :meth:`LockFile.refresh`
for locks shared across hosts, fencing tokens (``token=True``,
:attr:`LockFile.token`), :meth:`LockFile.status`, and asyncio
(``await lock.acquire_async(...)``, ``async with lock``).
"""

from ._errors import Error, LockFileError, LockLostError, Owner, Status
from ._lock import LockFile, UnableToAcquireLockError, UnableToReleaseLockError

__all__ = [
    "Error",
    "LockFile",
    "LockFileError",
    "LockLostError",
    "Owner",
    "Status",
    "UnableToAcquireLockError",
    "UnableToReleaseLockError",
]
