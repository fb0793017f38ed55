// Transpiles lockfile-wasi.wasm (the lock with a `process` from WASI alone,
// built by `cargo build` at the repository root) into test/jco/ with jco,
// for test/jco.test.js: the portable component run by plain Node on
// preview2-shim, as any JavaScript application could (the package itself
// uses the native addon).
//
// The component: $LOCKFILE_WASI_COMPONENT, else the newest of
// ../target/{debug,release}/lockfile-wasi.wasm.
import { transpile, writeFiles } from "@bytecodealliance/jco-transpile";
import { existsSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const candidates = process.env.LOCKFILE_WASI_COMPONENT
  ? [process.env.LOCKFILE_WASI_COMPONENT]
  : ["debug", "release"].map((p) => join(here, "..", "target", p, "lockfile-wasi.wasm"));
const found = candidates
  .filter((p) => existsSync(p))
  .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
if (found.length === 0) {
  console.error(
    `labm8-lockfile: no lockfile-wasi.wasm at ${candidates.join(" or ")}: ` +
      "run `cargo build` at the repository root first (or set LOCKFILE_WASI_COMPONENT)",
  );
  process.exit(1);
}
const dist = join(here, "test", "jco");
rmSync(dist, { recursive: true, force: true });
// jco's transpiler as a library (the `jco transpile` command without the
// rest of jco, which would install ten times as much): an ES module that
// imports preview2-shim itself, as `jco transpile` makes by default.
const { files } = await transpile(found[0], {
  name: "lockfile-wasi",
  emitTypescriptDeclarations: false,
  outDir: dist,
  // As `jco transpile` does: errors thrown as ComponentError with a payload.
  noComponentErrorWrapping: false,
});
await writeFiles(files);
console.error(`labm8-lockfile: transpiled ${found[0]} into test/jco/`);
