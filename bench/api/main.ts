// API benchmark: GET /servers/detail?limit=100 with BENCH_SERVERS servers in the project, and
// POST /servers (networks: none) until accepted (202), each with BENCH_CLIENTS concurrent clients
// over keep-alive HTTP/1.1 (Node fetch), against the whole mesh as processes (real NATS).
//   npm run bench -- api
// Env: BENCH_SERVERS (default 10000), BENCH_CLIENTS (64), BENCH_LIST_REQUESTS (3000),
//      BENCH_CREATE_REQUESTS (2000), BENCH_HOSTS (200),
//      BENCH_BACKEND (postgres: a throwaway PostgreSQL database per service via createTempDatabase;
//      pglite: the embedded default of the services).
import { createTempDatabase, type ServiceName, startMesh, type TempDatabase } from "@stratus/runtime/testing";

const SERVERS = Number(process.env.BENCH_SERVERS ?? 10_000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 64);
const LIST_REQUESTS = Number(process.env.BENCH_LIST_REQUESTS ?? 3000);
const CREATE_REQUESTS = Number(process.env.BENCH_CREATE_REQUESTS ?? 2000);
const HOSTS = Number(process.env.BENCH_HOSTS ?? 200);
const IMAGE = "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01";

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};

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
    scheduler: serviceDb.scheduler,
    "network-adapter": serviceDb["network-adapter"],
    conductor: { ...serviceDb.conductor, QUOTA_INSTANCES: big, QUOTA_CORES: big, QUOTA_RAM_MB: big },
    "compute-agent": {
      ...serviceDb["compute-agent"],
      COMPUTE_HOSTS: `bench-[1-${HOSTS}]`,
      COMPUTE_VCPUS: "128",
      COMPUTE_MEMORY_MB: "262144",
    },
  },
});
console.log(`backend ${BACKEND}`);

async function post(body: unknown, token = "bench:bench") {
  const res = await fetch(`${mesh.apiUrl}/v2.1/servers`, {
    method: "POST",
    headers: {
      "x-auth-token": token,
      "openstack-api-version": "compute 2.37",
      "content-type": "application/json",
    },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text };
}

/** Runs `total` calls of fn with `clients` in flight; returns per-call ms and the elapsed seconds. */
async function load(total: number, clients: number, fn: (i: number) => Promise<void>) {
  const times: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let i = next++; i < total; i = next++) {
        const t = performance.now();
        await fn(i);
        times.push(performance.now() - t);
      }
    }),
  );
  return { times, seconds: (performance.now() - started) / 1000 };
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
  const settleStart = performance.now();
  for (;;) {
    const res = await fetch(`${mesh.apiUrl}/v2.1/servers?status=BUILD&limit=1`, {
      headers: { "x-auth-token": "bench:bench", "openstack-api-version": "compute 2.37" },
    });
    const body = (await res.json()) as { servers: unknown[] };
    if (body.servers.length === 0) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  console.log(`all ACTIVE after ${((performance.now() - settleStart) / 1000).toFixed(1)} s more`);

  let listErrors = 0;
  let firstPage = 0;
  const list = await load(LIST_REQUESTS, CLIENTS, async () => {
    const res = await fetch(`${mesh.apiUrl}/v2.1/servers/detail?limit=100`, {
      headers: { "x-auth-token": "bench:bench", "openstack-api-version": "compute 2.37" },
    });
    const body = (await res.json()) as { servers?: unknown[] };
    if (res.status !== 200) listErrors++;
    else firstPage = body.servers?.length ?? 0;
  });
  console.log(
    `GET /servers/detail?limit=100 (${SERVERS} servers, ${CLIENTS} clients): ${(LIST_REQUESTS / list.seconds).toFixed(0)} req/s, p50 ${pct(list.times, 50).toFixed(1)} ms, p99 ${pct(list.times, 99).toFixed(1)} ms, page ${firstPage}, errors ${listErrors}`,
  );

  let createErrors = 0;
  const create = await load(CREATE_REQUESTS, CLIENTS, async (i) => {
    const r = await post({ server: { name: `c-${i}`, imageRef: IMAGE, flavorRef: "1", networks: "none" } });
    if (r.status !== 202) createErrors++;
  });
  console.log(
    `POST /servers accepted (networks none, ${CLIENTS} clients): ${(CREATE_REQUESTS / create.seconds).toFixed(0)} req/s, p50 ${pct(create.times, 50).toFixed(1)} ms, p99 ${pct(create.times, 99).toFixed(1)} ms, errors ${createErrors}`,
  );
} finally {
  await mesh.close();
  for (const db of databases) await db.drop();
}
