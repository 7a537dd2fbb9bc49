// Summarises V8 CPU profiles (.cpuprofile): for each directory under <dir> (one per service),
// the share of busy time (samples not idle) by file and the heaviest functions by self time;
// with --match <regex>, the share of busy time spent in or under (called by) functions whose file
// or name matches; with
// --callers <regex>, who calls the functions whose name matches (their callers' self time summed).
//   node bench/support/profile-summary.mjs <dir> [--top 15] [--match 'auth/'] [--callers ConnectError]
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { isIdle, selfTimes, shortFile } from "./cpu-profiles.mjs";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i < 0 ? dflt : args[i + 1];
};
const root = args[0];
const top = Number(opt("--top", 15));
const match = opt("--match") ? new RegExp(opt("--match")) : undefined;
const callers = opt("--callers") ? new RegExp(opt("--callers")) : undefined;

for (const service of readdirSync(root).sort()) {
  const dir = path.join(root, service);
  if (!statSync(dir).isDirectory()) continue;
  const byFn = new Map();
  const byFile = new Map();
  const byCaller = new Map();
  let total = 0;
  let matched = 0;
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))) {
    const profile = JSON.parse(readFileSync(path.join(dir, f), "utf8"));
    const self = selfTimes(profile);
    const parent = new Map();
    for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node);
    const label = (node) => {
      const { functionName, url, lineNumber } = node.callFrame;
      return `${functionName || "(anonymous)"} ${url ? shortFile(url) : "(native)"}:${lineNumber + 1}`;
    };
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    /** Time under a node (itself and everything it called). */
    const totalOf = (node) =>
      (self.get(node.id) ?? 0) + (node.children ?? []).reduce((a, c) => a + totalOf(byId.get(c)), 0);
    const matches = (node) =>
      match && (match.test(node.callFrame.url) || match.test(node.callFrame.functionName));
    /** Whether a node or one of its callers matches: its self time is then the matched work's. */
    const under = new Map();
    const isUnder = (node) => {
      if (!under.has(node.id)) {
        const p = parent.get(node.id);
        under.set(node.id, matches(node) || (p !== undefined && isUnder(p)));
      }
      return under.get(node.id);
    };
    if (callers)
      for (const node of profile.nodes) {
        if (!callers.test(node.callFrame.functionName)) continue;
        const chain = [];
        for (let p = parent.get(node.id); p && chain.length < 4; p = parent.get(p.id)) chain.push(label(p));
        const key = `${label(node)}  <=  ${chain.join("  <=  ")}`;
        byCaller.set(key, (byCaller.get(key) ?? 0) + totalOf(node));
      }
    for (const node of profile.nodes) {
      const us = self.get(node.id) ?? 0;
      if (!us || isIdle(node)) continue;
      const { url } = node.callFrame;
      const file = url ? shortFile(url) : "(native)";
      const fn = label(node);
      total += us;
      byFn.set(fn, (byFn.get(fn) ?? 0) + us);
      byFile.set(file, (byFile.get(file) ?? 0) + us);
      if (match && isUnder(node)) matched += us;
    }
  }
  if (!total) continue;
  const pctOf = (us) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  console.log(`\n## ${service}: ${(total / 1000).toFixed(0)} ms busy`);
  if (match) console.log(`matching /${match.source}/: ${pctOf(matched)} (${(matched / 1000).toFixed(1)} ms)`);
  console.log("by file:");
  for (const [k, v] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`  ${pctOf(v)}  ${k}`);
  if (callers) {
    console.log(`callers of /${callers.source}/ (time under them):`);
    for (const [k, v] of [...byCaller].sort((a, b) => b[1] - a[1]).slice(0, top))
      console.log(`  ${pctOf(v)}  ${k}`);
  }
  console.log("by function (self):");
  for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`  ${pctOf(v)}  ${k}`);
}
