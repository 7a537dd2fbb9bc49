// Another version of Stratus beside this checkout, for upgrade tests: the tree of a commit of this
// repository's history, extracted once under the OS temp dir (named by the commit, kept for the
// next run) with its own dependencies installed. Its services are started with the harness's
// `startService(name, env, root)`.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "@stratus/runtime/testing";

const git = (...args: string[]) => execFileSync("git", args, { cwd: repoRoot, encoding: "utf8" }).trim();

/**
 * The version this checkout upgrades from: STRATUS_UPGRADE_FROM if set, else the last commit
 * before this tree — HEAD when the tracked files have uncommitted changes (the tree is the next
 * commit), otherwise HEAD's first parent (on main: the version before the last merge or commit).
 */
export function previousVersion(): string {
  const given = process.env.STRATUS_UPGRADE_FROM;
  if (given) return git("rev-parse", "--verify", `${given}^{commit}`);
  const dirty = git("status", "--porcelain", "--untracked-files=no") !== "";
  return git("rev-parse", "--verify", dirty ? "HEAD" : "HEAD~1");
}

/** The directory holding `commit`'s tree with its dependencies installed (made on first use). */
export function versionTree(commit: string): string {
  const dir = join(tmpdir(), `stratus-version-${commit.slice(0, 12)}`);
  if (existsSync(join(dir, "node_modules", ".package-lock.json"))) return dir;
  const partial = `${dir}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  execFileSync("sh", ["-c", `git archive --format=tar ${commit} | tar -x -C '${partial}'`], {
    cwd: repoRoot,
  });
  execFileSync("npm", ["ci", "--no-audit", "--no-fund", "--prefer-offline"], {
    cwd: partial,
    stdio: "ignore",
  });
  // Installed whole or not at all: a run stopped half-way leaves only the .partial directory.
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
  return dir;
}
