#!/usr/bin/env node
// Runs one benchmark alternately on a base commit and on this checkout, so that both sides meet
// the same moments of a noisy machine:
//   node bench/alternate.mjs [--base main] [--pairs 3] -- <bench name> [bench args…]
// The base commit is checked out once into a worktree under the OS temp dir (named by its commit,
// kept for the next call) with its own `npm ci`; the environment is passed to every run. Each
// run's output is printed whole, under a line naming its side and its turn.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = join(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv.slice(2);
const split = argv.indexOf("--");
const own = split < 0 ? argv : argv.slice(0, split);
const bench = split < 0 ? [] : argv.slice(split + 1);
const option = (name, fallback) => {
  const i = own.indexOf(name);
  return i < 0 ? fallback : own[i + 1];
};
const base = option("--base", "main");
const pairs = Number(option("--pairs", "3"));
if (!bench.length || !Number.isInteger(pairs) || pairs < 1) {
  console.error("usage: node bench/alternate.mjs [--base <commit>] [--pairs N] -- <bench name> [args…]");
  process.exit(2);
}

const git = (...args) => execFileSync("git", args, { cwd: here, encoding: "utf8" }).trim();
const commit = git("rev-parse", "--verify", `${base}^{commit}`);
const baseDir = join(tmpdir(), `stratus-base-${commit.slice(0, 12)}`);
if (!existsSync(baseDir)) {
  git("worktree", "add", "--detach", baseDir, commit);
  const ci = spawnSync("npm", ["ci", "--no-audit", "--no-fund", "--prefer-offline"], {
    cwd: baseDir,
    stdio: "inherit",
  });
  if (ci.status !== 0) process.exit(ci.status ?? 1);
}

const sides = [
  { name: `base ${commit.slice(0, 9)}`, dir: baseDir },
  {
    name: `this ${git("rev-parse", "--short=9", "HEAD")}${git("status", "--porcelain") ? "+" : ""}`,
    dir: here,
  },
];
for (let pair = 1; pair <= pairs; pair++) {
  // Alternate which side goes first, so neither always meets a machine warmed by the other.
  const order = pair % 2 ? sides : [...sides].reverse();
  for (const side of order) {
    console.log(`\n===== ${side.name} · pair ${pair}/${pairs} · ${new Date().toISOString()} =====`);
    const run = spawnSync(process.execPath, ["scripts/bench.mjs", ...bench], {
      cwd: side.dir,
      stdio: "inherit",
      env: process.env,
    });
    if (run.status !== 0) console.log(`(${side.name} exited with ${run.status})`);
  }
}
