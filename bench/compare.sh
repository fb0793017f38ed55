#!/usr/bin/env bash
# Whole-process and peer comparisons, side by side, in one run on this machine.
# Prints `BENCH <name> <median> <unit>` and `RATIO <name> <value>` lines.
# Installs what it needs: labm8 0.1.2 and filelock (PyPI, in target/bench-venv).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x target/bench-venv/bin/python ]; then
  python3 -m venv target/bench-venv
fi
target/bench-venv/bin/pip install -q --disable-pip-version-check labm8==0.1.2 filelock==4.3.2 >&2 || true

rustup target add wasm32-wasip2 >&2
cargo build --release --bin lockfile --examples >&2
# This project's Python package, built as users build it (`pip install
# ./python`: maturin, the release profile, the same target/).
target/bench-venv/bin/pip install -q --disable-pip-version-check --force-reinstall ./python >&2
bin=target/release/lockfile
# The binary as `scripts/install` makes it (static on Linux, musl on x86-64,
# profile-guided), and the floor and native limit built alike (with the same
# counts: they share the code that loads the component).
installed="$(scripts/install --build-only --examples)"
installed_examples="$(dirname "$installed")/examples"
work="$(mktemp -d)"
sleep 3600 & holder=$!
trap 'kill $holder 2>/dev/null; rm -rf "$work"' EXIT

# Creating a file costs more the more files were deleted in the last ~35 s:
# ext4 without a journal (as on this VM) skips recently freed inodes one by
# one when it allocates (`recently_deleted` in fs/ext4/ialloc.c). A raw
# create+unlink loop slows from 19 to 32 us over 12 s of churn and recovers
# after 40 s idle. Each in-process group starts after a quiet spell, so no
# figure pays for the churn of the one before it.
cool() { sleep "${COOLDOWN:-40}"; }

# Whole processes, interleaved round by round (bench/processes.py): flock,
# `lockfile acquire/release/status/run`, the floor (load and instantiate the
# component, no lock work: bench/floor.rs) and the limit (the same
# command line over lockfile-core natively, no sandbox: bench/native.rs).
# First as installed (the README's figures), then as `cargo build --release`
# links it (dynamically), its names prefixed `cargo_build_`. Each binary is
# measured as a copy, as `cargo install` installs it: a file as the linker
# wrote it runs 7-14% slower here until its pages leave the page cache
# (bench/README.md, "Start-up, fifth pass").
copies() {
  mkdir -p "$work/$1"
  cp "$2" "$3" "$4" "$work/$1/"
}
copies installed "$installed" "$installed_examples/floor" "$installed_examples/native"
copies built "$bin" target/release/examples/floor target/release/examples/native
cool
python3 bench/processes.py "$work/installed/lockfile" "$work/installed/floor" "$work/installed/native" \
  "${ROUNDS:-300}" | tee "$work/processes.txt"
cool
python3 bench/processes.py "$work/built/lockfile" "$work/built/floor" "$work/built/native" \
  "${ROUNDS:-300}" cargo_build_ | tee -a "$work/processes.txt"
ratio() { python3 -c "print('RATIO $1 %.2f' % ($2 / $3))"; }

# In-process cycles: the component and its native baseline (criterion), the
# Python peers, all now.
cool
cargo bench --bench lock -- 'cycle/' 2>/dev/null | tee "$work/criterion.txt" >&2
crit_us() { # median of a criterion group line, in microseconds
  # Criterion prints `NAME time: [low unit mid unit high unit]`, or NAME
  # alone on a line when it is long, with `time:` on the next.
  awk -v name="$1" '
      $1 == name && $2 == "time:" {v=$5; u=$6}
      prev == name && $1 == "time:" {v=$4; u=$5}
      {prev=$1}
      END { if (u ~ /^ns/) v /= 1000; else if (u ~ /^ms/) v *= 1000; print v }' "$work/criterion.txt"
}
comp=$(crit_us cycle/component)
native=$(crit_us cycle/native-core)
raw=$(crit_us cycle/raw-o-excl)
composed=$(crit_us cycle/plugin-composed)
hosted=$(crit_us cycle/plugin-hosted)
echo "BENCH component_cycle $comp us"
echo "BENCH native_core_cycle $native us"
echo "BENCH raw_o_excl_cycle $raw us"
echo "BENCH plugin_composed_cycle $composed us"
echo "BENCH plugin_hosted_cycle $hosted us"
ratio component_vs_native_core "$comp" "$native"
ratio component_vs_raw_o_excl "$comp" "$raw"
ratio plugin_composed_vs_component "$composed" "$comp"
ratio plugin_hosted_vs_component "$hosted" "$comp"
cool
target/bench-venv/bin/python bench/peers.py "$work" | tee "$work/peers.txt"
# The Node package (its native addon, release profile) against
# proper-lockfile 4.1.2, in-process and as whole processes.
cool
(cd node && npm ci --no-audit --no-fund --loglevel=error >&2 \
  && LOCKFILE_NODE_PROFILE=release npm run --silent build >&2)
node bench/node-cycle.mjs "$work" | tee -a "$work/peers.txt"
while read -r _ name value _; do
  ratio "${name%_cycle}_vs_component" "$value" "$comp"
done < <(grep '^BENCH [a-z0-9_]*_cycle ' "$work/peers.txt")
peer() { awk -v n="$1" '$1 == "BENCH" && $2 == n {print $3}' "$work/peers.txt"; }
ratio node_lockfile_async_vs_proper_lockfile_cycle "$(peer node_lockfile_async_cycle)" "$(peer proper_lockfile_cycle)"
python3 -c "print('BENCH node_lockfile_process_over_node %.1f ms' % ($(peer node_lockfile_process) - $(peer node_empty_process)))"
# The Python package against the Python peers, from the same interleaved run.
if [ -n "$(peer labm8_lockfile_cycle)" ]; then
  ratio labm8_lockfile_vs_filelock_cycle "$(peer labm8_lockfile_cycle)" "$(peer filelock_cycle)"
  [ -z "$(peer labm8_cycle)" ] ||
    ratio labm8_lockfile_vs_labm8_cycle "$(peer labm8_lockfile_cycle)" "$(peer labm8_cycle)"
  python3 -c "print('BENCH labm8_lockfile_import %.2f ms' % ($(peer import_labm8_lockfile) - $(peer python_pass)))"
  [ -z "$(peer labm8_process)" ] ||
    ratio labm8_lockfile_vs_labm8_process "$(peer labm8_lockfile_process)" "$(peer labm8_process)"
fi
# Locks in etcd: `lockfile run` against `etcdctl lock`, and the library's
# cycle against etcd-client's lock and unlock, on 1- and 3-member clusters
# bench/etcd.py starts.
cool
python3 bench/etcd.py "$installed" "${ETCD_ROUNDS:-100}" "$installed_examples/etcd_cycle"
