// The portable component (lockfile-wasi.wasm) in plain Node, without the
// package: transpiled by jco into test/jco/ (scripts/transpile-wasi.js) and
// run on @bytecodealliance/preview2-shim, as any JavaScript application could
// (README, "Plugins"). The native CLI ($LOCKFILE_BIN) sees its lock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { _setPreopens } from "@bytecodealliance/preview2-shim/filesystem";

test("lockfile-wasi.wasm transpiled by jco locks for this Node process", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "lockfile-jco-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // The component sees only what is preopened: the lock's directory, and
  // /proc to judge whether owners run. Before the module is imported.
  _setPreopens({ [dir]: dir, "/proc": "/proc" });
  const { lockfile } = await import("./jco/lockfile-wasi.js");
  const path = join(dir, "portable.lock");
  const lock = new lockfile.LockFile(path);
  lock.acquire(false, false);
  assert.equal(lock.pid(), process.pid);
  const bin = process.env.LOCKFILE_BIN;
  assert.ok(bin && existsSync(bin), `LOCKFILE_BIN must name the lockfile CLI (${bin})`);
  const other = spawn("sleep", ["600"], { stdio: "ignore" });
  t.after(() => other.kill());
  const status = JSON.parse(
    spawnSync(bin, ["status", "--json", "--pid", String(other.pid), path], { encoding: "utf8" }).stdout,
  );
  assert.equal(status.pid, process.pid);
  assert.equal(status.verdict, "held");
  // The component's errors are thrown with their WIT case as the payload.
  const taken = new lockfile.LockFile(join(dir, "taken.lock"));
  assert.equal(spawnSync(bin, ["acquire", "--pid", String(other.pid), join(dir, "taken.lock")]).status, 0);
  assert.throws(() => taken.acquire(false, false), (e) => e.payload?.tag === "unable-to-acquire");
  lock.release(false);
  assert.equal(existsSync(path), false);
  assert.ok(!readdirSync(dir).includes("portable.lock"));
});
