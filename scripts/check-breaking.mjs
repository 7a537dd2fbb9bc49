#!/usr/bin/env node
// npm run check:breaking: the contracts of this tree against those of branch main, by buf's FILE
// rules (buf.yaml), so that every change to them is additive. A main that predates the root
// buf.yaml (its contracts all under proto/, the gRPC protocols among them) is compared by its
// stratus/ files, the set that still lives in proto/.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const git = (...args) => spawnSync("git", args, { stdio: "ignore" }).status === 0;
if (!git("rev-parse", "--verify", "--quiet", "main")) {
  console.error(
    "check:breaking: this clone has no branch main to compare the contracts with; fetch it (git fetch origin main:main) and run again",
  );
  process.exit(1);
}
const buf = (...args) => execFileSync("npx", ["buf", ...args], { stdio: "inherit" });
try {
  if (git("cat-file", "-e", "main:buf.yaml")) {
    buf("breaking", "--against", ".git#branch=main");
  } else {
    const dir = mkdtempSync(join(tmpdir(), "stratus-breaking-"));
    try {
      const image = join(dir, "main.binpb");
      buf("build", "-o", image, ".git#branch=main,subdir=proto", "--path", "stratus");
      buf("breaking", "proto", "--against", image);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
} catch {
  process.exit(1);
}
