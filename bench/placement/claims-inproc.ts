// In-process claims: a Scheduler on a pg pool of this process (no RPC, no NATS), filling a
// SQL-seeded cloud with single-instance SelectDestinations at a given concurrency, with the time
// spent per statement kind. node --import tsx bench/placement/claims-inproc.ts [hosts] [segments] [concurrency]
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createLogger, type Database, isStratusError, migrationsFrom, openDatabase } from "@stratus/runtime";
import { createTempDatabase, repoRoot } from "@stratus/runtime/testing";
import pg from "pg";
import { AllocationCandidates } from "../../services/scheduler/src/placement/candidates/allocation-candidates.js";
import { Placement } from "../../services/scheduler/src/placement/placement.js";
import { Scheduler } from "../../services/scheduler/src/scheduling/scheduler.js";
import { searchGroups, seedCloud } from "./cloud.js";

const hosts = Number(process.argv[2] ?? 1000);
const segmentCount = Number(process.argv[3] ?? 20);
const concurrency = Number(process.argv[4] ?? 16);
// --instances N: N instances per call (a small flavor); --no-member-of: no port group (the boot
// bench's "none" case). SCHEDULER_POOL_TTL_MS as the scheduler's (0: a candidate search per call).
const instances = process.argv.includes("--instances")
  ? Number(process.argv[process.argv.indexOf("--instances") + 1])
  : 1;
const noMemberOf = process.argv.includes("--no-member-of");
const maxClaims = process.argv.includes("--max-claims")
  ? Number(process.argv[process.argv.indexOf("--max-claims") + 1])
  : Number.POSITIVE_INFINITY;
const tmp = await createTempDatabase("stratus_claims");
if (process.argv.includes("--async-commit")) {
  // Diagnosis only: how much of a claim's time is the WAL flush at commit.
  const admin = new pg.Client({ connectionString: tmp.url });
  await admin.connect();
  await admin.query(`ALTER DATABASE ${new URL(tmp.url).pathname.slice(1)} SET synchronous_commit = off`);
  await admin.end();
}
const db = await openDatabase({
  service: "scheduler",
  url: tmp.url,
  dataDir: "/tmp",
  migrations: migrationsFrom(join(repoRoot, "services/scheduler/migrations")),
  logger: createLogger("claims", "fatal"),
});
const stats = new Map<string, { n: number; ms: number; cpu: number }>();
const timed: Database = {
  ...db,
  kind: db.kind,
  close: () => db.close(),
  transaction: (fn, o) => {
    const t0 = performance.now();
    return db.transaction(fn, o).finally(() => {
      const s = stats.get("transaction") ?? { n: 0, ms: 0, cpu: 0 };
      s.n++;
      s.ms += performance.now() - t0;
      stats.set("transaction", s);
    });
  },
  query: async (sql, params, options) => {
    const t0 = performance.now();
    const key = sql.trim().slice(0, 40).replace(/\s+/g, " ");
    // Sequential runs (concurrency 1): server CPU per statement kind as well.
    const c0 = concurrency === 1 ? await backendTicks() : 0;
    try {
      return (await db.query(sql, params, options)) as never;
    } finally {
      const s = stats.get(key) ?? { n: 0, ms: 0, cpu: 0 };
      s.n++;
      s.ms += performance.now() - t0;
      if (concurrency === 1) s.cpu += ((await backendTicks()) - c0) * 10;
      stats.set(key, s);
    }
  },
};
/** CPU ticks (1/100 s) of this database's server backends, e.g. the pool's connections. */
async function backendTicks(): Promise<number> {
  const pids = await db.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()",
  );
  let ticks = 0;
  for (const { pid } of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone
    }
  }
  return ticks;
}

try {
  const { segments, hostUuids } = await seedCloud(
    db,
    hosts,
    segmentCount,
    Math.ceil(hosts / segmentCount) * 2,
  );
  if (!process.argv.includes("--no-analyze")) await db.query("ANALYZE");
  const scheduler = new Scheduler(
    new Placement(timed),
    new AllocationCandidates(timed),
    {
      maxAlternates: 2,
      candidateLimit: 100,
      poolTtlMs: Number(process.env.SCHEDULER_POOL_TTL_MS ?? 1000),
      // PostgreSQL, which other schedulers could share (as main.ts decides it).
      soleWriterOfPlacement: false,
    },
    () => undefined,
  );
  if (process.argv.includes("--candidates-only")) {
    // Server CPU and wall time of ListAllocationCandidates' search (limit 50, the bench's
    // request), sequential, cycling over the segments.
    const finder = new AllocationCandidates(db);
    const c0 = await backendTicks();
    const times: number[] = [];
    for (let i = 0; i < 500; i++) {
      const t = performance.now();
      await finder.list({
        groups: searchGroups(segments[i % segmentCount]!),
        groupPolicy: "none",
        limit: 50,
      });
      if (i >= 20) times.push(performance.now() - t);
    }
    const cpu = (((await backendTicks()) - c0) * 10) / 500;
    times.sort((a, b) => a - b);
    console.log(
      `500 candidate searches (limit 50): p50 ${times[Math.floor(times.length / 2)]!.toFixed(1)} ms, ` +
        `p99 ${times[Math.ceil(times.length * 0.99) - 1]!.toFixed(1)} ms, server CPU ${cpu.toFixed(2)} ms each`,
    );
  }
  if (process.argv.includes("--claim-statement-only")) {
    // Server CPU of the claim statement alone, sequential, one claim per host (no contention).
    const placement = new Placement(db);
    const c0 = await backendTicks();
    const t = performance.now();
    for (let i = 0; i < Math.min(1000, hosts); i++) {
      await placement.claims.claimNew({
        consumerUuid: randomUUID(),
        projectId: "bench",
        userId: "bench",
        allocations: [
          { providerUuid: hostUuids[i]!, resources: { VCPU: 1, MEMORY_MB: 1024, DISK_GB: 10 } },
          { providerUuid: segments[i % segmentCount]!, resources: { IPV4_ADDRESS: 1 } },
        ],
      });
    }
    console.log(
      `1000 claim statements: ${((performance.now() - t) / 1000).toFixed(2)} s, server CPU ${((((await backendTicks()) - c0) * 10) / 1000).toFixed(2)} ms each`,
    );
  }
  // --candidates-only / --claim-statement-only: no fill.
  const open = new Set(process.argv.some((a) => a.endsWith("-only")) ? [] : segments);
  let claimed = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const ticks0 = await backendTicks();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (open.size && claimed < maxClaims) {
        const segment = [...open][Math.floor(Math.random() * open.size)]!;
        try {
          await scheduler.selectDestinations({
            instanceUuids: Array.from({ length: instances }, () => randomUUID()),
            projectId: "bench",
            userId: "bench",
            resources:
              instances > 1
                ? { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 }
                : { VCPU: 8, MEMORY_MB: 16384, DISK_GB: 160 },
            extraGroups: noMemberOf
              ? []
              : [
                  {
                    suffix: "PORT1",
                    resources: { IPV4_ADDRESS: 1 },
                    requiredTraits: [],
                    forbiddenTraits: [],
                    memberOf: [[segment]],
                  },
                ],
            requiredAggregates: [],
            requiredTraits: [],
            forbiddenTraits: [],
            ignoreHosts: [],
            forceHosts: [],
            weigher: "spread",
            maxAlternates: 0,
          });
          claimed += instances;
        } catch (err) {
          if (!isStratusError(err, "no_valid_host")) throw err;
          open.delete(segment);
        }
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const ticks = (await backendTicks()) - ticks0;
  const node = process.cpuUsage(cpu0);
  if (claimed)
    console.log(
      `${claimed} claims in ${secs.toFixed(2)} s: ${(claimed / secs).toFixed(0)}/s; CPU per claim: ` +
        `server backends ${((ticks * 10) / claimed).toFixed(2)} ms, this process ${((node.user + node.system) / 1000 / claimed).toFixed(2)} ms`,
    );
  for (const [k, v] of claimed ? [...stats.entries()].sort((a, b) => b[1].ms - a[1].ms) : []) {
    console.log(
      `${String(v.n).padStart(6)} × ${(v.ms / v.n).toFixed(2).padStart(7)} ms` +
        (concurrency === 1 ? ` (server CPU ${(v.cpu / v.n).toFixed(2)} ms)` : "") +
        `  ${k}`,
    );
  }
} finally {
  await db.close();
  await tmp.drop();
}
