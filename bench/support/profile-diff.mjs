// Compares two sets of profiles written by bench/boot's BENCH_CPU_PROF_DIR (one directory per
// run, each with a directory per service): the busy time per server of each service, and the
// files (or functions) whose time per server changed most, averaged over the runs of each side.
//   node bench/support/profile-diff.mjs <before dir,dir…> <after dir,dir…> [--servers 1000] [--by file|function] [--top 30]
import { readdirSync, readFileSync } from "node:fs";
import { isIdle, selfTimes, shortFile } from "./cpu-profiles.mjs";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i < 0 ? dflt : args[i + 1];
};
const servers = Number(opt("--servers", 1000));
const by = opt("--by", "file");
const top = Number(opt("--top", 30));

/** µs of busy time per server by "<service> <file or function>", averaged over the runs. */
function load(dirs) {
  const out = new Map();
  for (const run of dirs)
    for (const service of readdirSync(run))
      for (const f of readdirSync(`${run}/${service}`).filter((f) => f.endsWith(".cpuprofile"))) {
        const p = JSON.parse(readFileSync(`${run}/${service}/${f}`, "utf8"));
        const self = selfTimes(p);
        for (const n of p.nodes) {
          const us = self.get(n.id) ?? 0;
          if (!us || isIdle(n)) continue;
          const file = n.callFrame.url ? shortFile(n.callFrame.url) : "(native)";
          const what = by === "file" ? file : `${n.callFrame.functionName || "(anonymous)"} ${file}`;
          const k = `${service} ${what}`;
          out.set(k, (out.get(k) ?? 0) + us / dirs.length / servers);
        }
      }
  return out;
}

const before = load(args[0].split(","));
const after = load(args[1].split(","));
const services = new Set([...before.keys(), ...after.keys()].map((k) => k.split(" ")[0]));
const sum = (m, s) => [...m].filter(([k]) => k.startsWith(`${s} `)).reduce((a, [, v]) => a + v, 0);
console.log("busy µs per server, before -> after:");
for (const s of [...services].sort())
  console.log(`  ${s}: ${sum(before, s).toFixed(0)} -> ${sum(after, s).toFixed(0)}`);
const rows = [...new Set([...before.keys(), ...after.keys()])]
  .map((k) => [k, before.get(k) ?? 0, after.get(k) ?? 0])
  .sort((x, y) => y[2] - y[1] - (x[2] - x[1]));
const show = (r) =>
  `  ${(r[2] - r[1]).toFixed(1).padStart(7)}  (${r[1].toFixed(1)} -> ${r[2].toFixed(1)})  ${r[0]}`;
console.log(`largest increases by ${by} (µs per server):`);
for (const r of rows.slice(0, top)) console.log(show(r));
console.log("largest decreases:");
for (const r of rows.slice(-Math.ceil(top / 2)).reverse()) console.log(show(r));
