// Placement benchmark (issue 4): allocation-candidate latency and claims per second through the
// real RPC path (a scheduler process started with startService, called with serviceClient), on
// PGlite and on PostgreSQL, with 1,000 / 10,000 compute providers in 20 / 100 segment aggregates.
//
//   node --import tsx bench/placement/main.ts [--backend pglite,postgres] [--providers 1000,10000]
//     [--segments 20,100] [--runs 3] [--samples 300] [--warmup 200] [--concurrency 16] [--slots 2]
//     [--load rpc|sql] [--no-claims] [--claim-max-providers 1000]
//
// Each run starts from an empty database: load the cloud, measure candidates (sequential
// ListAllocationCandidates, limit 50), then fill the cloud with SelectDestinations (claims) at the
// given concurrency until every host is full, and check the database afterwards.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GroupPolicy, PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { SchedulerService } from "@stratus/contracts/scheduler/v1/scheduler";
import {
  createLogger,
  type Database,
  isStratusError,
  migrationsFrom,
  openDatabase,
  serviceClient,
} from "@stratus/runtime";
import {
  createTempDatabase,
  postgresAvailable,
  repoRoot,
  type ServiceProcess,
  startNats,
  startService,
  type TempDatabase,
  type TestNats,
} from "@stratus/runtime/testing";
import { AllocationCandidates } from "../../services/scheduler/src/placement/candidates/allocation-candidates.js";
import { searchGroups } from "./cloud.js";

type Backend = "pglite" | "postgres";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const list = (s: string) => s.split(",").filter(Boolean);

const backends = list(option("backend", "pglite,postgres")) as Backend[];
const providerCounts = list(option("providers", "1000,10000")).map(Number);
const segmentCounts = list(option("segments", "20,100")).map(Number);
const runs = Number(option("runs", "3"));
const samples = Number(option("samples", "300"));
// Calls before the timed ones: a fresh scheduler's first ~100 searches ran slower (JIT, caches).
const warmup = Number(option("warmup", "200"));
const concurrency = Number(option("concurrency", "16"));
const slots = Number(option("slots", "2"));
const load = option("load", "rpc") as "rpc" | "sql";
const claims = !process.argv.includes("--no-claims");
// Filling 10,000 hosts takes providers × slots claims (minutes on a 2-core machine): by default
// the fill runs only where providers <= this; --claim-max-providers 10000 fills every config.
const claimMaxProviders = Number(option("claim-max-providers", "1000"));
const LIMIT = 50;

// Every compute host: 8 VCPU, 16 GiB, 160 GB. The claim flavor takes 1/slots of a host, so the
// cloud is full after providers × slots claims; the candidate request asks for a small flavor.
const HOST = { VCPU: 8, MEMORY_MB: 16384, DISK_GB: 160 };
const CLAIM_FLAVOR = {
  VCPU: BigInt(HOST.VCPU / slots),
  MEMORY_MB: BigInt(HOST.MEMORY_MB / slots),
  DISK_GB: BigInt(HOST.DISK_GB / slots),
};
const PROBE_FLAVOR = { VCPU: 1n, MEMORY_MB: 1024n, DISK_GB: 10n };

const log = (msg: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface Cloud {
  segments: string[];
  hosts: number;
}

interface RunResult {
  loadSeconds: number;
  p50: number;
  p99: number;
  /** In-process AllocationCandidates.list (same database, no RPC), PostgreSQL only. */
  inProcP50?: number;
  inProcP99?: number;
  claimsPerSecond?: number;
  claimed?: number;
  claimP50?: number;
  claimP99?: number;
  earlyRefusals?: number;
  sweepClaims?: number;
  overCommitted?: number;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const median = (xs: number[]) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (!s.length) return Number.NaN;
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

type Placement = ReturnType<typeof serviceClient<typeof PlacementService>>;

/** Registers the cloud over PlacementService, as the network-adapter and compute-agent do. */
async function loadByRpc(placement: Placement, hosts: number, segmentCount: number): Promise<Cloud> {
  const segments = Array.from({ length: segmentCount }, () => randomUUID());
  const ipsPerSegment = Math.ceil(hosts / segmentCount) * slots * 2;
  await pool(segments, 8, async (id) => {
    await placement.ensureResourceProvider({ uuid: id, name: `segment-${id}` });
    let gen = (
      await placement.setInventories({
        providerUuid: id,
        providerGeneration: 0n,
        inventories: [{ resourceClass: "IPV4_ADDRESS", total: BigInt(ipsPerSegment) }],
      })
    ).providerGeneration;
    gen = (
      await placement.setTraits({
        providerUuid: id,
        providerGeneration: gen,
        traits: ["MISC_SHARES_VIA_AGGREGATE"],
      })
    ).providerGeneration;
    await placement.setAggregates({ providerUuid: id, providerGeneration: gen, aggregateUuids: [id] });
  });
  const indexes = Array.from({ length: hosts }, (_, i) => i);
  let done = 0;
  await pool(indexes, 32, async (i) => {
    const uuid = randomUUID();
    await placement.ensureResourceProvider({ uuid, name: `compute-${i}` });
    const gen = (
      await placement.setInventories({
        providerUuid: uuid,
        providerGeneration: 0n,
        inventories: Object.entries(HOST).map(([resourceClass, total]) => ({
          resourceClass,
          total: BigInt(total),
        })),
      })
    ).providerGeneration;
    await placement.setAggregates({
      providerUuid: uuid,
      providerGeneration: gen,
      aggregateUuids: [segments[i % segmentCount]!],
    });
    if (++done % 2000 === 0) log(`  ${done} hosts registered`);
  });
  return { segments, hosts };
}

/**
 * Direct SQL seed into the scheduler's own schema (its migrations applied by openDatabase), writing
 * the same rows and generations the RPCs above would: for PGlite before the scheduler starts on
 * that data directory, for PostgreSQL before it connects.
 */
async function loadBySql(db: Database, hosts: number, segmentCount: number): Promise<Cloud> {
  const segments = Array.from({ length: segmentCount }, () => randomUUID());
  const ipsPerSegment = Math.ceil(hosts / segmentCount) * slots * 2;
  const hostUuids = Array.from({ length: hosts }, () => randomUUID());
  await db.transaction(async (tx) => {
    const insertProviders = `INSERT INTO resource_providers (id, uuid, name, generation, root_id, shares)
      SELECT n, u, nm, g, n, s FROM (
        SELECT nextval(pg_get_serial_sequence('resource_providers', 'id'))::int AS n, u, nm, g, s
        FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bool[]) AS x(u, nm, g, s)) q`;
    await tx.query(insertProviders, [
      segments,
      segments.map((s) => `segment-${s}`),
      segments.map(() => 3),
      segments.map(() => true),
    ]);
    await tx.query(insertProviders, [
      hostUuids,
      hostUuids.map((_, i) => `compute-${i}`),
      hostUuids.map(() => 2),
      hostUuids.map(() => false),
    ]);
    const invU: string[] = [];
    const invRc: string[] = [];
    const invTotal: number[] = [];
    for (const s of segments) {
      invU.push(s);
      invRc.push("IPV4_ADDRESS");
      invTotal.push(ipsPerSegment);
    }
    for (const h of hostUuids) {
      for (const [rc, total] of Object.entries(HOST)) {
        invU.push(h);
        invRc.push(rc);
        invTotal.push(total);
      }
    }
    await tx.query(
      `INSERT INTO inventories (provider_id, resource_class, total, max_unit)
       SELECT p.id, x.rc, x.total, x.total FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS x(u, rc, total)
       JOIN resource_providers p ON p.uuid = x.u`,
      [invU, invRc, invTotal],
    );
    await tx.query(
      `INSERT INTO provider_traits (provider_id, trait)
       SELECT id, 'MISC_SHARES_VIA_AGGREGATE' FROM resource_providers WHERE uuid = ANY($1::uuid[])`,
      [segments],
    );
    await tx.query(
      `INSERT INTO provider_aggregates (provider_id, aggregate_uuid)
       SELECT p.id, x.a FROM unnest($1::uuid[], $2::uuid[]) AS x(u, a) JOIN resource_providers p ON p.uuid = x.u`,
      [
        [...segments, ...hostUuids],
        [...segments, ...hostUuids.map((_, i) => segments[i % segmentCount]!)],
      ],
    );
  });
  return { segments, hosts };
}

function candidateRequest(segment: string) {
  return {
    groups: [
      { suffix: "", resources: PROBE_FLAVOR },
      { suffix: "PORT1", resources: { IPV4_ADDRESS: 1n }, memberOf: [{ aggregateUuids: [segment] }] },
    ],
    groupPolicy: GroupPolicy.NONE,
    limit: LIMIT,
  };
}

const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)]!;

async function measureCandidates(
  call: (segment: string) => Promise<number>,
  cloud: Cloud,
): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < warmup; i++) await call(pick(cloud.segments)); // warm-up
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const segment = cloud.segments[i % cloud.segments.length]!;
    const t0 = performance.now();
    const n = await call(segment);
    times.push(performance.now() - t0);
    if (n !== Math.min(LIMIT, Math.ceil(cloud.hosts / cloud.segments.length)) && i === 0) {
      log(
        `  note: ${n} candidates for a segment of ~${Math.ceil(cloud.hosts / cloud.segments.length)} hosts`,
      );
    }
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

/** SelectDestinations (one instance, flavor + one IPV4_ADDRESS on a segment) until all is full. */
async function fillCloud(url: string, cloud: Cloud) {
  const scheduler = serviceClient(SchedulerService, url);
  const open = new Set(cloud.segments);
  const times: number[] = [];
  let claimed = 0;
  let earlyRefusals = 0;
  const select = (segment: string) =>
    scheduler.selectDestinations({
      spec: {
        instanceUuids: [randomUUID()],
        projectId: "bench",
        userId: "bench",
        resources: CLAIM_FLAVOR,
        extraGroups: [
          { suffix: "PORT1", resources: { IPV4_ADDRESS: 1n }, memberOf: [{ aggregateUuids: [segment] }] },
        ],
      },
    });
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (open.size) {
        const segment = pick([...open]);
        const s = performance.now();
        try {
          await select(segment);
          times.push(performance.now() - s);
          claimed++;
        } catch (err) {
          if (!isStratusError(err, "no_valid_host")) throw err;
          // Full (or this request lost every race for the last hosts; the sweep below catches that).
          open.delete(segment);
          earlyRefusals++;
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  // Sequential sweep: whatever a refused request under concurrency left behind.
  let sweepClaims = 0;
  for (const segment of cloud.segments) {
    for (;;) {
      try {
        await select(segment);
        sweepClaims++;
      } catch (err) {
        if (!isStratusError(err, "no_valid_host")) throw err;
        break;
      }
    }
  }
  times.sort((a, b) => a - b);
  return {
    claimsPerSecond: claimed / seconds,
    claimed,
    claimP50: percentile(times, 50),
    claimP99: percentile(times, 99),
    earlyRefusals,
    sweepClaims,
  };
}

const OVERCOMMIT_SQL = `SELECT count(*)::int AS n FROM (
  SELECT i.provider_id FROM inventories i
  LEFT JOIN allocations a ON a.provider_id = i.provider_id AND a.resource_class = i.resource_class
  GROUP BY i.provider_id, i.resource_class, i.capacity, i.used
  HAVING coalesce(sum(a.used), 0) > i.capacity OR coalesce(sum(a.used), 0) <> i.used) x`;

async function oneRun(backend: Backend, hosts: number, segmentCount: number): Promise<RunResult> {
  const quiet = createLogger("bench", "warn");
  const dataDir = mkdtempSync(join(tmpdir(), "stratus-bench-"));
  let nats: TestNats | undefined;
  let pgDb: TempDatabase | undefined;
  let scheduler: ServiceProcess | undefined;
  let direct: Database | undefined;
  const migrations = migrationsFrom(join(repoRoot, "services/scheduler/migrations"));
  try {
    nats = await startNats();
    const env: Record<string, string> = { NATS_URL: nats.url, STRATUS_DATA_DIR: dataDir, LOG_LEVEL: "warn" };
    if (backend === "postgres") {
      pgDb = await createTempDatabase("stratus_bench");
      env.DATABASE_URL = pgDb.url;
    }
    let cloud: Cloud | undefined;
    const t0 = performance.now();
    if (load === "sql") {
      const seedDb = await openDatabase({
        service: "scheduler",
        url: pgDb?.url,
        dataDir,
        migrations,
        logger: quiet,
        poolSize: 2,
      });
      try {
        cloud = await loadBySql(seedDb, hosts, segmentCount);
      } finally {
        await seedDb.close();
      }
    }
    scheduler = await startService("scheduler", env);
    const placement = serviceClient(PlacementService, scheduler.url);
    if (!cloud) cloud = await loadByRpc(placement, hosts, segmentCount);
    const loadSeconds = (performance.now() - t0) / 1000;
    if (pgDb) {
      // What autovacuum's analyze does within a minute of a bulk load (PGlite has no autovacuum).
      direct = await openDatabase({
        service: "scheduler",
        url: pgDb.url,
        dataDir,
        migrations,
        logger: quiet,
        poolSize: 2,
      });
      await direct.query("ANALYZE");
    }
    const rpc = await measureCandidates(
      async (segment) =>
        (await placement.listAllocationCandidates(candidateRequest(segment))).candidates.length,
      cloud,
    );
    const result: RunResult = { loadSeconds, ...rpc };
    if (direct) {
      const finder = new AllocationCandidates(direct);
      const inProc = await measureCandidates(
        async (segment) =>
          (
            await finder.list({
              groups: searchGroups(segment),
              groupPolicy: "none",
              limit: LIMIT,
            })
          ).candidates.length,
        cloud,
      );
      result.inProcP50 = inProc.p50;
      result.inProcP99 = inProc.p99;
    }
    if (claims && hosts <= claimMaxProviders) {
      Object.assign(result, await fillCloud(scheduler.url, cloud));
      const checker =
        direct ??
        (await (async () => {
          await scheduler!.stop();
          scheduler = undefined;
          direct = await openDatabase({ service: "scheduler", dataDir, migrations, logger: quiet });
          return direct;
        })());
      const [row] = await checker.query<{ n: number }>(OVERCOMMIT_SQL);
      result.overCommitted = row!.n;
    }
    return result;
  } finally {
    await direct?.close().catch(() => undefined);
    await scheduler?.stop();
    await nats?.stop();
    await pgDb?.drop().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const fmt = (x: number | undefined, digits = 1) =>
  x === undefined || Number.isNaN(x) ? "-" : x.toFixed(digits);

async function main() {
  if (backends.includes("postgres") && !(await postgresAvailable())) {
    throw new Error("PostgreSQL on 127.0.0.1:5432 is not reachable (or pass --backend pglite)");
  }
  const rows: string[][] = [];
  for (const backend of backends) {
    for (const hosts of providerCounts) {
      for (const segmentCount of segmentCounts) {
        const results: RunResult[] = [];
        for (let r = 1; r <= runs; r++) {
          log(`${backend} ${hosts} providers / ${segmentCount} segments: run ${r}/${runs}`);
          const res = await oneRun(backend, hosts, segmentCount);
          log(
            `  load ${fmt(res.loadSeconds)} s, candidates p50 ${fmt(res.p50)} p99 ${fmt(res.p99)} ms` +
              (res.inProcP50 !== undefined
                ? ` (in-process ${fmt(res.inProcP50)}/${fmt(res.inProcP99)})`
                : "") +
              (res.claimsPerSecond !== undefined
                ? `, ${fmt(res.claimsPerSecond, 0)} claims/s (${res.claimed} + sweep ${res.sweepClaims}, ` +
                  `latency p50 ${fmt(res.claimP50)} p99 ${fmt(res.claimP99)} ms, over-committed ${res.overCommitted})`
                : ""),
          );
          results.push(res);
        }
        const m = (f: (r: RunResult) => number | undefined) =>
          median(results.map(f).filter((x): x is number => x !== undefined));
        const totalClaimed = results.map((r) => (r.claimed ?? 0) + (r.sweepClaims ?? 0));
        const filled = claims && hosts <= claimMaxProviders;
        rows.push([
          backend,
          String(hosts),
          String(segmentCount),
          `${fmt(m((r) => r.loadSeconds))} s`,
          fmt(m((r) => r.p50)),
          fmt(m((r) => r.p99)),
          `${fmt(m((r) => r.inProcP50))} / ${fmt(m((r) => r.inProcP99))}`,
          filled
            ? fmt(
                m((r) => r.claimsPerSecond),
                0,
              )
            : "-",
          filled ? `${fmt(m((r) => r.claimP50))} / ${fmt(m((r) => r.claimP99))}` : "-",
          filled
            ? `${Math.min(...totalClaimed)}..${Math.max(...totalClaimed)} of ${hosts * slots}, over ${Math.max(...results.map((r) => r.overCommitted ?? 0))}`
            : "-",
        ]);
      }
    }
  }
  const header = [
    "backend",
    "providers",
    "segments",
    `load (${load})`,
    "cand p50 ms",
    "cand p99 ms",
    "in-proc p50/p99",
    "claims/s",
    "claim p50/p99 ms",
    "filled (all runs)",
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  console.log();
  console.log(
    `Placement benchmark: medians of ${runs} run(s); candidates = ${samples} sequential ListAllocationCandidates ` +
      `(limit ${LIMIT}; VCPU 1, MEMORY_MB 1024, DISK_GB 10 + group PORT1 IPV4_ADDRESS 1 member_of one segment) over RPC;`,
  );
  console.log(
    `claims = SelectDestinations (1 instance, ${CLAIM_FLAVOR.VCPU} VCPU / ${CLAIM_FLAVOR.MEMORY_MB} MB / ` +
      `${CLAIM_FLAVOR.DISK_GB} GB + 1 IPV4_ADDRESS on a random open segment) at concurrency ${concurrency} until ` +
      `every host is full (${slots} per host); providers loaded by ${load === "rpc" ? "PlacementService RPCs (parallel batches)" : "direct SQL seed into the scheduler's migrated schema"}.`,
  );
  console.log("Targets: candidates p99 < 25 ms at 10,000 providers; >= 500 claims/s.");
  console.log(line(header));
  console.log(line(widths.map((w) => "-".repeat(w))));
  for (const r of rows) console.log(line(r));
}

await main();
