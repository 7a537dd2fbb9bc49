// The conductor SIGKILLed during a burst of creates (issue 23): CRASH_CREATES creates through the
// REST API on a routed network, each with an Idempotency-Key, CRASH_CLIENTS at a time; once
// CRASH_KILL_AT of them were accepted the conductor is killed and started again. Then:
//   - every key answered 202 has exactly its server (and a create sent again with the key gives
//     the same server back);
//   - every key answered 503 (its client gave up) has no server; sent again with the same key it
//     gets 202 and then has exactly one server;
//   - once every build is over, the audit (AuditMesh: docs/audit.md) finds nothing.
// Prints the counts and every mismatch, exits 1 when there was any mismatch or finding.
//   npm run bench -- crash
// Env: CRASH_CREATES (400), CRASH_CLIENTS (16), CRASH_KILL_AT (0.25 of the creates accepted),
//      CRASH_PREFIX (24: each of the two segments' subnet), CRASH_BACKEND (pglite | postgres).
import { ConductorService, type Server } from "@stratus/contracts/compute/v1";
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import { createTempDatabase, startMesh, type TempDatabase } from "@stratus/runtime/testing";
import { asAdmin, caller, rest, until, useMesh } from "../../test/api/helpers.js";

const CREATES = Number(process.env.CRASH_CREATES ?? 400);
const CLIENTS = Number(process.env.CRASH_CLIENTS ?? 16);
const KILL_AT = Number(process.env.CRASH_KILL_AT ?? 0.25);
const PREFIX = Number(process.env.CRASH_PREFIX ?? 24);
const POSTGRES = process.env.CRASH_BACKEND === "postgres";
const IMAGE = "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01";
/** The caller: user crash, member of project p-crash, with a real token of the mesh's identity. */
const TOKEN = "crash:p-crash";

const dbs: TempDatabase[] = [];
const database = async (): Promise<Record<string, string>> => {
  if (!POSTGRES) return {};
  const db = await createTempDatabase("stratus_crash");
  dbs.push(db);
  return { DATABASE_URL: db.url };
};
const many = "1000000";
const mesh = await startMesh({
  env: { LOG_LEVEL: "warn" },
  serviceEnv: {
    scheduler: await database(),
    "network-adapter": await database(),
    conductor: {
      ...(await database()),
      QUOTA_INSTANCES: many,
      QUOTA_CORES: many,
      QUOTA_RAM_MB: "1000000000",
      BUILD_SWEEP_MS: "1000",
      AUDIT_GRACE_S: "0",
    },
    "compute-agent": {
      COMPUTE_HOSTS: "rack1-[1-4],rack2-[1-4]",
      COMPUTE_PHYSNETS: "rack1-*=physnet-rack1,rack2-*=physnet-rack2",
      COMPUTE_VCPUS: "1000",
      COMPUTE_MEMORY_MB: "10000000",
    },
  },
});
useMesh(mesh);
const PROJECT = (await caller(TOKEN)).projectId;
let failed = false;
try {
  const net = serviceClient(NetworkService, mesh.url("network-adapter"));
  const conductor = serviceClient(ConductorService, mesh.url("conductor"));
  const { network } = await net.createNetwork({
    name: "crash-routed",
    projectId: "admin",
    shared: true,
    segments: [
      { name: "rack1", networkType: "vlan", physicalNetwork: "physnet-rack1", segmentationId: 501 },
      { name: "rack2", networkType: "vlan", physicalNetwork: "physnet-rack2", segmentationId: 502 },
    ],
  });
  for (const [i, seg] of network!.segments.entries()) {
    await net.createSubnet({ networkId: network!.id, segmentId: seg.id, cidr: `10.5${i}.0.0/${PREFIX}` });
  }
  await until(
    "hosts in segments",
    async () => (await net.listHostSegments({})).mappings.length >= 8,
    120_000,
  );

  const create = (key: string) =>
    rest(mesh.apiUrl, "POST", "/v2.1/servers", {
      token: TOKEN,
      version: "2.37",
      headers: { "idempotency-key": key },
      body: { server: { name: key, imageRef: IMAGE, flavorRef: "1", networks: [{ uuid: network!.id }] } },
    });
  const servers = async (): Promise<Map<string, Server[]>> => {
    const { servers: list } = await asAdmin(() =>
      conductor.listServers({ projectId: PROJECT, allProjects: true, limit: 100_000 }),
    );
    const byName = new Map<string, Server[]>();
    for (const s of list) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
    return byName;
  };

  // The burst: each key sent once; a 503 is recorded and its client moves on (retried below).
  const first = new Map<string, { status: number; id?: string }>();
  let next = 0;
  let accepted = 0;
  const started = performance.now();
  const burst = Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < CREATES) {
        const key = `crash-${next++}`;
        const r = await create(key);
        if (r.status === 202) accepted++;
        first.set(key, { status: r.status, id: r.body?.server?.id });
      }
    }),
  );
  await until("creates accepted before the kill", async () => accepted >= CREATES * KILL_AT, 600_000);
  await mesh.stop("conductor", "SIGKILL");
  console.log(
    `conductor killed after ${accepted} accepted, ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  await mesh.restart("conductor");
  await burst;
  console.log(`burst answered in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const mismatches: string[] = [];
  const counts: Record<string, number> = {};
  const add = (k: string) => {
    counts[k] = (counts[k] ?? 0) + 1;
  };
  const saved = await servers();
  for (const [key, a] of first) {
    const have = saved.get(key) ?? [];
    if (a.status === 202) {
      if (have.length === 1 && have[0]!.id === a.id) add("202 and its server exists");
      else mismatches.push(`${key}: 202 ${a.id}, saved ${have.map((s) => s.id).join(",") || "none"}`);
    } else if (a.status === 503) {
      if (have.length === 0) add("503 and no server");
      else mismatches.push(`${key}: 503, saved ${have.map((s) => s.id).join(",")}`);
    } else {
      add(`other status ${a.status}`);
      mismatches.push(`${key}: ${a.status}`);
    }
  }
  // Every key sent again with the same Idempotency-Key: a 202 key gives the same server back, a
  // 503 key gets its one server now.
  let k = 0;
  const keys = [...first.keys()];
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (k < keys.length) {
        const key = keys[k++]!;
        const before = first.get(key)!;
        const r = await create(key);
        if (r.status !== 202) {
          mismatches.push(`${key}: sent again, ${r.status}`);
          continue;
        }
        if (before.status === 202) {
          if (r.body.server.id === before.id) add("202, sent again: the same server");
          else mismatches.push(`${key}: sent again, another server ${r.body.server.id} (first ${before.id})`);
        } else {
          add("503, sent again: 202");
        }
      }
    }),
  );
  const after = await servers();
  for (const key of keys) {
    const n = after.get(key)?.length ?? 0;
    if (n !== 1) mismatches.push(`${key}: ${n} servers after sending again`);
  }

  // Builds over, then the audit.
  const ids = [...after.values()].flat().map((s) => s.id);
  await until(
    "every build over",
    async () => {
      const { servers: list } = await asAdmin(() =>
        conductor.listServers({ projectId: PROJECT, allProjects: true, limit: 100_000 }),
      );
      return list.every((s) => s.status !== "BUILD" && s.taskState === "");
    },
    1_800_000,
  );
  const { servers: final } = await asAdmin(() =>
    conductor.listServers({ projectId: PROJECT, allProjects: true, limit: 100_000 }),
  );
  for (const s of final) add(`ended ${s.status}`);
  const { findings } = await conductor.auditMesh({});

  console.log(`\n${CREATES} creates, ${CLIENTS} clients, conductor killed after ${KILL_AT * 100}% accepted`);
  for (const [what, n] of Object.entries(counts).sort()) console.log(`  ${what.padEnd(40)} ${n}`);
  console.log(`  servers                                  ${ids.length}`);
  console.log(`mismatches: ${mismatches.length}`);
  for (const m of mismatches.slice(0, 20)) console.log(`  ${m}`);
  console.log(`audit findings: ${findings.length}`);
  for (const f of findings.slice(0, 20)) console.log(`  ${f.kind} ${f.subject}: ${f.detail}`);
  failed = mismatches.length > 0 || findings.length > 0;
} finally {
  await mesh.close();
  await Promise.all(dbs.map((d) => d.drop()));
}
process.exit(failed ? 1 : 0);
