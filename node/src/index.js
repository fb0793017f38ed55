// labm8's LockFile for Node, run by the sandboxed lockfile component.
//
// The component is lockfile-wasi.wasm (the lock logic with a `process`
// provider built from WASI alone), transpiled by jco into dist/ at build time
// and run on @bytecodealliance/preview2-shim. Each directory that holds
// locks gets its own instance, which sees only that directory (and /proc,
// read-only, to judge whether owners run). The owner of the locks is this
// Node process.
//
// The API is synchronous, like labm8's: every operation is a handful of
// short file-system calls, which the shim makes synchronously anyway; a
// Promise around them would only add latency. Wait for a busy lock with
// `acquire({ waitMs })`, which retries with backoff.

import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { cli, clocks, filesystem, io, random } from "@bytecodealliance/preview2-shim";

import { instantiate } from "../dist/lockfile-wasi.js";

const dist = join(dirname(dirname(fileURLToPath(import.meta.url))), "dist");

/** Base class of every error this module throws. */
export class LockFileError extends Error {
  constructor(kind, path, message) {
    super(`${path}: ${message}`);
    this.name = "LockFileError";
    /** `malformed`, `not-a-file`, `unreachable`, `denied`, `invalid-identity`, `contended`, `io`. */
    this.kind = kind;
    this.path = path;
  }
}

/** Who holds a lock that could not be taken or released. */
class RefusalError extends LockFileError {
  constructor(kind, refusal, what) {
    const { path, owner, verdict, cause, reason } = refusal;
    super(kind, path, `cannot ${what}: held by pid ${owner.pid} (${verdict}): ${reason}`);
    this.pid = owner.pid;
    this.date = toDate(owner.date);
    this.hostname = owner.hostname ?? null;
    this.verdict = verdict;
    this.cause = cause;
    this.reason = reason;
  }
}

/** labm8's UnableToAcquireLockError: another owner holds the lock. */
export class UnableToAcquireLockError extends RefusalError {
  constructor(refusal) {
    super("unable-to-acquire", refusal, "acquire");
    this.name = "UnableToAcquireLockError";
  }
}

/** labm8's UnableToReleaseLockError: the lock belongs to another owner. */
export class UnableToReleaseLockError extends RefusalError {
  constructor(refusal) {
    super("unable-to-release", refusal, "release");
    this.name = "UnableToReleaseLockError";
  }
}

function toDate(datetime) {
  return new Date(Number(datetime.seconds) * 1000 + Math.floor(datetime.nanoseconds / 1e6));
}

function toOwner(owner) {
  return owner && { pid: owner.pid, date: toDate(owner.date), hostname: owner.hostname ?? null };
}

/** Turns the component's `error` variant (thrown by jco) into our errors. */
function rethrow(e) {
  const payload = e && Object.prototype.hasOwnProperty.call(e, "payload") ? e.payload : null;
  if (!payload || typeof payload.tag !== "string") throw e;
  switch (payload.tag) {
    case "unable-to-acquire":
      throw new UnableToAcquireLockError(payload.val);
    case "unable-to-release":
      throw new UnableToReleaseLockError(payload.val);
    default:
      throw new LockFileError(payload.tag, payload.val.path, payload.val.message);
  }
}

function call(f) {
  try {
    return f();
  } catch (e) {
    return rethrow(e);
  }
}

const modules = new Map();
function getCoreModule(name) {
  let module = modules.get(name);
  if (!module) {
    module = new WebAssembly.Module(readFileSync(join(dist, name)));
    modules.set(name, module);
  }
  return module;
}

// No environment: `LOCKFILE_PID` in Node's own environment must not make
// the component lock for another process.
const environment = {
  getEnvironment: () => [],
  getArguments: () => [],
  initialCwd: () => undefined,
};

const sandboxes = new Map();
/** The instance for locks in `dir`: it sees `dir`, and /proc read-only. */
function sandbox(dir) {
  let exports = sandboxes.get(dir);
  if (!exports) {
    const fs = filesystem.createFilesystem({ preopens: { [dir]: dir, "/proc": "/proc" } });
    const instance = instantiate(getCoreModule, {
      "wasi:cli/environment": environment,
      "wasi:cli/exit": cli.exit,
      "wasi:cli/stderr": cli.stderr,
      "wasi:cli/stdin": cli.stdin,
      "wasi:cli/stdout": cli.stdout,
      "wasi:cli/terminal-input": cli.terminalInput,
      "wasi:cli/terminal-output": cli.terminalOutput,
      "wasi:cli/terminal-stderr": cli.terminalStderr,
      "wasi:cli/terminal-stdin": cli.terminalStdin,
      "wasi:cli/terminal-stdout": cli.terminalStdout,
      "wasi:clocks/monotonic-clock": clocks.monotonicClock,
      "wasi:clocks/wall-clock": clocks.wallClock,
      "wasi:filesystem/preopens": fs.preopens,
      "wasi:filesystem/types": fs.types,
      "wasi:io/error": io.error,
      "wasi:io/poll": io.poll,
      "wasi:io/streams": io.streams,
      "wasi:random/random": random.random,
    });
    exports = instance.lockfile;
    sandboxes.set(dir, exports);
  }
  return exports;
}

function place(path) {
  if (typeof path !== "string" || path === "") {
    throw new TypeError("a lock path must be a non-empty string");
  }
  const full = resolve(path);
  return { full, exports: sandbox(dirname(full)) };
}

const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

// Handles still open at exit are closed, so that no spare file stays beside a lock.
const open = new Set();
process.on("exit", () => {
  for (const ref of open) ref.deref()?.close();
});
const symbolDispose = Symbol.dispose ?? Symbol.for("dispose");

/** A lock file at a path: labm8's `LockFile(path)`. */
export class LockFile {
  #handle;

  /** Names the lock; touches nothing until an operation runs. */
  constructor(path) {
    const { full, exports } = place(path);
    /** The lock's absolute path. */
    this.path = full;
    this.#handle = new exports.LockFile(full);
    this.#ref = new WeakRef(this);
    open.add(this.#ref);
  }

  #ref;

  /**
   * Lets the component clean up after this handle (a handle that acquires
   * and releases repeatedly keeps a spare file beside the lock). Does not
   * release the lock (labm8's rule). Handles still open at exit are closed.
   */
  close() {
    const handle = this.#handle;
    this.#handle = null;
    open.delete(this.#ref);
    handle?.[symbolDispose]?.();
  }

  get #h() {
    if (!this.#handle) throw new LockFileError("closed", this.path, "this LockFile was closed");
    return this.#handle;
  }

  /**
   * Claims the lock for this process: when unheld, when this process holds
   * it already (a no-op), with `force` always, with `replaceStale` when its
   * owner is gone. With `waitMs`, retries with backoff (2 ms growing to
   * 250 ms) while the lock is held, for up to that long. Returns `this`.
   */
  acquire({ replaceStale = false, force = false, waitMs = 0 } = {}) {
    const deadline = Date.now() + waitMs;
    let pause = 2;
    for (;;) {
      try {
        call(() => this.#h.acquire(replaceStale, force));
        return this;
      } catch (e) {
        const busy = e instanceof UnableToAcquireLockError || e.kind === "contended";
        if (!busy || Date.now() >= deadline) throw e;
        sleep(Math.min(pause, deadline - Date.now()));
        pause = Math.min(pause * 2, 250);
      }
    }
  }

  /** Releases the lock: a no-op when unheld; with `force`, whoever holds it. */
  release({ force = false } = {}) {
    call(() => this.#h.release(force));
  }

  /** The recorded owner's pid; null when unlocked. */
  get pid() {
    return call(() => this.#h.pid()) ?? null;
  }

  /** When the lock was acquired, as a Date; null when unlocked. */
  get date() {
    const date = call(() => this.#h.date());
    return date ? toDate(date) : null;
  }

  /** Whether a lock file exists. */
  get isLocked() {
    return call(() => this.#h.isLocked());
  }

  /** Whether this process holds the lock. */
  get ownedBySelf() {
    return call(() => this.#h.ownedBySelf());
  }

  /** `{ path, owner, verdict, cause, reason }`; a malformed file is the `malformed` verdict. */
  status() {
    const s = call(() => this.#h.status());
    return { path: s.path, owner: toOwner(s.owner) ?? null, verdict: s.verdict, cause: s.cause, reason: s.reason };
  }

  /** Acquires, runs `f`, releases (also when `f` throws); returns what `f` returns. */
  with(f, options = {}) {
    this.acquire(options);
    try {
      return f(this);
    } finally {
      this.release();
    }
  }

  /** labm8's `LockFile.read`: `{ pid, date, hostname }` of the owner at `path`, or null. */
  static read(path) {
    const { full, exports } = place(path);
    return toOwner(call(() => exports.LockFile.read(full))) ?? null;
  }

  /** labm8's `LockFile.write`: plants `PID TIMESTAMP` at `path` (timestamp: Date or Unix seconds). */
  static write(path, pid, timestamp) {
    const { full, exports } = place(path);
    const ms = timestamp instanceof Date ? timestamp.getTime() : Number(timestamp) * 1000;
    if (!Number.isFinite(ms) || ms < 0) throw new TypeError(`bad timestamp: ${timestamp}`);
    const seconds = BigInt(Math.floor(ms / 1000));
    const nanoseconds = Math.round((ms % 1000) * 1e6);
    call(() => exports.LockFile.write(full, pid, { seconds, nanoseconds }));
  }
}

