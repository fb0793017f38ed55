// Builds the native addon (node/native/, a member of the Cargo workspace, so
// it reuses the workspace's wasmtime build) and copies it to lockfile.node,
// its debug information stripped. LOCKFILE_NODE_PROFILE=release builds what
// a published package would carry; the default, dev, is what the tests use.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const root = dirname(here);
const profile = process.env.LOCKFILE_NODE_PROFILE ?? "dev";
const cargo = process.env.CARGO ?? "cargo";
try {
  execFileSync(cargo, ["build", "--quiet", "-p", "lockfile-node", "--profile", profile], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
  });
} catch (e) {
  console.error(`labm8-lockfile: \`${cargo} build -p lockfile-node\` failed: ${e.message}`);
  process.exit(1);
}
const built = join(root, "target", profile === "dev" ? "debug" : profile, "liblockfile_node.so");
if (!existsSync(built)) {
  console.error(`labm8-lockfile: the build made no ${built}`);
  process.exit(1);
}
const addon = join(here, "lockfile.node");
copyFileSync(built, addon);
try {
  execFileSync("strip", ["--strip-debug", addon]);
} catch {
  // Without binutils the addon keeps its debug information: larger, same code.
}
console.error(`labm8-lockfile: built ${addon} (${profile})`);
