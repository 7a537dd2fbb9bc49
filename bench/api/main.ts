// API benchmark: GET /servers/detail?limit=100 with BENCH_SERVERS servers in the project, and
// POST /servers (networks: none) until accepted (202), each with BENCH_CLIENTS concurrent clients
// over keep-alive HTTP/1.1 (node:http), against the whole mesh as processes (real NATS).
//   npm run bench -- api
// Env: BENCH_SERVERS (default 10000), BENCH_CLIENTS (64), BENCH_LIST_REQUESTS (3000),
//      BENCH_CREATE_REQUESTS (2000), BENCH_HOSTS (200), BENCH_ROUNDS (3: each phase measured
//      that many times, the median printed), BENCH_PARSE_EVERY (50: one list body in 50 is parsed
//      and checked, the others only read), BENCH_LIST_CACHE_MS (the api's API_LIST_CACHE_MS; 0
//      measures lists without the cache), BENCH_BUILD_CONCURRENCY (the conductor's
//      BUILD_CONCURRENCY; 1 measures accepting with the builds all but paused),
//      BENCH_BACKEND (postgres: a throwaway PostgreSQL database per service via createTempDatabase;
//      pglite: the embedded default of the services).
import { readFileSync } from "node:fs";
import http from "node:http";
import { loadavg } from "node:os";
import { createTempDatabase, type ServiceName, startMesh, type TempDatabase } from "@stratus/runtime/testing";
import pg from "pg";
import { load, pct } from "../support/load.js";

const SERVERS = Number(process.env.BENCH_SERVERS ?? 10_000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 64);
const LIST_REQUESTS = Number(process.env.BENCH_LIST_REQUESTS ?? 3000);
const CREATE_REQUESTS = Number(process.env.BENCH_CREATE_REQUESTS ?? 2000);
const HOSTS = Number(process.env.BENCH_HOSTS ?? 200);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PARSE_EVERY = Number(process.env.BENCH_PARSE_EVERY ?? 50);
const LIST_CACHE_MS = process.env.BENCH_LIST_CACHE_MS;
const IMAGE = "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01";

const BACKEND = process.env.BENCH_BACKEND ?? "postgres";
if (BACKEND !== "postgres" && BACKEND !== "pglite") throw new Error("BENCH_BACKEND: postgres or pglite");

// Services with a database get their own PostgreSQL database when BENCH_BACKEND=postgres.
const databases: TempDatabase[] = [];
const dbEnv = async (): Promise<Record<string, string>> => {
  if (BACKEND !== "postgres") return {};
  const db = await createTempDatabase("stratus_bench_api");
  databases.push(db);
  return { DATABASE_URL: db.url };
};
const withDb: ServiceName[] = ["conductor", "scheduler", "network-adapter", "compute-agent"];
const serviceDb = Object.fromEntries(await Promise.all(withDb.map(async (n) => [n, await dbEnv()])));

const big = String(10_000_000);
const mesh = await startMesh({
  env: { LOG_LEVEL: "warn" },
  serviceEnv: {
    ...(LIST_CACHE_MS === undefined ? {} : { api: { API_LIST_CACHE_MS: LIST_CACHE_MS } }),
    scheduler: serviceDb.scheduler,
    "network-adapter": serviceDb["network-adapter"],
    conductor: {
      ...serviceDb.conductor,
      QUOTA_INSTANCES: big,
      QUOTA_CORES: big,
      QUOTA_RAM_MB: big,
      ...(process.env.BENCH_BUILD_CONCURRENCY
        ? { BUILD_CONCURRENCY: process.env.BENCH_BUILD_CONCURRENCY }
        : {}),
    },
    "compute-agent": {
      ...serviceDb["compute-agent"],
      COMPUTE_HOSTS: `bench-[1-${HOSTS}]`,
      COMPUTE_VCPUS: "128",
      COMPUTE_MEMORY_MB: "262144",
    },
  },
});
console.log(`backend ${BACKEND}, list cache ${LIST_CACHE_MS ?? "default"} ms`);
// The caller: a real token of the mesh's identity (a member of project bench), checked by the api
// like any client's (locally, with the identity's keys and revocations).
const BENCH_TOKEN = (await mesh.token({ user: "bench", project: "bench", roles: ["member"] })).token;

// The load goes over node:http keep-alive connections (one per client), each body counted as it
// arrives and kept only when it is to be read: a lighter client than fetch, whose body reading
// cost 0.8 ms per 100-server answer (three times what the api spent answering it) and 1.1 ms of
// CPU per create (more than the api spent accepting it).
const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
function request(
  method: "GET" | "POST",
  path: string,
  opts: { token?: string; body?: unknown; keep: boolean },
): Promise<{ status: number; body?: Buffer }> {
  const api = new URL(mesh.apiUrl);
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        method,
        host: api.hostname,
        port: api.port,
        path,
        headers: {
          "x-auth-token": opts.token ?? BENCH_TOKEN,
          "openstack-api-version": "compute 2.37",
          ...(payload === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => {
          if (opts.keep) chunks.push(c);
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: opts.keep ? Buffer.concat(chunks) : undefined }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

async function post(body: unknown, token = BENCH_TOKEN): Promise<{ status: number; text: string }> {
  const res = await request("POST", "/v2.1/servers", { token, body, keep: true });
  return { status: res.status, text: res.body?.toString() ?? "" };
}

const getList = (path: string, keep: boolean) => request("GET", path, { keep });

/** CPU seconds (user + system) a process has used so far, from /proc (Linux; 0 elsewhere). */
function cpuOf(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** PostgreSQL backends serving the bench's databases (their CPU is the database's share). */
async function backendPids(): Promise<number[]> {
  if (!databases.length) return [];
  const c = new pg.Client({ connectionString: databases[0]!.url });
  await c.connect();
  try {
    const names = databases.map((d) => new URL(d.url).pathname.slice(1));
    const r = await c.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE datname = ANY($1) AND pid <> pg_backend_pid()",
      [names],
    );
    return r.rows.map((x) => x.pid);
  } finally {
    await c.end();
  }
}

/** Where the CPU of a phase went, per process, in ms per request. */
async function cpuMeter() {
  const snap = async () => {
    const out: Record<string, number> = {};
    for (const [name, p] of Object.entries(mesh.services)) out[name] = cpuOf(p?.proc.pid);
    const backends = new Map((await backendPids()).map((pid) => [pid, cpuOf(pid)]));
    const c = process.cpuUsage();
    out["bench client"] = (c.user + c.system) / 1e6;
    return { out, backends };
  };
  const before = await snap();
  return async (requests: number) => {
    const after = await snap();
    // Per backend (a new one started from 0); one that closed during the phase is missed.
    let postgres = 0;
    for (const [pid, cpu] of after.backends) postgres += cpu - (before.backends.get(pid) ?? 0);
    const used: Record<string, number> = { postgres };
    for (const k of Object.keys(after.out)) used[k] = after.out[k]! - (before.out[k] ?? 0);
    const parts = Object.entries(used).map(([k, v]) => `${k} ${((v / requests) * 1000).toFixed(2)}`);
    return `CPU ms per request: ${parts.join(", ")}`;
  };
}

try {
  // Wait for the hosts to be in placement (the agent registers them at start).
  for (let i = 0; i < 600; i++) {
    const r = await post(
      { server: { name: "probe", imageRef: IMAGE, flavorRef: "1", networks: "none" } },
      "probe:probe",
    );
    if (r.status === 202) break;
    await new Promise((r) => setTimeout(r, 200));
  }

  // Fill the project: max_count requests of 500 (one build request each).
  const fillStart = performance.now();
  for (let made = 0; made < SERVERS; made += 500) {
    const n = Math.min(500, SERVERS - made);
    const r = await post({
      server: { name: "fill", imageRef: IMAGE, flavorRef: "1", networks: "none", min_count: n, max_count: n },
    });
    if (r.status !== 202) throw new Error(`fill: ${r.status} ${r.text}`);
  }
  console.log(
    `filled ${SERVERS} servers in ${((performance.now() - fillStart) / 1000).toFixed(1)} s (accepted)`,
  );

  // Let the builds finish first, so the list figures are not those of a conductor busy building.
  const settle = async () => {
    const settleStart = performance.now();
    for (;;) {
      const res = await fetch(`${mesh.apiUrl}/v2.1/servers?status=BUILD&limit=1`, {
        headers: { "x-auth-token": BENCH_TOKEN, "openstack-api-version": "compute 2.37" },
      });
      const body = (await res.json()) as { servers: unknown[] };
      if (body.servers.length === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    return (performance.now() - settleStart) / 1000;
  };
  console.log(`all ACTIVE after ${(await settle()).toFixed(1)} s more`);

  // Warm-up, not measured: the JIT compiles the hot paths (the first thousand requests of a
  // fresh process run several times slower) and the cache makes its first answers.
  await load(Math.min(2000, LIST_REQUESTS), CLIENTS, async () => {
    await getList("/v2.1/servers/detail?limit=100", false);
  });

  const listRates: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    let listErrors = 0;
    let firstPage = 0;
    const meter = await cpuMeter();
    const list = await load(LIST_REQUESTS, CLIENTS, async (i) => {
      // Every body is read whole; one in PARSE_EVERY is parsed and checked (parsing 100 servers
      // costs the client more CPU than the api spends answering from its cache).
      const res = await getList("/v2.1/servers/detail?limit=100", i % PARSE_EVERY === 0);
      if (res.status !== 200) listErrors++;
      else if (res.body) {
        const body = JSON.parse(res.body.toString()) as { servers?: unknown[] };
        firstPage = body.servers?.length ?? 0;
        if (firstPage !== Math.min(100, SERVERS)) listErrors++;
      }
    });
    listRates.push(LIST_REQUESTS / list.seconds);
    console.log(
      `GET /servers/detail?limit=100 (${SERVERS} servers, ${CLIENTS} clients), round ${round}: ${(LIST_REQUESTS / list.seconds).toFixed(0)} req/s, p50 ${pct(list.times, 50).toFixed(1)} ms, p99 ${pct(list.times, 99).toFixed(1)} ms, page ${firstPage}, errors ${listErrors}`,
    );
    console.log(`  ${await meter(LIST_REQUESTS)}; load average ${loadavg()[0]!.toFixed(1)}`);
  }

  // Each round starts with no build in progress (the previous round's builds are waited for).
  const createRates: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    if (round > 1) console.log(`  (builds of the round settled in ${(await settle()).toFixed(1)} s)`);
    let createErrors = 0;
    const meter = await cpuMeter();
    const create = await load(CREATE_REQUESTS, CLIENTS, async (i) => {
      const r = await post({ server: { name: `c-${i}`, imageRef: IMAGE, flavorRef: "1", networks: "none" } });
      if (r.status !== 202) createErrors++;
    });
    createRates.push(CREATE_REQUESTS / create.seconds);
    console.log(
      `POST /servers accepted (networks none, ${CLIENTS} clients), round ${round}: ${(CREATE_REQUESTS / create.seconds).toFixed(0)} req/s, p50 ${pct(create.times, 50).toFixed(1)} ms, p99 ${pct(create.times, 99).toFixed(1)} ms, errors ${createErrors}`,
    );
    console.log(`  ${await meter(CREATE_REQUESTS)}; load average ${loadavg()[0]!.toFixed(1)}`);
  }
  console.log(
    `median of ${ROUNDS} (${BACKEND}): list ${pct(listRates, 50).toFixed(0)} req/s, create ${pct(createRates, 50).toFixed(0)} req/s`,
  );
} finally {
  await mesh.close();
  for (const db of databases) await db.drop();
}
