// Acquire+release cycle of the Node package (node/: the component transpiled
// by jco, on preview2-shim), in-process. Prints `BENCH node_lockfile_cycle
// <median> us`. Usage: node bench/node-cycle.mjs DIR (after node/ci.sh or
// `npm ci && npm run build` in node/).
import { LockFile } from "../node/src/index.js";

const dir = process.argv[2];
const lock = new LockFile(`${dir}/node.lock`);
for (let i = 0; i < 100; i++) {
  lock.acquire();
  lock.release();
}
const samples = [];
for (let i = 0; i < 1000; i++) {
  const t = process.hrtime.bigint();
  lock.acquire();
  lock.release();
  samples.push(Number(process.hrtime.bigint() - t) / 1000);
}
samples.sort((a, b) => a - b);
console.log(`BENCH node_lockfile_cycle ${samples[samples.length >> 1].toFixed(1)} us`);
