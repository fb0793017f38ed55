"""labm8's ``LockFile``, run by the sandboxed lockfile component.

A drop-in replacement for ``labm8.lockfile``::

    from labm8_lockfile import LockFile   # instead of: from labm8.lockfile import LockFile

    with LockFile("/tmp/nightly.lock"):
        ...  # the critical section

The lock logic is the lockfile WebAssembly component (``lockfile-wasi.wasm``:
the library composed with a ``process`` provider that reads ``/proc``), run
by wasmtime. Each directory that holds locks gets its own sandbox, which sees
that directory and, read-only, ``/proc``. The owner of every lock is this
Python process. Unlike labm8, a lock is judged by more than its pid: a
recycled pid, a previous boot, another host are told apart, and two
processes racing for a lock never both get it.
"""

import atexit
import datetime
import os
import threading
import weakref
from ctypes import byref, pointer
from pathlib import Path
from typing import Any, Dict, NamedTuple, Optional, Tuple

import wasmtime
import wasmtime.component as wc
from wasmtime import _ffi as ffi
from wasmtime.component._enter import enter_wasm

__all__ = [
    "Error",
    "LockFile",
    "LockFileError",
    "Owner",
    "Status",
    "UnableToAcquireLockError",
    "UnableToReleaseLockError",
]

_HERE = Path(__file__).resolve().parent
_INTERFACE = "labm8:lockfile/lockfile@0.2.0"


class Error(Exception):
    """labm8's base class of lock file errors."""


class _Refused(Error):
    _what = ""

    def __init__(self, lock: "LockFile", refusal: Any = None) -> None:
        super().__init__()
        self.lock = lock
        #: The owner's pid, the verdict (``held``, ``stale``, ``foreign``),
        #: its cause as data and the reason as a sentence.
        self.pid: Optional[int] = refusal.owner.pid if refusal is not None else None
        self.verdict: Optional[str] = refusal.verdict if refusal is not None else None
        self.cause: Optional[str] = refusal.cause if refusal is not None else None
        self.reason: Optional[str] = refusal.reason if refusal is not None else None
        self._date = _to_datetime(refusal.owner.date) if refusal is not None else None

    def __str__(self) -> str:
        # labm8's three lines, then why.
        date = self._date.date() if self._date is not None else None
        text = (
            "Unable to {} file lock owned by a different process.\n"
            "Lock acquired by process {} on {}.\n"
            "Lock path: {}"
        ).format(self._what, self.pid, date, self.lock.path)
        if self.reason:
            text += "\nWhy: {} ({})".format(self.reason, self.verdict)
        return text


class UnableToAcquireLockError(_Refused):
    """labm8's error: another owner holds the lock."""

    _what = "acquire"


class UnableToReleaseLockError(_Refused):
    """labm8's error: the lock belongs to another owner."""

    _what = "release"


class LockFileError(Error):
    """Any other failure, with the path and what is wrong.

    ``kind`` is one of ``malformed`` (the file cannot be parsed; it is left
    alone, only ``force`` replaces it), ``not-a-file``, ``unreachable`` (no
    such directory, or ``..``), ``denied``, ``invalid-identity``,
    ``contended`` (try again) and ``io``.
    """

    def __init__(self, kind: str, path: str, message: str) -> None:
        super().__init__("{}: {}".format(path, message))
        self.kind = kind
        self.path = path
        self.message = message


class Owner(NamedTuple):
    """Who a lock file names."""

    pid: int
    acquired: datetime.datetime
    hostname: Optional[str]


class Status(NamedTuple):
    """How a lock stands for this process, and why."""

    path: str
    owner: Optional[Owner]
    verdict: str
    cause: str
    reason: str


def _to_datetime(dt: Any) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(dt.seconds + dt.nanoseconds / 1e9)


def _to_owner(owner: Any) -> Optional[Owner]:
    if owner is None:
        return None
    return Owner(owner.pid, _to_datetime(owner.date), owner.hostname)


class _Datetime:
    __slots__ = ("seconds", "nanoseconds")

    def __init__(self, seconds: int, nanoseconds: int) -> None:
        self.seconds = seconds
        self.nanoseconds = nanoseconds


class _Func:
    """A component function whose types are looked up once, not per call:
    ``wasmtime.component.Func.__call__`` asks for the function's type on
    every call, and lifting a ``result`` asks for its cases again; together
    more than the rest of the Python side of a call."""

    __slots__ = ("_func", "_params", "_result", "_ok")

    def __init__(self, store: wasmtime.Store, func: wc.Func) -> None:
        ty = func.type(store)
        self._func = func._func
        self._params = [t for _, t in ty.params]
        self._result = ty.result
        # The ok type of a `result` that lifts untagged (as all of ours do):
        # an `ok` is lifted straight from it; an `err` takes the general path.
        self._ok: Any = None
        if isinstance(ty.result, wc.ResultType) and not ty.result._tagged():
            self._ok = ty.result.ok or False

    def __call__(self, store: wasmtime.Store, *params: Any) -> Any:
        n = len(params)
        param_capi = (ffi.wasmtime_component_val_t * n)()
        done = 0
        try:
            for ty, val in zip(self._params, params):
                ty.convert_to_c(store, val, pointer(param_capi[done]))
                done += 1
            result = ffi.wasmtime_component_val_t()
            context = store._context()
            enter_wasm(
                lambda: ffi.wasmtime_component_func_call(
                    byref(self._func), context, param_capi, n, byref(result), 1
                )
            )
        finally:
            for i in range(done):
                ffi.wasmtime_component_val_delete(byref(param_capi[i]))
        ok = self._ok
        if ok is not None and result.of.result.is_ok:
            boxed = result.of.result.val
            if ok is False or not boxed:
                return None
            payload = ok.convert_from_c(boxed.contents)
            # As wasmtime's own lifting does: the payload is Python's now,
            # free the box without its (moved) contents.
            boxed.contents.kind = ffi.WASMTIME_COMPONENT_BOOL
            boxed.contents.of.boolean = False
            ffi.wasmtime_component_val_delete(boxed)
            return payload
        return self._result.convert_from_c(result)


class _Runtime:
    """The engine and the component, loaded once per process."""

    def __init__(self) -> None:
        self.engine = wasmtime.Engine()
        self.component = self._load()
        self.linker = wc.Linker(self.engine)
        self.linker.add_wasip2()

    def _load(self) -> wc.Component:
        precompiled = _HERE / "lockfile-wasi.cwasm"
        if precompiled.is_file():
            try:
                return wc.Component.deserialize_file(self.engine, str(precompiled))
            except wasmtime.WasmtimeError:
                pass  # built on another CPU or by another wasmtime: compile instead
        wasm = _HERE / "lockfile-wasi.wasm"
        if not wasm.is_file():
            raise Error(
                "the lockfile component is missing from the package ({}): "
                "reinstall labm8-lockfile".format(wasm)
            )
        return wc.Component.from_file(self.engine, str(wasm))


class _Sandbox:
    """One instance of the component, which sees one directory (and /proc)."""

    def __init__(self, runtime: _Runtime, directory: str) -> None:
        self.store = wasmtime.Store(runtime.engine)
        wasi = wasmtime.WasiConfig()
        wasi.preopen_dir(directory, directory)
        if os.path.isdir("/proc"):
            wasi.preopen_dir("/proc", "/proc", False)
        self.store.set_wasi(wasi)
        self.mutex = threading.RLock()
        instance = runtime.linker.instantiate(self.store, runtime.component)
        iface = instance.get_export_index(self.store, _INTERFACE)
        if iface is None:
            raise Error("the lockfile component does not export " + _INTERFACE)

        def func(name: str) -> _Func:
            index = instance.get_export_index(self.store, name, iface)
            found = instance.get_func(self.store, index) if index is not None else None
            if found is None:
                raise Error("the lockfile component lacks " + name)
            return _Func(self.store, found)

        self.new = func("[constructor]lock-file")
        self.acquire = func("[method]lock-file.acquire")
        self.release = func("[method]lock-file.release")
        self.pid = func("[method]lock-file.pid")
        self.date = func("[method]lock-file.date")
        self.is_locked = func("[method]lock-file.is-locked")
        self.owned_by_self = func("[method]lock-file.owned-by-self")
        self.status = func("[method]lock-file.status")
        self.read = func("[static]lock-file.read")
        self.write = func("[static]lock-file.write")


_lock = threading.Lock()
_runtime: Optional[_Runtime] = None
_open: "weakref.WeakSet[LockFile]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for lock in list(_open):
        try:
            lock.close()
        except Exception:  # noqa: BLE001 - the interpreter is going away
            pass
_sandboxes: Dict[str, _Sandbox] = {}


def _sandbox(directory: str) -> _Sandbox:
    global _runtime
    with _lock:
        found = _sandboxes.get(directory)
        if found is None:
            if _runtime is None:
                _runtime = _Runtime()
            found = _Sandbox(_runtime, directory)
            _sandboxes[directory] = found
        return found


def _locate(path: Any) -> Tuple[str, _Sandbox]:
    full = os.path.abspath(os.path.expanduser(os.fspath(path)))
    directory = os.path.dirname(full)
    if not os.path.isdir(directory):
        raise LockFileError(
            "unreachable", full, "its directory `{}` does not exist".format(directory)
        )
    return full, _sandbox(directory)


def _check(lock: Optional["LockFile"], value: Any) -> Any:
    """The ok value of a ``result``; an ``err`` (a Variant) raised as ours."""
    if not isinstance(value, wc.Variant):
        return value
    tag, payload = value.tag, value.payload
    if tag == "unable-to-acquire":
        raise UnableToAcquireLockError(lock or LockFile(payload.path), payload)
    if tag == "unable-to-release":
        raise UnableToReleaseLockError(lock or LockFile(payload.path), payload)
    raise LockFileError(tag, payload.path, payload.message)


class LockFile:
    """A lock file at ``path``: labm8's ``LockFile``.

    Attributes:
        path (str): the path as given, with ``~`` expanded (as labm8 keeps it).
    """

    def __init__(self, path: Any) -> None:
        self.path = os.path.expanduser(os.fspath(path))
        self._box: Optional[_Sandbox] = None
        self._handle: Any = None

    def _call(self, name: str, *args: Any) -> Any:
        # The sandbox is found on first use, as labm8 touches nothing until then.
        box = self._box
        if box is None:
            full, box = _locate(self.path)
            with box.mutex:
                self._handle = box.new(box.store, full)
            self._box = box
            _open.add(self)
        with box.mutex:
            return _check(self, getattr(box, name)(box.store, self._handle, *args))

    def _query(self, name: str, absent: Any) -> Any:
        # labm8 answers "not locked" for a lock whose directory is missing.
        try:
            return self._call(name)
        except LockFileError as e:
            if e.kind == "unreachable" and not os.path.isdir(os.path.dirname(e.path)):
                return absent
            raise

    @property
    def pid(self) -> Optional[int]:
        """The owner's pid; None when the lock is not held."""
        return self._query("pid", None)

    @property
    def date(self) -> Optional[datetime.date]:
        """The day the lock was acquired (labm8's ``datetime.date``); None when not held."""
        acquired = self.acquired
        return acquired.date() if acquired is not None else None

    @property
    def acquired(self) -> Optional[datetime.datetime]:
        """When the lock was acquired, to the microsecond; None when not held."""
        dt = self._query("date", None)
        return _to_datetime(dt) if dt is not None else None

    @property
    def islocked(self) -> bool:
        """Whether a lock file exists."""
        return self._query("is_locked", False)

    @property
    def owned_by_self(self) -> bool:
        """Whether this process holds the lock."""
        return self._query("owned_by_self", False)

    def status(self) -> Status:
        """The owner, the verdict (``unlocked``, ``owned-by-self``, ``held``,
        ``stale``, ``foreign``, ``malformed``), its cause and the reason."""
        s = self._call("status")
        return Status(s.path, _to_owner(s.owner), s.verdict, s.cause, s.reason)

    @property
    def verdict(self) -> str:
        """How the lock stands for this process (see :meth:`status`)."""
        return self.status().verdict

    @property
    def reason(self) -> str:
        """Why, as a sentence (see :meth:`status`)."""
        return self.status().reason

    def acquire(self, replace_stale: bool = False, force: bool = False) -> "LockFile":
        """Claims the lock: when unheld, when this process holds it already (a
        no-op), with ``force`` always, with ``replace_stale`` when its owner
        is gone. Returns self.

        Raises:
            UnableToAcquireLockError: another owner holds it.
            LockFileError: anything else (a malformed file, a missing directory).
        """
        self._call("acquire", bool(replace_stale), bool(force))
        return self

    def release(self, force: bool = False) -> None:
        """Releases the lock: a no-op when unheld; with ``force``, whoever holds it.

        Raises:
            UnableToReleaseLockError: another owner holds it.
            LockFileError: anything else.
        """
        self._call("release", bool(force))

    def close(self) -> None:
        """Lets the component clean up after this handle: a handle that
        acquires and releases repeatedly keeps a spare file beside the lock,
        removed here. Does not release the lock (labm8's rule). Called when
        the object is collected, and for every open handle at exit."""
        box, handle = self._box, self._handle
        self._box, self._handle = None, None
        if box is not None and handle is not None:
            with box.mutex:
                handle.drop(box.store)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - nothing to report to at collection
            pass

    def __repr__(self) -> str:
        return self.path

    def __enter__(self) -> "LockFile":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    @staticmethod
    def read(path: Any) -> Tuple[Optional[int], Optional[datetime.date]]:
        """labm8's ``LockFile.read``: ``(pid, date)`` of the owner at
        ``path``, or ``(None, None)`` when unlocked."""
        try:
            full, box = _locate(path)
        except LockFileError:
            return None, None  # no directory, so no lock: labm8's answer
        with box.mutex:
            owner = _check(None, box.read(box.store, full))
        if owner is None:
            return None, None
        return owner.pid, _to_datetime(owner.date).date()

    @staticmethod
    def write(path: Any, pid: int, timestamp: Any) -> None:
        """labm8's ``LockFile.write``: plants ``PID TIMESTAMP`` at ``path``,
        replacing a regular file there atomically. ``timestamp``: Unix
        seconds (``time.time()``) or a ``datetime``."""
        if isinstance(timestamp, datetime.datetime):
            timestamp = timestamp.timestamp()
        seconds = float(timestamp)
        if not seconds >= 0:
            raise ValueError("timestamp {!r} is before 1970".format(timestamp))
        whole = int(seconds)
        nanos = min(int(round((seconds - whole) * 1e9)), 999_999_999)
        full, box = _locate(path)
        with box.mutex:
            _check(None, box.write(box.store, full, int(pid), _Datetime(whole, nanos)))

