// The Node package as a user installs it (node/ci.sh packs it with `npm pack`
// and installs it into a fresh project, where this file runs), against real
// files, real processes and the native `lockfile` CLI ($LOCKFILE_BIN).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  LockFile,
  LockFileError,
  LockLostError,
  UnableToAcquireLockError,
  UnableToReleaseLockError,
} from "labm8-lockfile";

const lockfileBin = process.env.LOCKFILE_BIN;

function sandbox(t) {
  const dir = mkdtempSync(join(tmpdir(), "lockfile-node-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A process that outlives the test step: a lock owner for the CLI. */
function sleeper(t) {
  const child = spawn("sleep", ["600"], { stdio: "ignore" });
  t.after(() => child.kill());
  return child;
}

function cli(args) {
  assert.ok(lockfileBin && existsSync(lockfileBin), `LOCKFILE_BIN must name the lockfile CLI (${lockfileBin})`);
  return spawnSync(lockfileBin, args, { encoding: "utf8" });
}

/** Runs an ES module in a fresh `node` (from this project), bounded. */
function nodeScript(source, timeout = 20_000) {
  return spawnSync(process.execPath, ["--input-type=module", "-e", source], {
    encoding: "utf8",
    timeout,
    cwd: process.cwd(),
  });
}

test("a cycle: acquire, inspect, release (async and sync)", async (t) => {
  const dir = sandbox(t);
  const path = join(dir, "job.lock");
  const lock = await LockFile.open(path);
  assert.equal(lock.isLocked, false);
  assert.equal(lock.pid, null);
  assert.equal(await lock.acquire(), lock);
  // labm8's first line: PID TIMESTAMP, with this process as the owner.
  const [pid, stamp] = readFileSync(path, "utf8").split(/\s+/);
  assert.equal(Number(pid), process.pid);
  assert.ok(Math.abs(Number(stamp) * 1000 - Date.now()) < 60_000);
  assert.equal(lock.isLocked, true);
  assert.equal(lock.ownedBySelf, true);
  assert.equal(lock.pid, process.pid);
  assert.ok(lock.date instanceof Date);
  const status = await lock.status();
  assert.equal(status.verdict, "owned-by-self");
  assert.equal(status.cause, "ours");
  assert.equal(status.owner.pid, process.pid);
  assert.deepEqual(lock.statusSync(), status);
  // Acquiring again is a no-op; a second handle is another holder in
  // this process, which it sees holding the lock.
  await lock.acquire();
  const other = new LockFile(path);
  assert.equal(other.ownedBySelf, false);
  assert.equal(other.pid, process.pid);
  assert.equal((await other.status()).cause, "other-holder");
  assert.equal(LockFile.read(path).pid, process.pid);
  await lock.release();
  assert.equal(existsSync(path), false);
  await lock.release(); // releasing an unheld lock is a no-op
  assert.equal(LockFile.read(path), null);
  // The same, synchronously.
  assert.equal(lock.acquireSync(), lock);
  assert.equal(lock.ownedBySelf, true);
  lock.releaseSync();
  assert.equal(existsSync(path), false);
  // `with` releases even when the work throws, and returns what it returns.
  await assert.rejects(lock.with(async () => { throw new Error("work failed"); }), /work failed/);
  assert.equal(existsSync(path), false);
  assert.equal(await lock.with(async (l) => l.ownedBySelf && 42), 42);
  assert.equal(lock.withSync(() => 7), 7);
  assert.equal(existsSync(path), false);
});

test("interop with the native CLI, both ways", async (t) => {
  const dir = sandbox(t);
  const path = join(dir, "shared.lock");
  const other = sleeper(t);
  const lock = await new LockFile(path).acquire();
  // The CLI sees this Node process holding it, and is refused.
  const status = JSON.parse(cli(["status", "--json", "--pid", String(other.pid), path]).stdout);
  assert.equal(status.pid, process.pid);
  assert.equal(status.verdict, "held");
  assert.equal(cli(["acquire", "--pid", String(other.pid), path]).status, 1);
  await lock.release();
  // The CLI takes it for another process; we are refused, and cannot release it.
  assert.equal(cli(["acquire", "--pid", String(other.pid), path]).status, 0);
  await assert.rejects(lock.acquire(), (e) => {
    assert.ok(e instanceof UnableToAcquireLockError);
    assert.ok(e instanceof LockFileError);
    assert.equal(e.pid, other.pid);
    assert.equal(e.verdict, "held");
    assert.equal(e.cause, "running");
    assert.ok(e.date instanceof Date);
    return true;
  });
  assert.throws(() => lock.acquireSync(), UnableToAcquireLockError);
  await assert.rejects(lock.release(), UnableToReleaseLockError);
  assert.equal(lock.ownedBySelf, false);
  assert.equal(lock.pid, other.pid);
  // A wait that runs out says who holds it.
  await assert.rejects(lock.acquire({ waitMs: 50 }), UnableToAcquireLockError);
  // Waiting off the main thread: the event loop keeps running while we wait,
  // the CLI releases after 300 ms, and we get it.
  const release = spawn("sh", ["-c", `sleep 0.3; exec "$0" release --pid ${other.pid} "$1"`, lockfileBin, path]);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  await lock.acquire({ waitMs: 30_000 });
  clearInterval(timer);
  assert.ok(ticks >= 10, `the event loop ran ${ticks} times during a 300 ms wait`);
  assert.equal(lock.ownedBySelf, true);
  release.kill();
  await lock.release();
});

test("a dead owner's lock is stale: replaceStale takes it over", async (t) => {
  const dir = sandbox(t);
  const path = join(dir, "stale.lock");
  const dead = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" });
  const deadPid = Number(dead.stdout.trim());
  LockFile.write(path, deadPid, new Date(Date.now() - 60_000));
  assert.equal(readFileSync(path, "utf8").split(/\s+/)[0], String(deadPid));
  const lock = new LockFile(path);
  assert.equal((await lock.status()).verdict, "stale");
  await assert.rejects(lock.acquire(), (e) => e instanceof UnableToAcquireLockError && e.verdict === "stale");
  await lock.acquire({ replaceStale: true });
  assert.equal(lock.pid, process.pid);
  await lock.release();
});

test("tokens, leases and a lost lease", async (t) => {
  const dir = sandbox(t);
  const path = join(dir, "fenced.lock");
  const lock = new LockFile(path);
  await lock.acquire({ token: true });
  assert.equal(lock.token, 1n);
  await lock.release();
  // A leased acquisition issues the next token, asked for or not.
  await lock.acquire({ leaseMs: 30_000 });
  assert.equal(lock.token, 2n);
  assert.equal((await lock.status()).owner.leaseMs, 30_000);
  await lock.refresh();
  lock.refreshSync();
  // Someone forces it away: the next refresh says the lock is lost.
  const other = sleeper(t);
  assert.equal(cli(["acquire", "--force", "--pid", String(other.pid), path]).status, 0);
  await assert.rejects(lock.refresh(), (e) => e instanceof LockLostError && e.kind === "lost");
  assert.equal(lock.token, 3n);
  assert.equal(cli(["release", "--pid", String(other.pid), path]).status, 0);
  // Tokens past 2^53 stay exact (bigint).
  writeFileSync(join(dir, ".fenced.lock.token"), "18446744073709551610\n");
  await lock.acquire({ token: true });
  assert.equal(lock.token, 18446744073709551611n);
  await lock.release();
});

test("bad input: a clear error, nothing lost", async (t) => {
  const dir = sandbox(t);
  const garbage = join(dir, "garbage.lock");
  writeFileSync(garbage, "not a lock\n");
  const lock = new LockFile(garbage);
  assert.equal((await lock.status()).verdict, "malformed");
  await assert.rejects(lock.acquire({ replaceStale: true }), (e) => e instanceof LockFileError && e.kind === "malformed");
  assert.equal(readFileSync(garbage, "utf8"), "not a lock\n");
  await lock.acquire({ force: true });
  assert.equal(lock.ownedBySelf, true);
  await lock.release();
  await assert.rejects(
    LockFile.open(join(dir, "missing", "x.lock")),
    (e) => e instanceof LockFileError && e.kind === "unreachable" && /does not exist/.test(e.message),
  );
  assert.throws(() => new LockFile(""), TypeError);
  assert.throws(() => new LockFile(join(dir, "x.lock")).acquireSync({ leaseMs: 0 }), RangeError);
  assert.throws(() => new LockFile(join(dir, "x.lock")).acquireSync({ waitMs: -1 }), RangeError);
  assert.throws(() => new LockFile(join(dir, "x.lock")).acquireSync({ waitMs: "1" }), TypeError);
  assert.throws(() => LockFile.write(join(dir, "x.lock"), -1), RangeError);
  // The forced lock was released; the refused calls left nothing behind.
  assert.deepEqual(readdirSync(dir), []);
});

test("nothing keeps the process alive, and nothing is left beside the lock", (t) => {
  const dir = sandbox(t);
  const path = join(dir, "x.lock");
  // No process.exit: the process ends when its work does, after an async
  // cycle, a timed-out wait and sync cycles; at exit, handles are closed
  // (a cycling handle keeps a spare file beside the lock until then).
  const holder = sleeper(t);
  const busy = join(dir, "busy.lock");
  assert.equal(cli(["acquire", "--pid", String(holder.pid), busy]).status, 0);
  const script = `
    import { LockFile, UnableToAcquireLockError } from "labm8-lockfile";
    const lock = await LockFile.open(${JSON.stringify(path)});
    for (let i = 0; i < 5; i++) { await lock.acquire(); await lock.release(); }
    for (let i = 0; i < 5; i++) { lock.acquireSync(); lock.releaseSync(); }
    try { await new LockFile(${JSON.stringify(busy)}).acquire({ waitMs: 50 }); }
    catch (e) { if (!(e instanceof UnableToAcquireLockError)) throw e; }
    console.log("done");
  `;
  const out = nodeScript(script);
  assert.equal(out.error, undefined, `the process did not end by itself: ${out.error}`);
  assert.equal(out.status, 0, out.stderr);
  assert.equal(out.stdout.trim(), "done");
  assert.deepEqual(readdirSync(dir).sort(), ["busy.lock"]);
  // A closed handle says so.
  const lock = new LockFile(path);
  lock.close();
  assert.throws(() => lock.acquireSync(), (e) => e instanceof LockFileError && e.kind === "closed");
});

test("require() gives the same API, from CommonJS", (t) => {
  const dir = sandbox(t);
  const path = join(dir, "cjs.lock");
  const out = spawnSync(
    process.execPath,
    [
      "-e",
      `const { LockFile, UnableToAcquireLockError } = require("labm8-lockfile");
       const lock = new LockFile(${JSON.stringify(path)}).acquireSync();
       if (!lock.ownedBySelf || typeof UnableToAcquireLockError !== "function") process.exit(2);
       lock.releaseSync();
       console.log(lock.pid === null ? "ok" : "held");`,
    ],
    { encoding: "utf8", timeout: 20_000 },
  );
  assert.equal(out.status, 0, out.stderr);
  assert.equal(out.stdout.trim(), "ok");
});

test("handles, concurrent with() calls and worker threads exclude each other", async (t) => {
  const dir = sandbox(t);
  const path = join(dir, "mutex.lock");
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  // Two handles in one process: the second is refused while the first holds.
  const a = new LockFile(path);
  const b = new LockFile(path);
  await a.acquire();
  await assert.rejects(b.acquire(), (e) => e instanceof UnableToAcquireLockError && e.cause === "other-holder");
  assert.equal(b.ownedBySelf, false);
  await assert.rejects(b.release(), UnableToReleaseLockError);
  assert.equal(a.ownedBySelf, true);
  await a.release();
  // Concurrent with() on one handle and on ten: one inside at a time.
  for (const handles of [[a], Array.from({ length: 10 }, () => new LockFile(path))]) {
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        handles[i % handles.length].with(
          async () => {
            most = Math.max(most, ++inside);
            await sleep(5);
            inside--;
          },
          { waitMs: 20_000 },
        ),
      ),
    );
    assert.equal(most, 1, `${handles.length} handle(s): ${most} inside at once`);
  }
  // A nested with() on the same handle runs inside the outer one's hold.
  await a.with(async () => {
    assert.equal(await a.with(async () => a.ownedBySelf), true);
    assert.equal(a.ownedBySelf, true, "the inner with() kept the outer's lock");
  });
  // Worker threads, each its own handles: an exact counter.
  const counter = join(dir, "counter");
  writeFileSync(counter, "0");
  const worker = `
    const { workerData, parentPort } = require("node:worker_threads");
    const { readFileSync, writeFileSync } = require("node:fs");
    const { LockFile } = require("labm8-lockfile");
    (async () => {
      for (let i = 0; i < 25; i++) {
        await new LockFile(workerData.path).with(async () => {
          const n = Number(readFileSync(workerData.counter, "utf8"));
          await new Promise((r) => setTimeout(r, 1));
          writeFileSync(workerData.counter, String(n + 1));
        }, { waitMs: 60_000 });
      }
      parentPort.postMessage("done");
    })();
  `;
  const { Worker } = await import("node:worker_threads");
  await Promise.all(
    Array.from({ length: 4 }, () => {
      const w = new Worker(worker, { eval: true, workerData: { path, counter } });
      return new Promise((resolve, reject) => {
        w.on("message", resolve);
        w.on("error", reject);
      });
    }),
  );
  assert.equal(readFileSync(counter, "utf8"), "100");
});

test("a pending wait neither holds libuv's pool nor the process at exit", async (t) => {
  const dir = sandbox(t);
  const busy = join(dir, "busy.lock");
  const holder = sleeper(t);
  assert.equal(cli(["acquire", "--pid", String(holder.pid), busy]).status, 0);
  // Eight waits pending (libuv's pool has four threads): file reads go on.
  const waits = Array.from({ length: 8 }, () => new LockFile(busy).acquire({ waitMs: 2_000 }).catch((e) => e));
  const start = Date.now();
  await new Promise((resolve, reject) =>
    import("node:fs").then((fs) => fs.readFile(busy, (e) => (e ? reject(e) : resolve()))),
  );
  assert.ok(Date.now() - start < 1_000, `a file read waited ${Date.now() - start} ms behind the waits`);
  for (const e of await Promise.all(waits)) assert.ok(e instanceof UnableToAcquireLockError);
  // process.exit() and an uncaught exception end a process that waits.
  for (const [how, code] of [["process.exit(0)", 0], ["(() => { throw new Error('boom'); })()", 1]]) {
    const begun = Date.now();
    const out = nodeScript(
      `import { LockFile } from "labm8-lockfile";
       new LockFile(${JSON.stringify(busy)}).acquire({ waitMs: Infinity });
       setTimeout(() => ${how}, 200);`,
      30_000,
    );
    assert.equal(out.error, undefined, `${how}: the process did not end: ${out.error}`);
    assert.equal(out.status, code, out.stderr);
    assert.ok(Date.now() - begun < 10_000, `${how} took ${Date.now() - begun} ms`);
  }
});

test("close() during a wait ends it, and never leaves the lock held", async (t) => {
  const dir = sandbox(t);
  const path = join(dir, "closing.lock");
  const holder = sleeper(t);
  assert.equal(cli(["acquire", "--pid", String(holder.pid), path]).status, 0);
  const lock = new LockFile(path);
  const waiting = lock.acquire({ waitMs: Infinity });
  setTimeout(() => lock.close(), 100);
  setTimeout(() => cli(["release", "--pid", String(holder.pid), path]), 300);
  await assert.rejects(waiting, (e) => e instanceof LockFileError && e.kind === "closed");
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(LockFile.read(path), null, "the closed handle took the lock");
  await assert.rejects(lock.status(), (e) => e.kind === "closed");
});

test("bad options are refused the same way, awaited or not", async (t) => {
  const dir = sandbox(t);
  const lock = new LockFile(join(dir, "x.lock"));
  for (const bad of [{ waitMs: -1 }, { waitMs: NaN }, { leaseMs: 0 }, { leaseMs: Infinity }]) {
    await assert.rejects(lock.acquire(bad), RangeError, JSON.stringify(bad));
    assert.throws(() => lock.acquireSync(bad), RangeError, JSON.stringify(bad));
  }
  for (const bad of [5000, "x", { force: "false" }, { replaceStale: 1 }]) {
    await assert.rejects(lock.acquire(bad), TypeError, JSON.stringify(bad));
  }
  assert.throws(() => new LockFile(join(dir, "trail.lock") + "/"), (e) => e instanceof LockFileError && e.kind === "unreachable");
  assert.throws(() => lock.withSync(async () => 1), TypeError);
  assert.equal(lock.isLocked, false, "withSync released what it took");
  assert.deepEqual(readdirSync(dir), []);
});

test("the TypeScript declarations describe the API", (t) => {
  const tsc = process.env.TSC;
  assert.ok(tsc && existsSync(tsc), `TSC must name TypeScript's tsc (${tsc})`);
  const dir = process.cwd();
  const file = join(dir, "types-check.ts");
  writeFileSync(
    file,
    `import { LockFile, UnableToAcquireLockError, type Status, type Owner } from "labm8-lockfile";
    async function main(): Promise<number> {
      const lock = await LockFile.open("/tmp/x.lock");
      await lock.acquire({ replaceStale: true, waitMs: 10, leaseMs: 1000, token: true });
      const token: bigint | null = lock.token;
      const status: Status = await lock.status();
      const owner: Owner | null = status.owner;
      const pid: number | null = lock.pid;
      const n: number = await lock.with(async (l) => (l.ownedBySelf ? 1 : 0));
      try { lock.acquireSync(); } catch (e) { if (e instanceof UnableToAcquireLockError) return e.pid; }
      lock.releaseSync({ force: false });
      return n + (pid ?? 0) + (owner?.pid ?? 0) + Number(token ?? 0n);
    }
    void main;
    // @ts-expect-error: waitMs is a number
    void new LockFile("/tmp/y.lock").acquire({ waitMs: "1" });
    `,
  );
  t.after(() => rmSync(file, { force: true }));
  const out = spawnSync(
    tsc,
    ["--noEmit", "--strict", "--target", "es2022", "--module", "nodenext", "--lib", "esnext", "--types", "", file],
    { encoding: "utf8" },
  );
  assert.equal(out.status, 0, out.stdout + out.stderr);
  // CommonJS TypeScript: `import x = require(...)`.
  const cts = join(dir, "types-check.cts");
  writeFileSync(
    cts,
    `import lockfile = require("labm8-lockfile");
    const lock: lockfile.LockFile = new lockfile.LockFile("/tmp/x.lock");
    const owner: lockfile.Owner | null = lockfile.LockFile.read("/tmp/x.lock");
    void lock; void owner;
    `,
  );
  t.after(() => rmSync(cts, { force: true }));
  const cjs = spawnSync(
    tsc,
    ["--noEmit", "--strict", "--target", "es2022", "--module", "node16", "--lib", "esnext", "--types", "", cts],
    { encoding: "utf8" },
  );
  assert.equal(cjs.status, 0, cjs.stdout + cjs.stderr);
});

test("a handle's end releases what it holds: close, with(), release, GC, worker", async (t) => {
  const dir = sandbox(t);
  const path = join(dir, "ends.lock");
  const free = async (what) => {
    const other = new LockFile(path);
    await assert.doesNotReject(other.acquire(), `${what}: the lock stayed held by a handle that is gone`);
    await other.release();
    other.close();
  };
  // close() while holding.
  const a = new LockFile(path);
  await a.acquire();
  a.close();
  await free("close()");
  // close() inside with(): with() resolves, the lock is free.
  const b = new LockFile(path);
  assert.equal(await b.with(async () => (b.close(), "ran")), "ran");
  await free("close() inside with()");
  // close() while a release runs.
  const c = new LockFile(path);
  await c.acquire();
  const releasing = c.release();
  c.close();
  await releasing.catch((e) => assert.equal(e.kind, "closed"));
  await free("close() during release()");
  // The handle garbage-collected while holding.
  const gc = spawnSync(
    process.execPath,
    [
      "--expose-gc",
      "--input-type=module",
      "-e",
      `import { LockFile } from "labm8-lockfile";
       const path = ${JSON.stringify(path)};
       (() => { new LockFile(path).acquireSync(); })();
       for (let i = 0; i < 200 && LockFile.read(path) !== null; i++) {
         globalThis.gc();
         await new Promise((r) => setTimeout(r, 10));
       }
       console.log(LockFile.read(path) === null ? "released" : "held");
       const next = new LockFile(path);
       next.acquireSync();
       next.releaseSync();`,
    ],
    { encoding: "utf8", timeout: 20_000, cwd: process.cwd() },
  );
  assert.equal(gc.status, 0, gc.stderr);
  assert.equal(gc.stdout.trim(), "released", "a collected handle left its lock held");
  // A worker that ends (returns, or is terminated) while holding.
  const { Worker } = await import("node:worker_threads");
  for (const end of ["return", "terminate"]) {
    const w = new Worker(
      `const { workerData, parentPort } = require("node:worker_threads");
       const { LockFile } = require("labm8-lockfile");
       globalThis.kept = new LockFile(workerData.path).acquireSync();
       parentPort.postMessage("held");
       if (workerData.end === "terminate") setInterval(() => {}, 1000);`,
      { eval: true, workerData: { path, end } },
    );
    await new Promise((resolve, reject) => (w.once("message", resolve), w.once("error", reject)));
    if (end === "terminate") await w.terminate();
    else await new Promise((r) => w.once("exit", r));
    await free(`a worker's ${end}`);
  }
  // The process's exit.
  const exit = nodeScript(
    `import { LockFile } from "labm8-lockfile";
     await new LockFile(${JSON.stringify(path)}).acquire();`,
  );
  assert.equal(exit.status, 0, exit.stderr);
  assert.equal(LockFile.read(path), null, "the process exited holding its lock");
});

test("with(): only a call inside the hold is nested; a nested wait for itself fails", async (t) => {
  const dir = sandbox(t);
  const path = join(dir, "nesting.lock");
  const a = new LockFile(path);
  const b = new LockFile(path);
  // A callback the hold scheduled runs after it ended: it must take its turn.
  let detached;
  await a.with(async () => {
    detached = new Promise((resolve) =>
      setTimeout(() => resolve(a.with(async () => ({ b: b.ownedBySelf, a: a.ownedBySelf }), { waitMs: 10_000 })), 50),
    );
  });
  await b.acquire();
  await new Promise((r) => setTimeout(r, 200));
  await b.release();
  assert.deepEqual(await detached, { b: false, a: true }, "a detached with() ran while b held the lock");
  // Another handle on the same path, inside a hold of this context, would
  // wait for the hold around it: refused at once.
  await a.with(async () => {
    await assert.rejects(
      b.with(async () => "never", { waitMs: Infinity }),
      (e) => e instanceof LockFileError && e.kind === "deadlock",
    );
  });
  // Bad options are refused at the call, not at the call's turn.
  await a.with(async () => {
    const bad = b.with(async () => 1, { waitMs: -1 });
    await assert.rejects(bad, RangeError);
  });
  a.close();
  b.close();
});
