// labm8's LockFile for Node, run by the sandboxed lockfile component.
//
// The component is embedded, precompiled, in the native addon
// (lockfile.node, built from node/native/ over the Rust host library), which
// runs it in wasmtime: each lock gets a small sandbox that sees only its
// directory, and the owner of the locks is this Node process.
//
// Every operation comes in two forms. `await lock.acquire()` makes each
// attempt on libuv's thread pool and waits between attempts with timers, so
// neither a wait nor a slow file system (NFS) blocks the event loop or holds
// a pool thread, and a pending wait never delays the process's exit;
// `lock.acquireSync()` runs on this thread (a wait blocks it), for scripts
// and for the few microseconds a local cycle costs. Each LockFile is a holder
// of its own: two handles, or two worker threads, exclude each other as two
// processes do, and `with()` calls on one handle take turns.
//
// CommonJS, so that `require` costs no ES module loader (a few milliseconds
// of a cold start); index.js re-exports it for `import`.

"use strict";
const { AsyncLocalStorage } = require("node:async_hooks");
const { resolve } = require("node:path");
const { setTimeout: sleep } = require("node:timers/promises");

const native = require("../lockfile.node");

/** What starts the message of every error the addon throws (then JSON). */
const MARK = "labm8-lockfile:";

/** Base class of every error this module throws. */
class LockFileError extends Error {
  constructor(kind, path, message, text = `${path}: ${message}`) {
    super(text);
    this.name = "LockFileError";
    /**
     * `malformed`, `not-a-file`, `unreachable`, `denied`, `invalid-identity`,
     * `contended`, `lost`, `io`, `closed`, `deadlock`, `invalid-argument`, ...
     */
    this.kind = kind;
    this.path = path;
  }
}

/** Who holds a lock that could not be taken or released. */
class RefusalError extends LockFileError {
  constructor(kind, payload, what) {
    const { owner, verdict, cause, reason } = payload.refusal;
    super(
      kind,
      payload.path,
      reason,
      `cannot ${what} ${payload.path}: held by pid ${owner.pid} (${verdict}): ${reason}`,
    );
    this.pid = owner.pid;
    this.date = new Date(owner.seconds * 1000 + Math.floor(owner.nanos / 1e6));
    this.hostname = owner.hostname ?? null;
    this.token = owner.token == null ? null : BigInt(owner.token);
    this.verdict = verdict;
    this.cause = cause;
    this.reason = reason;
  }
}

/** labm8's UnableToAcquireLockError: another owner holds the lock (also when a wait ran out). */
class UnableToAcquireLockError extends RefusalError {
  constructor(payload) {
    super("unable-to-acquire", payload, "acquire");
    this.name = "UnableToAcquireLockError";
  }
}

/** labm8's UnableToReleaseLockError: the lock belongs to another owner. */
class UnableToReleaseLockError extends RefusalError {
  constructor(payload) {
    super("unable-to-release", payload, "release");
    this.name = "UnableToReleaseLockError";
  }
}

/**
 * `refresh` found the lock no longer ours (gone, taken over after its lease
 * ran out, or its lease already ran out): whatever the holder does now, it
 * does without the lock.
 */
class LockLostError extends LockFileError {
  constructor(payload) {
    super("lost", payload.path, payload.message, payload.text);
    this.name = "LockLostError";
  }
}

/** The addon's error as ours; anything else as it is. */
function convert(e) {
  if (!(e instanceof Error) || !e.message.startsWith(MARK)) return e;
  const payload = JSON.parse(e.message.slice(MARK.length));
  switch (payload.kind) {
    case "unable-to-acquire":
      return new UnableToAcquireLockError(payload);
    case "unable-to-release":
      return new UnableToReleaseLockError(payload);
    case "lost":
      return new LockLostError(payload);
    case "invalid-argument":
      return new RangeError(payload.message);
    default:
      return new LockFileError(payload.kind, payload.path, payload.message, payload.text);
  }
}

function now(f) {
  try {
    return f();
  } catch (e) {
    throw convert(e);
  }
}

/** Awaits what `start` returns; its errors (thrown or rejected) as ours. */
async function later(start) {
  try {
    return await start();
  } catch (e) {
    throw convert(e);
  }
}

function toOwner(o) {
  return o == null
    ? null
    : {
        pid: o.pid,
        date: new Date(o.dateMs),
        hostname: o.hostname ?? null,
        token: o.token ?? null,
        leaseMs: o.leaseMs ?? null,
      };
}

function toStatus(s) {
  return { path: s.path, owner: toOwner(s.owner), verdict: s.verdict, cause: s.cause, reason: s.reason };
}

function flag(options, name) {
  const value = options[name];
  if (value !== undefined && typeof value !== "boolean") {
    throw new TypeError(`${name} must be a boolean, not ${typeof value}`);
  }
  return value ?? false;
}

function acquireArgs(options) {
  if (options == null) options = {};
  if (typeof options !== "object") {
    throw new TypeError("acquire takes an options object: { replaceStale, force, waitMs, leaseMs, token }");
  }
  const { waitMs = 0, leaseMs } = options;
  if (typeof waitMs !== "number") throw new TypeError("waitMs must be a number (Infinity: until free)");
  if (leaseMs !== undefined && typeof leaseMs !== "number") throw new TypeError("leaseMs must be a number");
  return {
    replaceStale: flag(options, "replaceStale"),
    force: flag(options, "force"),
    waitMs,
    leaseMs,
    token: flag(options, "token"),
  };
}

function releaseArgs(options) {
  if (options == null) return false;
  if (typeof options !== "object") throw new TypeError("release takes an options object: { force }");
  return flag(options, "force");
}

/** Whether an acquisition may be tried again: another holder, or contention. */
function busy(e) {
  return e instanceof UnableToAcquireLockError || (e instanceof LockFileError && e.kind === "contended");
}

function absolute(path) {
  if (typeof path !== "string" || path === "") {
    throw new TypeError("a lock path must be a non-empty string");
  }
  if (path.endsWith("/")) {
    throw new LockFileError("unreachable", path, "the path does not name a file (it ends with /)");
  }
  return resolve(path);
}

/**
 * The holds the current asynchronous context runs inside: each handle whose
 * `with()` it is in, and that call's hold (`active` until its lock is
 * released: a callback the hold scheduled may run after it ended).
 */
const inside = new AsyncLocalStorage();

// Handles still open at exit are closed: what they hold is released, and no
// spare file stays beside a lock (a cycling handle keeps one).
const open = new Set();
/** Closes a handle at once, a call in flight or not (at exit nothing settles later). */
const END = Symbol("end");
process.on("exit", () => {
  for (const ref of open) ref.deref()?.[END]();
});


/** A lock file at a path: labm8's `LockFile(path)`, as a holder of its own. */
class LockFile {
  #native;
  #ref;
  #path;
  #closed = false;
  /** Calls in flight on the pool: the handle ends when the last settles. */
  #inflight = 0;
  /** Ends the pause of a wait when the handle is closed. */
  #closing = new AbortController();
  /** The end of the queue of this handle's `with()` calls. */
  #turn = Promise.resolve();

  /** Names the lock; touches nothing until an operation runs (see `LockFile.open`). */
  constructor(path) {
    this.#path = absolute(path);
    this.#native = new native.NativeLock(this.#path);
    this.#ref = new WeakRef(this);
    open.add(this.#ref);
  }

  /** The lock's absolute path. */
  get path() {
    return this.#path;
  }

  /** A LockFile whose sandbox is open: a path that cannot be reached fails here. */
  static async open(path) {
    const lock = new LockFile(path);
    await lock.#call((n) => n.open());
    return lock;
  }

  /** As `LockFile.open`, on this thread. */
  static openSync(path) {
    const lock = new LockFile(path);
    now(() => lock.#n.openSync());
    return lock;
  }

  get #n() {
    if (this.#closed) throw this.#closedError();
    return this.#native;
  }

  /**
   * Claims the lock for this handle: when unheld, when this handle holds it
   * already (a no-op), with `force` always, with `replaceStale` when its
   * owner is certainly gone. `waitMs` retries while it is held (the Rust
   * library's schedule: 5 ms, growing by half to 250 ms; `Infinity`: until
   * free); `leaseMs` records a lease (for hosts sharing the directory; it
   * issues a fencing token too, see `refresh`); `token` issues a fencing
   * token. Resolves to `this`; a `close()` meanwhile rejects it as `closed`.
   */
  async acquire(options) {
    const args = acquireArgs(options);
    const schedule = now(() => new native.Schedule(args.waitMs));
    const start = Date.now();
    for (;;) {
      let failure = null;
      try {
        await this.#call((n) => n.tryAcquire(args));
      } catch (e) {
        failure = e;
      }
      // Closed while the attempt ran: what it took went back as the handle ended.
      if (this.#closed) throw this.#closedError();
      if (failure === null) return this;
      if (!busy(failure)) throw failure;
      const pause = schedule.pause(Date.now() - start);
      if (pause == null) throw failure;
      await sleep(pause, undefined, { signal: this.#closing.signal }).catch(() => {});
    }
  }

  /**
   * Runs `start(native)` on the pool, counted in flight: a handle closed
   * meanwhile ends (releases, cleans up) once its last call settles.
   */
  async #call(start) {
    const n = this.#n;
    this.#inflight++;
    try {
      return await later(() => start(n));
    } finally {
      this.#inflight--;
      if (this.#closed && this.#inflight === 0) this.#native.close();
    }
  }

  #closedError() {
    return new LockFileError("closed", this.#path, "this LockFile was closed");
  }

  /** As `acquire`, on this thread (a wait blocks it). */
  acquireSync(options) {
    const args = acquireArgs(options);
    now(() => this.#n.acquireSync(args));
    return this;
  }

  /** Releases the lock: a no-op when unheld; with `force`, whoever holds it. */
  async release(options) {
    const force = releaseArgs(options);
    await this.#call((n) => n.release(force));
  }

  /** As `release`, on this thread. */
  releaseSync(options) {
    const force = releaseArgs(options);
    now(() => this.#n.releaseSync(force));
  }

  /** Renews this handle's lease; throws LockLostError when the lock is no longer ours. */
  async refresh() {
    await this.#call((n) => n.refresh());
  }

  /** As `refresh`, on this thread. */
  refreshSync() {
    now(() => this.#n.refreshSync());
  }

  /** `{ path, owner, verdict, cause, reason }`; a malformed file is the `malformed` verdict. */
  async status() {
    return toStatus(await this.#call((n) => n.status()));
  }

  /** As `status`, on this thread. */
  statusSync() {
    return toStatus(now(() => this.#n.statusSync()));
  }

  /** The recorded owner's pid; null when unlocked. Throws when the file cannot be read. */
  get pid() {
    return now(() => this.#n.pid()) ?? null;
  }

  /** When the lock was acquired, as a Date; null when unlocked. */
  get date() {
    const ms = now(() => this.#n.dateMs());
    return ms == null ? null : new Date(ms);
  }

  /** Whether a lock file exists. */
  get isLocked() {
    return now(() => this.#n.isLocked());
  }

  /** Whether this handle holds the lock. */
  get ownedBySelf() {
    return now(() => this.#n.ownedBySelf());
  }

  /** The fencing token (a bigint) of the lock as it stands; null without one. */
  get token() {
    return now(() => this.#n.token()) ?? null;
  }

  /**
   * Acquires, runs `f(this)` (awaited), releases (also when `f` throws);
   * resolves to what `f` returns. Calls on one handle take turns; a call
   * made inside `f` (nested) runs at once, within the outer hold, and its
   * options are not used. A nested call on another handle of the same lock
   * that would wait fails at once (kind `deadlock`): it would wait for the
   * hold around it.
   */
  async with(f, options) {
    const args = acquireArgs(options);
    const holds = inside.getStore();
    if (holds?.get(this)?.active) return await f(this);
    if (args.waitMs > 0) {
      for (const [other, hold] of holds ?? []) {
        if (hold.active && other.#path === this.#path) {
          throw new LockFileError(
            "deadlock",
            this.#path,
            "this call runs inside another LockFile's with() on the same lock: waiting would wait for itself",
          );
        }
      }
    }
    const previous = this.#turn;
    let done;
    this.#turn = new Promise((r) => (done = r));
    try {
      await previous;
      await this.acquire(args);
      const hold = { active: true };
      const held = new Map(holds ?? []).set(this, hold);
      let result;
      try {
        result = await inside.run(held, () => f(this));
      } catch (e) {
        hold.active = false;
        // Closed inside `f`: the lock went back as the handle ended.
        if (!this.#closed) {
          await this.release().catch((r) => {
            throw new AggregateError([e, r], `${e?.message ?? e}; and the lock could not be released`);
          });
        }
        throw e;
      }
      hold.active = false;
      if (!this.#closed) await this.release();
      return result;
    } finally {
      done();
    }
  }

  /** As `with`, on this thread, for a synchronous `f` (a Promise it returns is refused). */
  withSync(f, options) {
    this.acquireSync(options);
    let result;
    try {
      result = f(this);
    } finally {
      this.releaseSync();
    }
    if (result != null && typeof result.then === "function") {
      throw new TypeError("withSync runs a synchronous function and released the lock before its Promise settled: use with()");
    }
    return result;
  }

  /**
   * Ends this handle, for good: the lock it holds is released (the handle
   * is its holder, and no other can release it without `force`), and the
   * component cleans up after it (its spare file). Later calls, and a wait
   * in progress, fail as `closed`; a call running now settles first. The
   * same happens when the handle is garbage-collected, when its worker
   * ends and when the process exits; a process killed leaves its lock
   * stale, for `replaceStale`.
   */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    open.delete(this.#ref);
    this.#closing.abort();
    // A call running now ends the handle when it settles.
    if (this.#inflight === 0) this.#native.close();
  }

  [END]() {
    this.#closed = true;
    this.#native.close();
  }

  [Symbol.dispose ?? Symbol.for("nodejs.dispose")]() {
    this.close();
  }

  /** labm8's static `read`: the owner recorded at `path`, or null. */
  static read(path) {
    return toOwner(now(() => native.read(absolute(path))));
  }

  /** labm8's static `write`: plants `PID TIMESTAMP` at `path` (replacing what is there). */
  static write(path, pid, date = new Date()) {
    if (!Number.isInteger(pid) || pid < 0 || pid > 0xffffffff) {
      throw new RangeError(`pid ${pid}: give an integer from 0 to 4294967295`);
    }
    if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
      throw new TypeError(`date: give a valid Date, not ${date}`);
    }
    now(() => native.write(absolute(path), pid, date.getTime()));
  }
}

module.exports = { LockFile, LockFileError, LockLostError, UnableToAcquireLockError, UnableToReleaseLockError };
