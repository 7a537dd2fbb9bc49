// IPAM benchmark: CreatePort (one automatic IPv4 allocation each) against a real network-adapter
// process over Connect, sequentially and with 64 concurrent callers, on PGlite and on PostgreSQL
// (one adapter, then two adapters sharing the database). Prints allocations/s, p50 and p99
// latency, the CPU each side spends per call in the concurrent phase (Linux), and checks that no
// address was handed out twice (over RPC, and with SQL on PostgreSQL).
//
//   node --import tsx bench/ipam/main.ts [--sequential 500] [--concurrent 4000] [--callers 64]
//     [--warmup 1000] [--client connect|light]
//     [--only core-pglite,core-pg,rpc-pglite,rpc-pg1,rpc-pg2]   (default: all of them)
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  CreateNetworkRequestSchema,
  type CreatePortRequest,
  CreatePortRequestSchema,
  CreateSubnetRequestSchema,
  NetworkService,
} from "@stratus/contracts/network/v1";
import { createLogger, migrationsFrom, openDatabase, serviceClient } from "@stratus/runtime";
import {
  createTempDatabase,
  meshIdentity,
  postgresAvailable,
  type ServiceProcess,
  startNats,
  startService,
} from "@stratus/runtime/testing";
import pg from "pg";
import { Outbox, type Tx } from "../../services/network-adapter/src/core/context.js";
import { createNetwork } from "../../services/network-adapter/src/core/networks.js";
import { PortService } from "../../services/network-adapter/src/core/port-service.js";
import { createSubnet } from "../../services/network-adapter/src/core/subnets.js";
import { Work } from "../../services/network-adapter/src/core/work.js";

const { values } = parseArgs({
  options: {
    sequential: { type: "string", default: "500" },
    concurrent: { type: "string", default: "4000" },
    callers: { type: "string", default: "64" },
    warmup: { type: "string", default: "1000" },
    client: { type: "string", default: "connect" },
    only: { type: "string", default: "core-pglite,core-pg,rpc-pglite,rpc-pg1,rpc-pg2" },
  },
});
const SEQUENTIAL = Number(values.sequential);
const CONCURRENT = Number(values.concurrent);
const CALLERS = Number(values.callers);
// Calls made at full concurrency before anything is measured: a fresh adapter process runs its
// first ~1,000 calls several times slower while the JIT compiles its hot paths, which set the
// p99 of a 4,000-call run (timeline of one run: the first fifth held nearly every slow call).
const WARMUP = Number(values.warmup);
// connect: the callers use the Connect client the services use (serviceClient). light: a bare
// HTTP/2 client speaking the same Connect unary protocol with one pre-encoded request, a load
// generator that costs the shared two cores far less per call; every answer must be HTTP 200.
const CLIENT = values.client;
if (CLIENT !== "connect" && CLIENT !== "light") throw new Error("--client: connect or light");
const ONLY = new Set(values.only.split(","));

type Client = ReturnType<typeof serviceClient<typeof NetworkService>>;
/** What a caller does once: CreatePort with one automatic allocation. */
type Allocate = (caller: number) => Promise<unknown>;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

interface Figures {
  calls: number;
  perSecond: number;
  p50: number;
  p99: number;
}

async function run(allocate: Allocate, total: number, callers: number): Promise<Figures> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async (_, c) => {
      while (next < total) {
        next++;
        const t = performance.now();
        await allocate(c);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    calls: latencies.length,
    perSecond: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

async function duplicatesOverRpc(
  client: Client,
  networkId: string,
): Promise<{ ports: number; duplicates: number }> {
  const { ports } = await client.listPorts({ networkId });
  const ips = ports.flatMap((p) => p.fixedIps.map((f) => `${f.subnetId}/${f.ipAddress}`));
  return { ports: ports.length, duplicates: ips.length - new Set(ips).size };
}

/**
 * CreatePort over a bare HTTP/2 session: Connect unary, binary, the request encoded once, with the
 * token of the harness's `tools` credential (the one serviceClient carries).
 */
function lightCreatePort(
  baseUrl: string,
  body: Uint8Array,
  token: () => string | undefined,
): { call: () => Promise<void>; close: () => void } {
  const session = http2.connect(baseUrl);
  const path = `/${NetworkService.typeName}/CreatePort`;
  return {
    call: () =>
      new Promise<void>((resolve, reject) => {
        const req = session.request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/proto",
          "connect-protocol-version": "1",
          authorization: `Bearer ${token()}`,
        });
        let status = 0;
        req.on("response", (h) => {
          status = Number(h[":status"]);
        });
        req.on("data", () => {});
        req.on("end", () => (status === 200 ? resolve() : reject(new Error(`CreatePort: HTTP ${status}`))));
        req.on("error", reject);
        req.end(body);
      }),
    close: () => session.close(),
  };
}

/** CPU time (ms) a process has used, from /proc (Linux); 0 where that is not readable. */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, in 10 ms ticks
  } catch {
    return 0;
  }
}

/**
 * CPU spent per call by each side during fn: this process (the callers), the adapters, and the
 * PostgreSQL backends of the database. Less sensitive than calls/s to what else the machine runs.
 */
async function cpuPerCall(
  adapters: ServiceProcess[],
  databaseUrl: string | undefined,
  fn: () => Promise<Figures>,
): Promise<{ figures: Figures; line: string }> {
  const backends = async (): Promise<number[]> => {
    if (!databaseUrl) return [];
    const sql = new pg.Client({ connectionString: databaseUrl });
    await sql.connect();
    const { rows } = await sql.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    await sql.end();
    return rows.map((r) => r.pid);
  };
  const before = new Map((await backends()).map((pid) => [pid, cpuMs(pid)]));
  const adapters0 = adapters.map((a) => cpuMs(a.proc.pid!));
  const self0 = process.cpuUsage();
  const figures = await fn();
  const self = process.cpuUsage(self0);
  const adapterMs = adapters.reduce((sum, a, i) => sum + cpuMs(a.proc.pid!) - adapters0[i]!, 0);
  let dbMs = 0;
  for (const pid of await backends()) dbMs += cpuMs(pid) - (before.get(pid) ?? 0);
  const per = (ms: number) => (ms / figures.calls).toFixed(2);
  return {
    figures,
    line: `CPU per call: callers ${per((self.user + self.system) / 1000)} ms, adapter${adapters.length > 1 ? "s" : ""} ${per(adapterMs)} ms${databaseUrl ? `, PostgreSQL ${per(dbMs)} ms` : ""}`,
  };
}

const fmt = (f: Figures) =>
  `${String(f.calls).padStart(5)} calls  ${f.perSecond.toFixed(0).padStart(6)} alloc/s  p50 ${f.p50.toFixed(1).padStart(6)} ms  p99 ${f.p99.toFixed(1).padStart(6)} ms`;

async function scenario(label: string, adapters: number, databaseUrl?: string): Promise<void> {
  const nats = await startNats();
  const dataDir = mkdtempSync(join(tmpdir(), "stratus-bench-ipam-"));
  const env: Record<string, string> = {
    NATS_URL: nats.url,
    LOG_LEVEL: "warn",
    // Thousands of ports in one project: past Neutron's default port quota (500).
    QUOTA_PORT: "-1",
    STRATUS_DATA_DIR: dataDir,
    SCHEDULER_URL: "http://127.0.0.1:1",
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
  };
  const procs: ServiceProcess[] = [];
  try {
    for (let i = 0; i < adapters; i++) procs.push(await startService("network-adapter", env));
    const clients = procs.map((p) => serviceClient(NetworkService, p.url));
    const { network } = await clients[0]!.createNetwork({ name: "bench", projectId: "bench" });
    await clients[0]!.createSubnet({ networkId: network!.id, cidr: "10.64.0.0/16" });
    const connectCall: Allocate = (c) =>
      clients[c % clients.length]!.createPort({ networkId: network!.id, projectId: "bench" });
    const tools = (await meshIdentity(nats)).tools;
    const light = procs.map((p) =>
      lightCreatePort(
        p.url,
        toBinary(
          CreatePortRequestSchema,
          create(CreatePortRequestSchema, { networkId: network!.id, projectId: "bench" }),
        ),
        () => tools.token(),
      ),
    );
    const allocate: Allocate = CLIENT === "light" ? (c) => light[c % light.length]!.call() : connectCall;
    // Warm-up (JIT, connection pools, HTTP/2 sessions).
    await run(allocate, WARMUP, CALLERS); // not measured: see WARMUP
    const seq = await run(allocate, SEQUENTIAL, 1);
    const { figures: conc, line: cpu } = await cpuPerCall(procs, databaseUrl, () =>
      run(allocate, CONCURRENT, CALLERS),
    );
    const check = await duplicatesOverRpc(clients[0]!, network!.id);
    let sqlCheck = "";
    if (databaseUrl) {
      const sql = new pg.Client({ connectionString: databaseUrl });
      await sql.connect();
      const { rows } = await sql.query(
        "SELECT count(*)::int AS n, count(DISTINCT (subnet_id, ip))::int AS d FROM ip_allocations",
      );
      await sql.end();
      sqlCheck = `; SQL: ${rows[0].n} allocations, ${rows[0].n - rows[0].d} duplicates`;
    }
    console.log(`\n${label}${CLIENT === "light" ? " (callers: light HTTP/2 client)" : ""}`);
    console.log(`  sequential (1 caller)      ${fmt(seq)}`);
    console.log(`  concurrent (${CALLERS} callers)   ${fmt(conc)}`);
    console.log(`    ${cpu}`);
    console.log(`  ports ${check.ports}, duplicate addresses ${check.duplicates}${sqlCheck}`);
    for (const l of light) l.close();
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await nats.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The IPAM core in this process, without RPC: what the database path costs by itself. */
async function inProcess(label: string, databaseUrl?: string): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "stratus-bench-ipam-"));
  const db = await openDatabase({
    service: "network-adapter",
    url: databaseUrl,
    dataDir,
    migrations: migrationsFrom(
      new URL("../../services/network-adapter/migrations", import.meta.url).pathname,
    ),
    logger: createLogger("bench", "warn"),
    poolSize: 16,
  });
  const caller = { projectId: "", isAdmin: true };
  const tx = <T>(fn: (t: Tx) => Promise<T>) => db.transaction((q) => fn({ q, out: new Outbox(), caller }));
  await db.query("UPDATE quota_defaults SET hard_limit = -1 WHERE resource = 'port'");
  try {
    const net = await tx((t) =>
      createNetwork(t, create(CreateNetworkRequestSchema, { name: "bench", projectId: "bench" })),
    );
    await tx((t) =>
      createSubnet(
        t,
        create(CreateSubnetRequestSchema, {
          networkId: net.id,
          projectId: "bench",
          cidr: "10.64.0.0/16",
          enableDhcp: true,
        }),
      ),
    );
    const request: CreatePortRequest = create(CreatePortRequestSchema, {
      networkId: net.id,
      projectId: "bench",
    });
    // As the RPC does it: the one-statement common case (batched), else the transaction.
    const ports = new PortService(new Work(db, async () => {}));
    const allocate: Allocate = () => ports.create(request, caller);
    await run(allocate, WARMUP, CALLERS); // not measured: see WARMUP
    const seq = await run(allocate, SEQUENTIAL, 1);
    const conc = await run(allocate, CONCURRENT, CALLERS);
    const [row] = await db.query<{ n: number; d: number }>(
      "SELECT count(*)::int AS n, count(DISTINCT (subnet_id, ip))::int AS d FROM ip_allocations",
    );
    console.log(`\n${label}`);
    console.log(`  sequential (1 caller)      ${fmt(seq)}`);
    console.log(`  concurrent (${CALLERS} callers)   ${fmt(conc)}`);
    console.log(`  SQL: ${row!.n} allocations, ${row!.n - row!.d} duplicates`);
  } finally {
    await db.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

console.log(`IPAM benchmark: CreatePort with one automatic IPv4 allocation into a /16`);
const pgUp = await postgresAvailable();
if (ONLY.has("core-pglite")) await inProcess("IPAM core in-process (no RPC), PGlite");
if (pgUp && ONLY.has("core-pg")) {
  const db = await createTempDatabase("stratus_bench_ipam");
  try {
    await inProcess("IPAM core in-process (no RPC), PostgreSQL (pool 16)", db.url);
  } finally {
    await db.drop();
  }
}
if (ONLY.has("rpc-pglite")) {
  await scenario("Over Connect (h2c, binary): PGlite (embedded), 1 network-adapter", 1);
}
if (pgUp) {
  for (const adapters of [1, 2]) {
    if (!ONLY.has(`rpc-pg${adapters}`)) continue;
    const db = await createTempDatabase("stratus_bench_ipam");
    try {
      await scenario(
        `Over Connect (h2c, binary): PostgreSQL, ${adapters} network-adapter${adapters > 1 ? "s" : ""}`,
        adapters,
        db.url,
      );
    } finally {
      await db.drop();
    }
  }
} else {
  console.log("\nPostgreSQL on 127.0.0.1:5432 is not reachable: skipped");
}
