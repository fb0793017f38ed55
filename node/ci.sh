#!/usr/bin/env bash
# Installs the Node package's pinned dependencies (npm ci), transpiles the
# component with jco-transpile and runs the package's tests with node's test runner.
# The harness runs this from `cargo test` (tests/harness/languages.rs), with
# LOCKFILE_WASI_COMPONENT and LOCKFILE_BIN naming what that build produced.
set -euo pipefail
cd "$(dirname "$0")"
for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "node/ci.sh: \`$tool\` is missing: install Node.js 20 or newer with npm (Debian: apt-get install nodejs npm)" >&2
    exit 1
  fi
done
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "node/ci.sh: Node $(node --version) is too old: the package needs Node 20 or newer" >&2
  exit 1
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
npm run --silent build
node --test test/
