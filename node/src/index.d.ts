// The declarations for `import`: those of the CommonJS module it re-exports.
export {
  LockFile,
  LockFileError,
  LockLostError,
  UnableToAcquireLockError,
  UnableToReleaseLockError,
} from "./index.cjs";
export type { AcquireOptions, Owner, ReleaseOptions, Status, Verdict } from "./index.cjs";
import * as lockfile from "./index.cjs";
export default lockfile;
