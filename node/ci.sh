#!/usr/bin/env bash
# Builds the Node package's native addon (a member of the Cargo workspace: it
# reuses the wasmtime the test command just compiled), packs the package with
# `npm pack`, installs the tarball into a fresh project and runs the package's
# tests there, as a user would; then runs the portable component under plain
# Node (jco + preview2-shim) from this directory. The harness runs this from
# `cargo test` (tests/harness/languages.rs), with LOCKFILE_WASI_COMPONENT and
# LOCKFILE_BIN naming what that build produced. Everything it makes stays in
# node/node_modules, node/lockfile.node, node/test/jco and target/node-*.
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

# Pack, and install the tarball into a fresh project (no registry needed:
# the package has no dependencies).
pack=../target/node-pack
consumer=../target/node-consumer
rm -rf "$pack" "$consumer"
mkdir -p "$pack" "$consumer"
tarball="$(npm pack --silent --pack-destination "$pack")"
cat > "$consumer/package.json" <<'JSON'
{ "name": "lockfile-node-consumer", "private": true, "type": "module" }
JSON
(cd "$consumer" && npm install --no-audit --no-fund --loglevel=error --offline "../node-pack/$tarball" >&2)
cp test/lockfile.test.js "$consumer/"
(cd "$consumer" && TSC="$OLDPWD/node_modules/.bin/tsc" node --test lockfile.test.js)

node scripts/transpile-wasi.js
node --test test/jco.test.js
