// Crashes on the one-machine cluster (issue 24): two replicas of the identity and of each
// control-plane service on one PostgreSQL, a 3-node NATS cluster, agent processes of several hosts
// each. Keyed creates go through both api replicas; once a fifth are accepted, one replica of every
// replicated service (identity, scheduler, network-adapter, conductor, api) and one NATS node are
// killed with SIGKILL and started again a few seconds later. A client whose api is gone or answers
// 503 sends the same create to the other replica with the same Idempotency-Key, as behind a load
// balancer.
// Afterwards every key has exactly one server, every accepted build ended ACTIVE or ERROR, and the
// audit (the three owners compared) finds nothing: no orphan port, claim or address, no duplicate
// address, usage equal to what is held.
// Size: STRATUS_DRILL_BUILDS (default 200; the full size 1000), STRATUS_DRILL_AGENTS (4) ×
// STRATUS_DRILL_HOSTS (5) hosts, STRATUS_DRILL_IN_FLIGHT (16).
import { ConductorService } from "@stratus/contracts/compute/v1";
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import { type Cluster, keepOutputs, type ReplicatedService, startCluster } from "@stratus/runtime/testing";
import { afterAll, expect, it } from "vitest";
import { asAdmin, caller, rest, useMesh } from "../api/helpers.js";
import { until } from "../conductor/helpers.js";

const BUILDS = Number(process.env.STRATUS_DRILL_BUILDS ?? 200);
const AGENTS = Number(process.env.STRATUS_DRILL_AGENTS ?? 4);
const HOSTS = Number(process.env.STRATUS_DRILL_HOSTS ?? 5);
const IN_FLIGHT = Number(process.env.STRATUS_DRILL_IN_FLIGHT ?? 16);
const IMAGE = "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01";
const TOKEN = "drill:p-drill";
const KILLED: (ReplicatedService | "identity")[] = [
  "identity",
  "scheduler",
  "network-adapter",
  "conductor",
  "api",
];

let cluster: Cluster | undefined;
afterAll(async () => {
  // STRATUS_TEST_LOG_DIR=<dir> keeps each process's output.
  if (cluster)
    keepOutputs(process.env.STRATUS_TEST_LOG_DIR, [
      ...Object.entries(cluster.replicas).flatMap(([name, list]) =>
        list.map((p, i) => [`${name}-${i}`, p.output] as const),
      ),
      ...cluster.agents.map((p, i) => [`compute-agent-${i + 1}`, p.output] as const),
      ...cluster.identities.map((p, i) => [`identity-${i}`, p.output] as const),
    ]);
  await cluster?.close();
});

it(`kill -9 one replica of each service and one NATS node during ${BUILDS} builds: one server per key, every build ends, the audit finds nothing`, async () => {
  const many = "100000";
  cluster = await startCluster({
    replicas: 2,
    agents: AGENTS,
    hostsPerAgent: HOSTS,
    natsNodes: 3,
    serviceEnv: {
      conductor: {
        QUOTA_INSTANCES: many,
        QUOTA_CORES: many,
        QUOTA_RAM_MB: "100000000",
        BUILD_SWEEP_MS: "500",
        // A dead replica's leases run out soon, so that the other one resumes its builds quickly.
        BUILD_LEASE_MS: "3000",
        AUDIT_GRACE_S: "0",
      },
      "network-adapter": { QUOTA_PORT: "-1" },
      "compute-agent": { SPAWN_DELAY_MS: "100" },
    },
  });
  const c = cluster;
  useMesh({ identity: c.identity, token: (spec) => c.identity.token(spec) });
  const project = (await caller(TOKEN)).projectId;
  // The test calls the replicas it does not kill (index 1) for its own checks.
  const net = serviceClient(NetworkService, c.replicas["network-adapter"][1]!.url);
  const conductor = serviceClient(ConductorService, c.replicas.conductor[1]!.url);
  const network = await asAdmin(async () => {
    const { network } = await net.createNetwork({
      name: "drill",
      projectId: "admin",
      shared: true,
      segments: [
        { name: "rack1", networkType: "vlan", physicalNetwork: "physnet-rack1", segmentationId: 501 },
        { name: "rack2", networkType: "vlan", physicalNetwork: "physnet-rack2", segmentationId: 502 },
      ],
    });
    for (const [i, seg] of network!.segments.entries()) {
      await net.createSubnet({ networkId: network!.id, segmentId: seg.id, cidr: `10.7${i}.0.0/20` });
    }
    return network!;
  });
  await until(
    "every host in its segment",
    async () => (await net.listHostSegments({})).mappings.length >= AGENTS * HOSTS,
    180_000,
    500,
  );

  const create = (api: number, key: string) =>
    rest(c.apiUrl(api), "POST", "/v2.1/servers", {
      token: TOKEN,
      version: "2.37",
      headers: { "idempotency-key": key },
      body: { server: { name: key, imageRef: IMAGE, flavorRef: "1", networks: [{ uuid: network.id }] } },
    }).catch((err: unknown) => ({ status: 0, body: String(err), headers: new Headers() }));
  /** Each key's accepted server (every 202 of a key must name the same one). */
  const accepted = new Map<string, string>();
  const statuses = new Map<number, number>();
  let next = 0;
  const client = async (n: number) => {
    while (next < BUILDS) {
      const key = `drill-${next++}`;
      for (let attempt = 0; ; attempt++) {
        // Alternate replicas per key and per attempt: a dead replica's clients go to the other.
        const r = await create((n + attempt) % 2, key);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 202) {
          const id = r.body.server.id as string;
          expect(accepted.get(key) ?? id, key).toBe(id);
          accepted.set(key, id);
          break;
        }
        // Refused connections (0) and 503s while a replica or a peer is down: the same key again.
        expect([0, 503], `${key}: ${r.status} ${JSON.stringify(r.body)}`).toContain(r.status);
        expect(attempt, key).toBeLessThan(300);
        await new Promise((res) => setTimeout(res, 100));
      }
    }
  };
  const burst = Promise.all(Array.from({ length: IN_FLIGHT }, (_, n) => client(n)));
  await until("a fifth accepted", async () => accepted.size >= BUILDS / 5, 300_000, 20);
  await Promise.all([...KILLED.map((name) => c.kill(name, 0)), c.nats.killNode(2)]);
  const killedAt = accepted.size;
  await new Promise((res) => setTimeout(res, 3000));
  await c.nats.startNode(2);
  for (const name of KILLED) await c.restart(name, 0);
  await burst;
  // The kill landed mid-burst.
  expect(killedAt).toBeLessThan(BUILDS);
  expect(accepted.size).toBe(BUILDS);

  // One server per key, the one its 202s named.
  const listed = async () =>
    (await asAdmin(() => conductor.listServers({ projectId: project, allProjects: true, limit: 100_000 })))
      .servers;
  const byName = new Map<string, string[]>();
  for (const s of await listed()) byName.set(s.name, [...(byName.get(s.name) ?? []), s.id]);
  for (const [key, id] of accepted) expect(byName.get(key), key).toEqual([id]);
  expect(byName.size).toBe(BUILDS);

  // Every accepted build ends.
  const settled = await until(
    "every build ACTIVE or ERROR",
    async () => {
      const servers = await listed();
      return servers.every((s) => s.status === "ACTIVE" || s.status === "ERROR") ? servers : undefined;
    },
    600_000,
    2000,
  );
  const active = settled.filter((s) => s.status === "ACTIVE").length;
  console.log(
    JSON.stringify({
      builds: BUILDS,
      acceptedBeforeKill: killedAt,
      active,
      error: BUILDS - active,
      answers: Object.fromEntries(statuses),
    }),
  );
  expect(active).toBeGreaterThan(0);

  // The oracle: the three owners agree.
  const { findings } = await asAdmin(() => conductor.auditMesh({}));
  expect(findings.map((f) => `${f.kind} ${f.subject}: ${f.detail}`)).toEqual([]);
  // An ERROR server holds no port, an ACTIVE one exactly its one.
  const ports = (await asAdmin(() => net.listPorts({ networkId: network.id }))).ports;
  const held = new Map<string, number>();
  for (const p of ports) held.set(p.deviceId, (held.get(p.deviceId) ?? 0) + 1);
  for (const s of settled)
    expect(held.get(s.id) ?? 0, `${s.id} ${s.status}`).toBe(s.status === "ACTIVE" ? 1 : 0);
}, 1_200_000);
