"""The portable component (lockfile-wasi.wasm: the lock logic with a
`process` provider made of WASI alone) in another runtime: wasmtime-py,
through its public API only. The package does not use wasmtime-py; this
proves the component runs outside our Rust host, and that what it writes is
the lock every other front end sees."""

import json
import os
import subprocess

import pytest

try:
    import wasmtime
    import wasmtime.component as wc
except ImportError as missing:  # fail, never skip: this test proves portability
    raise ImportError(
        "wasmtime-py is a test dependency: pip install './python[test]' (python/ci.sh does)"
    ) from missing

INTERFACE = "labm8:lockfile/lockfile@0.3.0"


@pytest.fixture(scope="module")
def component_path():
    path = os.environ.get("LOCKFILE_WASI_COMPONENT")
    if not path or not os.path.isfile(path):
        pytest.fail(
            "LOCKFILE_WASI_COMPONENT must name lockfile-wasi.wasm (the harness sets it; "
            "`cargo build` makes it under target/): got {!r}".format(path)
        )
    return path


class Sandbox:
    """The component instantiated by wasmtime-py, seeing one directory and /proc."""

    def __init__(self, component_path, directory):
        engine = wasmtime.Engine()
        component = wc.Component.from_file(engine, component_path)
        linker = wc.Linker(engine)
        linker.add_wasip2()
        self.store = wasmtime.Store(engine)
        wasi = wasmtime.WasiConfig()
        wasi.preopen_dir(directory, directory)
        wasi.preopen_dir("/proc", "/proc", False)
        self.store.set_wasi(wasi)
        self.instance = linker.instantiate(self.store, component)
        self.iface = self.instance.get_export_index(self.store, INTERFACE)
        assert self.iface is not None, "the component exports " + INTERFACE

    def call(self, name, *args):
        index = self.instance.get_export_index(self.store, name, self.iface)
        assert index is not None, "the component exports " + name
        func = self.instance.get_func(self.store, index)
        result = func(self.store, *args)
        func.post_return(self.store)
        if isinstance(result, wc.Variant):  # an error case of a `result`
            raise AssertionError("{}: {} {}".format(name, result.tag, result.payload))
        return result


def test_wasmtime_py_runs_the_portable_component(tmp_path, component_path, lockfile_bin):
    path = str(tmp_path / "portable.lock")
    box = Sandbox(component_path, str(tmp_path))
    lock = box.call("[constructor]lock-file", path)
    assert box.call("[method]lock-file.is-locked", lock) is False
    box.call("[method]lock-file.acquire", lock, False, False)
    assert box.call("[method]lock-file.owned-by-self", lock) is True
    assert box.call("[method]lock-file.pid", lock) == os.getpid()
    # The native CLI, from another process, sees this process holding it.
    out = subprocess.run(
        [lockfile_bin, "status", "--json", "--pid", "1", path], capture_output=True, text=True
    )
    status = json.loads(out.stdout)
    assert status["pid"] == os.getpid()
    assert status["verdict"] == "held"
    assert status["cause"] == "running"
    box.call("[method]lock-file.release", lock, False)
    assert not os.path.exists(path)
    out = subprocess.run([lockfile_bin, "status", "--json", path], capture_output=True, text=True)
    assert json.loads(out.stdout)["verdict"] == "unlocked"
