#!/usr/bin/env node
// npm run bench -- <name> [args…] runs bench/<name>/main.ts (see bench/README.md); no name lists them.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const benches = readdirSync(join(root, "bench"), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(root, "bench", d.name, "main.ts")))
  .map((d) => d.name);
const [name, ...args] = process.argv.slice(2);
if (!name || !benches.includes(name)) {
  console.error(`usage: npm run bench -- <${benches.join("|")}> [args…]   (see bench/README.md)`);
  process.exit(name ? 2 : 0);
}
const r = spawnSync(process.execPath, ["--import", "tsx", join(root, "bench", name, "main.ts"), ...args], {
  cwd: root,
  stdio: "inherit",
});
process.exit(r.status ?? 1);
