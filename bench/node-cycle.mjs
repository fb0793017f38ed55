// The Node package (node/: the native addon over the Rust host library)
// against proper-lockfile (the npm package Node users pick for lock files),
// in-process, rounds interleaved: per round, 200 cycles of each, in a new
// random order. Then whole processes: `node` importing the package and
// making one cycle, against `node` doing nothing, interleaved likewise.
// Prints `BENCH NAME VALUE UNIT` lines (medians over rounds).
// Usage: node bench/node-cycle.mjs DIR (after `npm ci` and
// `LOCKFILE_NODE_PROFILE=release npm run build` in node/).
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { LockFile } from "../node/src/index.js";

const node = join(dirname(dirname(fileURLToPath(import.meta.url))), "node");
const properLockfile = createRequire(join(node, "package.json"))("proper-lockfile");

const dir = process.argv[2];
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const shuffle = (xs) => {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
};

const lock = new LockFile(join(dir, "node.lock"));
const target = join(dir, "proper.txt");
writeFileSync(target, "");
const cases = {
  async node_lockfile_sync_cycle() {
    lock.acquireSync();
    lock.releaseSync();
  },
  async node_lockfile_async_cycle() {
    await lock.acquire();
    await lock.release();
  },
  async proper_lockfile_cycle() {
    const release = await properLockfile.lock(target);
    await release();
  },
};
const rounds = 30;
const per = 200;
const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (const name of Object.keys(cases)) for (let i = 0; i < per; i++) await cases[name]();
for (let r = 0; r < rounds; r++) {
  for (const name of shuffle(Object.keys(cases))) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < per; i++) await cases[name]();
    samples[name].push(Number(process.hrtime.bigint() - t) / per / 1000);
  }
}
for (const [name, xs] of Object.entries(samples)) {
  console.log(`BENCH ${name} ${median(xs).toFixed(2)} us`);
}

// Whole processes: load the package and make one cycle, or nothing: with
// `require` (the `node -e` default, CommonJS) and with `import`.
const cjs = JSON.stringify(join(node, "src", "index.cjs"));
const esm = JSON.stringify(join(node, "src", "index.js"));
const cold = JSON.stringify(join(dir, "cold.lock"));
const scripts = {
  node_lockfile_process: ["-e", `const { LockFile } = require(${cjs});
    new LockFile(${cold}).acquireSync().releaseSync();`],
  node_lockfile_esm_process: ["--input-type=module", "-e", `import { LockFile } from ${esm};
    new LockFile(${cold}).acquireSync().releaseSync();`],
  node_empty_process: ["-e", ""],
};
const times = Object.fromEntries(Object.keys(scripts).map((k) => [k, []]));
for (let r = 0; r < 40; r++) {
  for (const name of shuffle(Object.keys(scripts))) {
    const t = process.hrtime.bigint();
    const out = spawnSync(process.execPath, scripts[name]);
    if (out.status !== 0) throw new Error(`${name}: ${out.stderr}`);
    times[name].push(Number(process.hrtime.bigint() - t) / 1e6);
  }
}
for (const [name, xs] of Object.entries(times)) {
  console.log(`BENCH ${name} ${median(xs).toFixed(1)} ms`);
}
