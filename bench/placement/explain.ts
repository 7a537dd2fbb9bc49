// Diagnosis: seeds a PostgreSQL database (SQL seed) and prints EXPLAIN ANALYZE of the candidate
// statement the scheduler runs (roots + their trees and sharing providers in one statement).
//   node --import tsx bench/placement/explain.ts [providers] [segments] [--quiet] [--generic] [--pglite [--analyze]]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, migrationsFrom, openDatabase } from "@stratus/runtime";
import { createTempDatabase, repoRoot } from "@stratus/runtime/testing";
import pg from "pg";
import type { CandidateQuery } from "../../services/scheduler/src/placement/candidates/request.js";
import { candidatesQuery, rootsQuery } from "../../services/scheduler/src/placement/candidates/search-sql.js";
import { GENERIC_PLAN } from "../../services/scheduler/src/placement/statements.js";
import { searchGroups, seedCloud } from "./cloud.js";

const hosts = Number(process.argv[2] ?? 10000);
const segmentCount = Number(process.argv[3] ?? 100);
// --pglite: an in-process PGlite in a temp dir instead (run without and with --analyze).
const usePglite = process.argv.includes("--pglite");
const tmp = usePglite ? undefined : await createTempDatabase("stratus_explain");
const dataDir = mkdtempSync(join(tmpdir(), "stratus-explain-"));
const db = await openDatabase({
  service: "scheduler",
  url: tmp?.url,
  dataDir,
  migrations: migrationsFrom(join(repoRoot, "services/scheduler/migrations")),
  logger: createLogger("explain", "warn"),
});
try {
  const { segments } = await seedCloud(db, hosts, segmentCount, 1000);
  if (!usePglite || process.argv.includes("--analyze")) await db.query("ANALYZE");
  const groups = searchGroups(segments[7]!);
  const base = { groups, groupPolicy: "none" as const };
  const queries: [string, CandidateQuery & { limit: number }][] = [
    ["candidates (limit 50)", { ...base, limit: 50 }],
    [
      "scheduler (order most_free, limit 100)",
      { ...base, limit: 100, order: { resourceClass: "MEMORY_MB", direction: "most_free" as const } },
    ],
    [
      "scheduler, no member_of (order most_free, limit 26)",
      {
        groups: [groups[0]!],
        limit: 26,
        order: { resourceClass: "MEMORY_MB", direction: "most_free" as const },
      },
    ],
  ];
  for (const [label, q] of queries) {
    const sharing = new Set(["IPV4_ADDRESS"]);
    const { sql, params } = candidatesQuery(q, q.limit, {
      sharingClasses: sharing,
      onlySharedClasses: sharing,
    });
    console.log(`\n=== ${label}\n${sql}\n`);
    // --generic: the plan the scheduler runs (its statements ask for a generic plan), not the
    // custom plan EXPLAIN makes for these parameter values.
    const plan = process.argv.includes("--generic")
      ? await db.transaction(async (tx) => {
          await tx.query("SET LOCAL plan_cache_mode = force_generic_plan");
          const types = params.map(() => "unknown").join(", ");
          await tx.query(`PREPARE explained${types ? `(${types})` : ""} AS ${sql}`);
          const literal = (v: unknown) =>
            Array.isArray(v)
              ? `ARRAY[${v.map((x) => `'${String(x).replaceAll("'", "''")}'`).join(", ")}]`
              : `'${String(v).replaceAll("'", "''")}'`;
          const rows = await tx.query<{ "QUERY PLAN": string }>(
            `EXPLAIN (ANALYZE, BUFFERS) EXECUTE explained${params.length ? `(${params.map(literal).join(", ")})` : ""}`,
          );
          await tx.query("DEALLOCATE explained");
          return rows;
        })
      : await db.query<{ "QUERY PLAN": string }>(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, params);
    if (!process.argv.includes("--quiet")) console.log(plan.map((r) => r["QUERY PLAN"]).join("\n"));
    // Warm wall-clock of the statement AllocationCandidates.list runs, and of its roots part alone,
    // prepared with a generic plan as the scheduler runs them.
    const roots = rootsQuery(q, q.limit, { sharingClasses: sharing, onlySharedClasses: sharing });
    const t = { roots: [] as number[], all: [] as number[] };
    for (let i = 0; i < 60; i++) {
      const t0 = performance.now();
      await db.query(roots.sql, roots.params, GENERIC_PLAN);
      const t1 = performance.now();
      await db.query(sql, params, GENERIC_PLAN);
      const t2 = performance.now();
      if (i >= 10) {
        t.roots.push(t1 - t0);
        t.all.push(t2 - t1);
      }
    }
    const med = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(1);
    console.log(`${label}: roots alone ${med(t.roots)} ms, roots + trees ${med(t.all)} ms (medians)`);
    if (tmp) {
      // On two connections of their own, interleaved so that both see the same load: the
      // statement plain (parsed and planned per call), prepared (named; the server picks custom or
      // generic plans), and prepared with plan_cache_mode = force_generic_plan.
      const plainC = new pg.Client({ connectionString: tmp.url, options: "-c jit=off" });
      const genericC = new pg.Client({ connectionString: tmp.url, options: "-c jit=off" });
      await plainC.connect();
      await genericC.connect();
      await genericC.query("SET plan_cache_mode = force_generic_plan");
      const r = { plain: [] as number[], named: [] as number[], generic: [] as number[] };
      for (let i = 0; i < 110; i++) {
        let t0 = performance.now();
        await plainC.query(sql, params);
        if (i >= 10) r.plain.push(performance.now() - t0);
        t0 = performance.now();
        await plainC.query({ name: "n", text: sql, values: params });
        if (i >= 10) r.named.push(performance.now() - t0);
        t0 = performance.now();
        await genericC.query({ name: "g", text: sql, values: params });
        if (i >= 10) r.generic.push(performance.now() - t0);
      }
      const [stat] = (
        await plainC.query<{ generic_plans: string; custom_plans: string }>(
          "SELECT generic_plans, custom_plans FROM pg_prepared_statements",
        )
      ).rows;
      await plainC.end();
      await genericC.end();
      console.log(
        `${label}: plain ${med(r.plain)} ms, prepared ${med(r.named)} ms (${stat?.generic_plans} generic, ` +
          `${stat?.custom_plans} custom plans), forced generic ${med(r.generic)} ms (medians, interleaved)`,
      );
    }
  }
} finally {
  await db.close();
  await tmp?.drop();
  rmSync(dataDir, { recursive: true, force: true });
}
