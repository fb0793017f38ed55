// The package for `import`: the same objects as `require` gives (index.cjs).
export {
  LockFile,
  LockFileError,
  LockLostError,
  UnableToAcquireLockError,
  UnableToReleaseLockError,
} from "./index.cjs";
