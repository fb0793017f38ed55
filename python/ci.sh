#!/usr/bin/env bash
# Installs the Python package (with its test extras) into a virtual
# environment the project owns, target/py-venv, and runs its tests with
# pytest. The harness runs this from `cargo test` (tests/harness/languages.rs),
# with LOCKFILE_WASI_COMPONENT and LOCKFILE_BIN naming what that build
# produced. Nothing outside the project is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v python3 >/dev/null; then
  echo "python/ci.sh: python3 is missing: install Python 3.9 or newer (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi
venv=target/py-venv
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p target
  if ! python3 -m venv "$venv" >&2; then
    rm -rf "$venv"
    echo "python/ci.sh: cannot create a virtual environment: install python3-venv (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
fi
# Reinstall every time: the package carries the component, which the build
# just produced.
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" "./python[test]" >&2
# labm8 0.1.2 for the interop tests: its lockfile needs only these; its
# declared numpy, pandas, scipy and matplotlib (400 MB) it never imports
# there (tests/conftest.py skips the import-time check for them).
"${pip[@]}" humanize==4.17.0 Send2Trash==2.2.0 six==1.17.0 >&2
"${pip[@]}" --no-deps labm8==0.1.2 >&2
"${pip[@]}" --force-reinstall --no-deps ./python >&2
exec "$venv/bin/python" -m pytest -q python/tests "$@"
