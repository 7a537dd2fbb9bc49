// A rolling upgrade (issue 24): the previous version's services (test/support/version-tree.ts:
// HEAD's first parent, or STRATUS_UPGRADE_FROM) run beside this checkout's on one PostgreSQL
// database per service and one NATS. The previous version makes the schema and builds servers;
// then this version's replicas start on the same databases (applying their migrations while the
// previous ones serve: expand only), builds go through both versions' api at once, servers made
// by one version are deleted through the other, the previous version stops, and this version
// finishes whatever it left. Every server ends ACTIVE (or deleted) and the audit finds nothing.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConductorService } from "@stratus/contracts/compute/v1";
import { NetworkService } from "@stratus/contracts/network/v1";
import { serviceClient } from "@stratus/runtime";
import {
  createTempDatabase,
  freePort,
  type IdentityUnderTest,
  keepOutputs,
  meshIdentity,
  repoRoot,
  type ServiceProcess,
  startNats,
  startService,
  type TempDatabase,
  type TestNats,
} from "@stratus/runtime/testing";
import { afterAll, beforeAll, expect, it } from "vitest";
import { asAdmin, caller, rest, useMesh } from "../api/helpers.js";
import { until } from "../conductor/helpers.js";
import { previousVersion, versionTree } from "../support/version-tree.js";

const IMAGE = "a9e6c1b4-5f0d-4c36-8a57-2f4f6b1c0c01";
const TOKEN = "roll:p-roll";
const OWNED = ["scheduler", "network-adapter", "conductor"] as const;

let nats: TestNats;
let identity: IdentityUnderTest;
const databases: TempDatabase[] = [];
const processes: { label: string; p: ServiceProcess }[] = [];
const dataDir = mkdtempSync(join(tmpdir(), "stratus-upgrade-"));

type Service = (typeof OWNED)[number] | "api" | "compute-agent";
/** One version's control plane and an agent: each service on the shared databases. */
interface Side {
  name: string;
  procs: Partial<Record<Service, ServiceProcess>>;
  apiUrl: string;
  /** Starts a service of `root`'s version with this side's peers. */
  start(service: Service, env: Record<string, string>, root: string): Promise<ServiceProcess>;
}

/**
 * An agent of `root`'s version for the hypervisors named `hosts` (rack1-<hosts>-1..2 and
 * rack2-<hosts>-1..2), its state in a directory of those hypervisors: an agent upgraded in place
 * is another version on the same hosts and directory.
 */
function startAgent(side: Side, hosts: string, root: string) {
  return side.start(
    "compute-agent",
    {
      STRATUS_DATA_DIR: join(dataDir, `agent-${hosts}`),
      COMPUTE_HOSTS: `rack1-${hosts}-[1-2],rack2-${hosts}-[1-2]`,
      COMPUTE_PHYSNETS: "rack1-*=physnet-rack1,rack2-*=physnet-rack2",
      SPAWN_DELAY_MS: "50",
    },
    root,
  );
}

async function startSide(name: string, root: string, dbUrls: Record<string, string>): Promise<Side> {
  const ports = {
    scheduler: await freePort(),
    "network-adapter": await freePort(),
    conductor: await freePort(),
    api: await freePort(),
    rest: await freePort(),
    networkApi: await freePort(),
  };
  const common = {
    NATS_URL: nats.url,
    STRATUS_DATA_DIR: join(dataDir, name),
    LOG_LEVEL: "warn",
    SCHEDULER_URL: `http://127.0.0.1:${ports.scheduler}`,
    NETWORK_URL: `http://127.0.0.1:${ports["network-adapter"]}`,
    CONDUCTOR_URL: `http://127.0.0.1:${ports.conductor}`,
    IDENTITY_RPC_URL: identity.rpcUrl,
  };
  const side: Side = {
    name,
    procs: {},
    apiUrl: `http://127.0.0.1:${ports.rest}`,
    async start(service, env, version) {
      const p = await startService(service, { ...common, ...env }, version);
      processes.push({ label: `${name}-${service}-${processes.length}`, p });
      side.procs[service] = p;
      return p;
    },
  };
  const start = (service: Service, env: Record<string, string>) => side.start(service, env, root);
  await start("scheduler", { PORT: String(ports.scheduler), DATABASE_URL: dbUrls.scheduler! });
  await start("network-adapter", {
    PORT: String(ports["network-adapter"]),
    DATABASE_URL: dbUrls["network-adapter"]!,
  });
  await start("conductor", {
    PORT: String(ports.conductor),
    DATABASE_URL: dbUrls.conductor!,
    CONDUCTOR_ID: `conductor-${name}`,
    QUOTA_INSTANCES: "1000",
    QUOTA_CORES: "1000",
    QUOTA_RAM_MB: "10000000",
    BUILD_SWEEP_MS: "500",
    BUILD_LEASE_MS: "3000",
    AUDIT_GRACE_S: "0",
  });
  await startAgent(side, name, root);
  await start("api", {
    PORT: String(ports.api),
    API_PORT: String(ports.rest),
    NETWORK_API_PORT: String(ports.networkApi),
  });
  return side;
}

/** Stops a side's control plane (SIGTERM, as a rolling upgrade does), not its agent. */
async function stopControlPlane(side: Side) {
  await Promise.all((["api", ...OWNED] as const).map((service) => side.procs[service]?.stop("SIGTERM")));
}

const previous = previousVersion();
let before: Side;
const dbUrls: Record<string, string> = {};
let network: { id: string };

beforeAll(async () => {
  nats = await startNats();
  identity = await meshIdentity(nats);
  useMesh({ identity, token: (spec) => identity.token(spec) });
  for (const service of OWNED) {
    const d = await createTempDatabase(`stratus_upgrade_${service.replace("-", "_")}`);
    databases.push(d);
    dbUrls[service] = d.url;
  }
  before = await startSide("prev", versionTree(previous), dbUrls);
}, 600_000);

afterAll(async () => {
  await Promise.all(processes.map(({ p }) => p.stop("SIGKILL")));
  // STRATUS_TEST_LOG_DIR=<dir> keeps each process's output.
  keepOutputs(
    process.env.STRATUS_TEST_LOG_DIR,
    processes.map(({ label, p }) => [label, p.output]),
  );
  await nats?.stop();
  for (const d of databases) await d.drop().catch(() => undefined);
  rmSync(dataDir, { recursive: true, force: true });
});

const create = (apiUrl: string, name: string) =>
  rest(apiUrl, "POST", "/v2.1/servers", {
    token: TOKEN,
    version: "2.37",
    headers: { "idempotency-key": name },
    body: { server: { name, imageRef: IMAGE, flavorRef: "1", networks: [{ uuid: network.id }] } },
  });

it(`${previous.slice(0, 9)}'s services and this checkout's on one database: builds and deletes through both, then this version alone`, async () => {
  const project = (await caller(TOKEN)).projectId;
  const net = (side: Side) => serviceClient(NetworkService, side.procs["network-adapter"]!.url);
  const conductor = (side: Side) => serviceClient(ConductorService, side.procs.conductor!.url);
  network = await asAdmin(async () => {
    const { network } = await net(before).createNetwork({
      name: "rolling",
      projectId: "admin",
      shared: true,
      segments: [
        { name: "rack1", networkType: "vlan", physicalNetwork: "physnet-rack1", segmentationId: 601 },
        { name: "rack2", networkType: "vlan", physicalNetwork: "physnet-rack2", segmentationId: 602 },
      ],
    });
    for (const [i, seg] of network!.segments.entries()) {
      await net(before).createSubnet({ networkId: network!.id, segmentId: seg.id, cidr: `10.8${i}.0.0/24` });
    }
    return network!;
  });
  const listed = async (side: Side) =>
    (
      await asAdmin(() =>
        conductor(side).listServers({ projectId: project, allProjects: true, limit: 10_000 }),
      )
    ).servers;
  const settle = async (side: Side, what: string) => {
    let building: string[] = [];
    try {
      return await until(
        what,
        async () => {
          const servers = await listed(side);
          building = servers.filter((s) => s.status === "BUILD").map((s) => `${s.name} (${s.id})`);
          return building.length ? undefined : servers;
        },
        180_000,
        500,
      );
    } catch (err) {
      throw new Error(`${String(err)}; still building: ${building.join(", ")}`);
    }
  };
  /** A create until accepted; `fallback` is the api a client goes to when `apiUrl` is gone. */
  const accept = async (apiUrl: string, name: string, fallback = apiUrl) => {
    for (let attempt = 0; ; attempt++) {
      const r = await create(attempt ? fallback : apiUrl, name).catch((err: unknown) => {
        // Only a refused connection (the previous version stopped) sends the client elsewhere.
        if (fallback === apiUrl) throw err;
        return { status: 0, body: String(err) };
      });
      if (r.status === 0) continue;
      if (r.status === 202) return r.body.server.id as string;
      // A 503 while the previous version stops: the same key again.
      expect(r.status, `${name}: ${JSON.stringify(r.body)}`).toBe(503);
      expect(attempt, name).toBeLessThan(100);
      await new Promise((res) => setTimeout(res, 200));
    }
  };

  await until(
    "the previous version's hosts in their segments",
    async () => (await net(before).listHostSegments({})).mappings.length >= 4,
    120_000,
    200,
  );
  // 1. The previous version alone.
  const first = await Promise.all(Array.from({ length: 10 }, (_, i) => accept(before.apiUrl, `prev-${i}`)));
  expect((await settle(before, "the previous version's builds")).map((s) => s.status)).toEqual(
    Array(10).fill("ACTIVE"),
  );

  // 2. This version starts on the same databases while the previous one serves.
  const after = await startSide("next", repoRoot, dbUrls);
  await until(
    "every host in its segment",
    async () => (await net(after).listHostSegments({})).mappings.length >= 8,
    120_000,
    200,
  );
  const mixed = await Promise.all(
    Array.from({ length: 30 }, (_, i) => accept(i % 2 ? after.apiUrl : before.apiUrl, `mixed-${i}`)),
  );
  // Servers each version made, deleted through the other.
  const del = async (apiUrl: string, id: string) =>
    expect((await rest(apiUrl, "DELETE", `/v2.1/servers/${id}`, { token: TOKEN })).status).toBe(204);
  for (const id of first.slice(0, 3)) await del(after.apiUrl, id);
  await settle(after, "the builds of both versions");
  for (const id of mixed.filter((_, i) => i % 2).slice(0, 3)) await del(before.apiUrl, id);

  // 3. The previous version's control plane stops in the middle of a burst through both apis
  // (its clients go to this version's api); then its hypervisor's agent is upgraded in place:
  // this version's agent on the same hosts and state takes over their commands.
  const burst = Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      accept(i % 4 ? after.apiUrl : before.apiUrl, `late-${i}`, after.apiUrl),
    ),
  );
  await new Promise((res) => setTimeout(res, 300));
  await stopControlPlane(before);
  await before.procs["compute-agent"]!.stop("SIGTERM");
  await startAgent(after, "prev", repoRoot);
  const late = await burst;
  const last = await Promise.all(Array.from({ length: 10 }, (_, i) => accept(after.apiUrl, `next-${i}`)));

  await until(
    "every deleted server gone",
    async () => (await listed(after)).length === 10 + 30 + 20 + 10 - 6,
    120_000,
    500,
  );
  const servers = await settle(after, "every build");
  expect(servers.filter((s) => s.status !== "ACTIVE").map((s) => `${s.name} ${s.status}`)).toEqual([]);
  expect(new Set(servers.map((s) => s.id))).toEqual(
    new Set([...first.slice(3), ...mixed.filter((_, i) => !(i % 2) || i > 5), ...late, ...last]),
  );
  const { findings } = await asAdmin(() => conductor(after).auditMesh({}));
  expect(findings.map((f) => `${f.kind} ${f.subject}: ${f.detail}`)).toEqual([]);
}, 900_000);
