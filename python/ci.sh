#!/usr/bin/env bash
# Builds the Python package's wheel with maturin, installs it into a fresh
# virtual environment whose PATH has no Rust (as on a user's machine), and
# runs the package's tests with pytest. The harness runs this from `cargo
# test` (tests/harness/languages.rs), with LOCKFILE_WASI_COMPONENT (the
# portable component, for the test that runs it under wasmtime-py) and
# LOCKFILE_BIN (the native CLI) naming what that build produced.
#
# The wheel is built with the `dev` profile by default: the native module is a
# member of the Cargo workspace, so it reuses the wasmtime the test command
# just compiled. LOCKFILE_PY_PROFILE=release builds what `pip install` builds.
# Everything stays under target/: maturin in target/py-tools, the wheel in
# target/py-wheels, the test environment in target/py-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v python3 >/dev/null; then
  echo "python/ci.sh: python3 is missing: install Python 3.9 or newer (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi
fresh_venv() {
  rm -rf "$1"
  mkdir -p "$(dirname "$1")"
  if ! python3 -m venv "$1" >&2; then
    rm -rf "$1"
    echo "python/ci.sh: cannot create a virtual environment: install python3-venv (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
}
pip_flags=(--quiet --disable-pip-version-check)

tools=target/py-tools
if ! "$tools/bin/maturin" --version 2>/dev/null | grep -qx 'maturin 1.16.0'; then
  fresh_venv "$tools"
  "$tools/bin/python" -m pip install "${pip_flags[@]}" maturin==1.16.0 >&2
fi
rm -rf target/py-wheels
"$tools/bin/maturin" build --quiet -m python/Cargo.toml --profile "${LOCKFILE_PY_PROFILE:-dev}" \
  --interpreter python3 --out target/py-wheels >&2
wheel=(target/py-wheels/labm8_lockfile-*.whl)
[ -f "${wheel[0]}" ] || { echo "python/ci.sh: maturin made no wheel" >&2; exit 1; }

venv=target/py-venv
fresh_venv "$venv"
# No cargo or rustc on PATH from here on: the wheel must install and run
# without Rust.
norust_path="$venv/bin:/usr/local/bin:/usr/bin:/bin"
PATH="$norust_path" "$venv/bin/python" -m pip install "${pip_flags[@]}" "${wheel[0]}[test]" >&2
# labm8 0.1.2 for the interop tests: its lockfile needs only these; its
# declared numpy, pandas, scipy and matplotlib (400 MB) it never imports
# there (tests/conftest.py skips the import-time check for them).
PATH="$norust_path" "$venv/bin/python" -m pip install "${pip_flags[@]}" \
  humanize==4.17.0 Send2Trash==2.2.0 six==1.17.0 >&2
PATH="$norust_path" "$venv/bin/python" -m pip install "${pip_flags[@]}" --no-deps labm8==0.1.2 >&2
export LOCKFILE_WASI_COMPONENT="${LOCKFILE_WASI_COMPONENT:-$PWD/target/debug/lockfile-wasi.wasm}"
cd python
PATH="$norust_path" exec "../$venv/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
