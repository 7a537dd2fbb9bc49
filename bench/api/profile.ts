// Diagnosis for the list path (not the benchmark): conductor + api only, the conductor on a
// throwaway PostgreSQL database seeded by SQL with N ACTIVE servers in
// one project, then GET /servers/detail?limit=100 with 64 clients. With --cpu-prof, both
// processes write a V8 CPU profile of the measured phase to /tmp/stratus-apiprof/<service>
// (`node bench/support/profile-summary.mjs /tmp/stratus-apiprof` reads them).
//   node --import tsx bench/api/profile.ts [servers=10000] [requests=3000] [--cpu-prof]
//   [--explain]  (EXPLAIN ANALYZE of the conductor's list query, first and a later page)
import { readFileSync } from "node:fs";
import { createTempDatabase, startMesh } from "@stratus/runtime/testing";
import pg from "pg";
import { profileEnv, startProfiles } from "../support/profile-window.js";

const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const SERVERS = Number(args[0] ?? 10_000);
const REQUESTS = Number(args[1] ?? 3000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 64);
const profile = process.argv.includes("--cpu-prof");

const tmp = await createTempDatabase("stratus_apiprof");
const profDir = profile ? "/tmp/stratus-apiprof" : undefined;
const profEnv = (name: string) => profileEnv(profDir, name);
const mesh = await startMesh({
  services: ["conductor", "api"],
  env: { LOG_LEVEL: "warn" },
  serviceEnv: {
    conductor: { DATABASE_URL: tmp.url, ...profEnv("conductor") },
    api: profEnv("api"),
  },
});

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
const cpuOf = (pid: number | undefined): number => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
};

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};

const SEED = `
  WITH br AS (
    INSERT INTO build_requests (id, reservation_id, project_id, user_id, request)
    VALUES (gen_random_uuid(), 'r-seed', $2, $3, '{}') RETURNING id)
  INSERT INTO servers (id, build_request_id, name, project_id, user_id, flavor_id, flavor, image_ref,
    vm_state, task_state, power_state, host, node, reservation_id, launch_index, hostname, created_at,
    launched_at)
  SELECT gen_random_uuid(), br.id, 'fill-' || i, $2, $3, '1',
    (SELECT jsonb_build_object('id', id, 'name', name, 'vcpus', vcpus, 'ramMb', ram_mb, 'diskGb', disk_gb,
       'ephemeralGb', ephemeral_gb, 'swapMb', swap_mb, 'rxtxFactor', rxtx_factor, 'isPublic', is_public,
       'extraSpecs', extra_specs) FROM flavors WHERE id = '1'),
    'a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01', 'active', '', 1, 'bench-' || (i % 200), 'bench-' || (i % 200),
    'r-seed', i, 'fill-' || i, now() - (i || ' ms')::interval, now()
  FROM br, generate_series(1, $1::int) AS i`;

// The caller: a real token of the mesh's identity (a member of project bench); the seeded servers are its.
const bench = await mesh.token({ user: "bench", project: "bench", roles: ["member"] });

try {
  {
    const c = new pg.Client({ connectionString: tmp.url });
    await c.connect();
    await c.query(SEED, [SERVERS, bench.projectId, bench.userId]);
    await c.query("ANALYZE");
    if (process.argv.includes("--explain")) {
      const SELECT = `SELECT s.*, f.code AS fault_code, f.message AS fault_message, f.details AS fault_details,
         f.created_at AS fault_created_at FROM servers s LEFT JOIN LATERAL (
         SELECT code, message, details, created_at FROM instance_faults WHERE server_id = s.id
         ORDER BY id DESC LIMIT 1) f ON true`;
      const first = await c.query(
        `EXPLAIN ANALYZE ${SELECT} WHERE s.project_id = '${bench.projectId}' AND NOT s.deleted ORDER BY s.created_at DESC, s.id DESC LIMIT 100`,
      );
      console.log(first.rows.map((r) => r["QUERY PLAN"]).join("\n"));
    }
    await c.end();
  }
  console.log(`seeded ${SERVERS} servers`);
  const headers = { "x-auth-token": bench.token, "openstack-api-version": "compute 2.37" };
  // Warm up.
  for (let i = 0; i < 50; i++)
    await (await fetch(`${mesh.apiUrl}/v2.1/servers/detail?limit=100`, { headers })).text();
  const stopProfiles = startProfiles(
    profDir,
    Object.entries(mesh.services).map(([name, p]) => ({ name, pid: p?.proc.pid })),
  );
  // Where the CPU goes: each process, the PostgreSQL backends of this database, this client.
  const pg2 = new pg.Client({ connectionString: tmp.url });
  await pg2.connect();
  const backends = async () =>
    (
      await pg2.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
      )
    ).rows.map((r) => r.pid);
  const pids = await backends();
  const cpuBefore = {
    api: cpuOf(mesh.services.api?.proc.pid),
    conductor: cpuOf(mesh.services.conductor?.proc.pid),
    postgres: pids.reduce((a, p) => a + cpuOf(p), 0),
    client: process.cpuUsage(),
  };
  const times: number[] = [];
  let next = 0;
  let bytes = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      for (let i = next++; i < REQUESTS; i = next++) {
        const t = performance.now();
        const res = await fetch(`${mesh.apiUrl}/v2.1/servers/detail?limit=100`, { headers });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`${res.status} ${text}`);
        bytes = text.length;
        times.push(performance.now() - t);
      }
    }),
  );
  const s = (performance.now() - started) / 1000;
  const client = process.cpuUsage(cpuBefore.client);
  const used = {
    api: cpuOf(mesh.services.api?.proc.pid) - cpuBefore.api,
    conductor: cpuOf(mesh.services.conductor?.proc.pid) - cpuBefore.conductor,
    postgres: (await backends()).reduce((a, p) => a + cpuOf(p), 0) - cpuBefore.postgres,
    client: (client.user + client.system) / 1e6,
  };
  await pg2.end();
  const per = (x: number) => ((x / REQUESTS) * 1000).toFixed(2);
  const total = used.api + used.conductor + used.postgres + used.client;
  console.log(
    `CPU ms per request: api ${per(used.api)}, conductor ${per(used.conductor)}, postgres ${per(used.postgres)}, client ${per(used.client)}; total ${per(total)} (2 cores idle: at most ${(2 / (total / REQUESTS)).toFixed(0)} req/s)`,
  );
  await stopProfiles();
  console.log(
    `list: ${(REQUESTS / s).toFixed(0)} req/s, p50 ${pct(times, 50).toFixed(1)} ms, p99 ${pct(times, 99).toFixed(1)} ms, ${bytes} bytes/answer`,
  );
} finally {
  await mesh.close();
  await tmp.drop();
}
