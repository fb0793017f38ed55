"""Puts the component into the package as it is built.

The component is lockfile-wasi.wasm (the lock logic with a `process`
provider built from WASI alone), produced by `cargo build` at the repository
root: $LOCKFILE_WASI_COMPONENT, else the newest of
../target/{debug,release}/lockfile-wasi.wasm. It is copied into the package
and precompiled for this machine by the pinned wasmtime; a package whose
precompiled copy does not load (another CPU, another wasmtime) compiles the
.wasm instead.
"""

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def find_component() -> Path:
    given = os.environ.get("LOCKFILE_WASI_COMPONENT")
    candidates = (
        [Path(given)]
        if given
        else [HERE.parent / "target" / p / "lockfile-wasi.wasm" for p in ("debug", "release")]
    )
    found = sorted(
        (p for p in candidates if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True
    )
    if not found:
        raise SystemExit(
            "labm8-lockfile: no lockfile-wasi.wasm at "
            + " or ".join(str(p) for p in candidates)
            + ": run `cargo build` at the repository root first (or set LOCKFILE_WASI_COMPONENT)"
        )
    return found[0]


class BuildWithComponent(build_py):
    def run(self) -> None:
        super().run()
        component = find_component()
        package = Path(self.build_lib) / "labm8_lockfile"
        package.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(component, package / "lockfile-wasi.wasm")
        import wasmtime
        import wasmtime.component

        compiled = wasmtime.component.Component.from_file(wasmtime.Engine(), str(component))
        (package / "lockfile-wasi.cwasm").write_bytes(bytes(compiled.serialize()))


setup(cmdclass={"build_py": BuildWithComponent})
