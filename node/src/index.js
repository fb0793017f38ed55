// The package for `import`: the same objects as `require` gives (index.cjs).
import lockfile from "./index.cjs";

export const {
  LockFile,
  LockFileError,
  LockLostError,
  UnableToAcquireLockError,
  UnableToReleaseLockError,
} = lockfile;
export default lockfile;
