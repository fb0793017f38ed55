// Type declarations for labm8-lockfile (src/index.cjs; src/index.d.ts gives
// them to `import`).

/** Who a lock file names. */
export interface Owner {
  /** The owner's pid (0 when planted so by labm8's `write`). */
  pid: number;
  /** When it acquired the lock. */
  date: Date;
  /** The host it acquired the lock on, when recorded. */
  hostname: string | null;
  /** The fencing token its acquisition issued, if any (a bigint: tokens go past 2^53). */
  token: bigint | null;
  /** Its lease in milliseconds, if any. */
  leaseMs: number | null;
}

export type Verdict = "unlocked" | "owned-by-self" | "held" | "stale" | "foreign" | "malformed";

/** How a lock stands for this process. */
export interface Status {
  path: string;
  owner: Owner | null;
  verdict: Verdict;
  /** Why, as a word: `running`, `dead`, `recycled`, `unknown-liveness`, ... */
  cause: string;
  /** Why, as a sentence. */
  reason: string;
}

export interface AcquireOptions {
  /** Take the lock over when its owner is certainly gone (labm8's `replace_stale`). */
  replaceStale?: boolean;
  /** Take the lock whoever holds it. */
  force?: boolean;
  /** Retry while the lock is held, for up to this many milliseconds (`Infinity`: until free). */
  waitMs?: number;
  /** Record a lease of this many milliseconds (for hosts sharing the directory; see `refresh`). */
  leaseMs?: number;
  /** Issue a fencing token (see `token`). */
  token?: boolean;
}

export interface ReleaseOptions {
  /** Release whoever holds the lock. */
  force?: boolean;
}

/** Base class of every error this module throws. */
export class LockFileError extends Error {
  constructor(kind: string, path: string, message: string, text?: string);
  /** `malformed`, `not-a-file`, `unreachable`, `denied`, `contended`, `lost`, `io`, `closed`, `deadlock`, ... */
  kind: string;
  path: string;
}

declare class RefusalError extends LockFileError {
  pid: number;
  date: Date;
  hostname: string | null;
  token: bigint | null;
  verdict: Verdict;
  cause: string;
  reason: string;
}

/** labm8's UnableToAcquireLockError: another owner holds the lock (also when a wait ran out). */
export class UnableToAcquireLockError extends RefusalError {}

/** labm8's UnableToReleaseLockError: the lock belongs to another owner. */
export class UnableToReleaseLockError extends RefusalError {}

/** `refresh` found the lock no longer ours. */
export class LockLostError extends LockFileError {}

/** A lock file at a path: labm8's `LockFile(path)`, as a holder of its own. */
export class LockFile {
  /** Names the lock; touches nothing until an operation runs. */
  constructor(path: string);
  /** A LockFile whose sandbox is open: a path that cannot be reached fails here. */
  static open(path: string): Promise<LockFile>;
  static openSync(path: string): LockFile;
  /** labm8's static `read`: the owner recorded at `path`, or null. */
  static read(path: string): Owner | null;
  /** labm8's static `write`: plants `PID TIMESTAMP` at `path`. */
  static write(path: string, pid: number, date?: Date): void;

  /** The lock's absolute path. */
  readonly path: string;
  // The getters below read the lock file: they throw a LockFileError when
  // it cannot be read or parsed (`kind`: unreachable, not-a-file, malformed, ...).
  /** The recorded owner's pid; null when unlocked. */
  readonly pid: number | null;
  /** When the lock was acquired; null when unlocked. */
  readonly date: Date | null;
  /** Whether a lock file exists. */
  readonly isLocked: boolean;
  /** Whether this handle holds the lock (each handle is a holder of its own). */
  readonly ownedBySelf: boolean;
  /** The fencing token of the lock as it stands; null without one. */
  readonly token: bigint | null;

  acquire(options?: AcquireOptions): Promise<this>;
  acquireSync(options?: AcquireOptions): this;
  release(options?: ReleaseOptions): Promise<void>;
  releaseSync(options?: ReleaseOptions): void;
  refresh(): Promise<void>;
  refreshSync(): void;
  status(): Promise<Status>;
  statusSync(): Status;
  /**
   * Acquires, runs `f`, releases (also when `f` throws); calls on one handle
   * take turns; a call inside `f` on the same handle runs within the hold.
   * Inside `f`, a waiting call on another handle of the same lock fails at
   * once (kind `deadlock`).
   */
  with<T>(f: (lock: this) => T | Promise<T>, options?: AcquireOptions): Promise<T>;
  /** As `with`, for a synchronous `f` (one that returns a Promise is refused). */
  withSync<T>(f: (lock: this) => T extends PromiseLike<unknown> ? never : T, options?: AcquireOptions): T;
  /**
   * Ends this handle: releases the lock it holds and cleans up after it.
   * Garbage collection, the end of its worker and the process's exit do
   * the same; a killed process leaves a stale lock.
   */
  close(): void;
  [Symbol.dispose](): void;
}
