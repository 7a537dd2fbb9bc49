// Two replicas of the conductor, the scheduler and the network-adapter, each at its default pool
// settings (DATABASE_POOLS), on one PostgreSQL server, with a compute agent on it too: creates
// at 32 in flight through both conductors all succeed, and the connections the services hold
// stay within the pools' sum. STRATUS_REPLICAS_CREATES sets the number of creates (default 120,
// to keep the suite's time; the full size is 300). The api is left out: it holds no database.
import { ConductorService, NetworkMode } from "@stratus/contracts/compute/v1";
import { DATABASE_POOLS, serviceClient } from "@stratus/runtime";
import {
  createTempDatabase,
  freePort,
  type Mesh,
  postgresAvailable,
  startMesh,
  startService,
  type TempDatabase,
} from "@stratus/runtime/testing";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceProcess } from "../../packages/runtime/src/testing/processes.js";
import { agentClient } from "../compute-agent/helpers.js";
import { as, type ConductorClient, until, waitAll } from "./helpers.js";

const CREATES = Number(process.env.STRATUS_REPLICAS_CREATES ?? 120);
const IN_FLIGHT = 32;

let mesh: Mesh | undefined;
const databases: Record<string, TempDatabase> = {};
const extra: ServiceProcess[] = [];
let conductors: ConductorClient[] = [];
// Replicas share one PostgreSQL: on a machine without a server the test is skipped, saying so;
// never in CI, where postgresAvailable() throws instead (STRATUS_REQUIRE_POSTGRES=1).
let skipped = false;

beforeAll(async () => {
  if (!(await postgresAvailable())) {
    console.warn("SKIPPED: no PostgreSQL server answers at the test URL (set STRATUS_TEST_POSTGRES_URL)");
    skipped = true;
    return;
  }
  for (const s of ["conductor", "scheduler", "network", "agent"])
    databases[s] = await createTempDatabase(`stratus_rep_${s}`);
  const url = (s: string) => ({ DATABASE_URL: databases[s]!.url });
  const quotas = { QUOTA_INSTANCES: "100000", QUOTA_CORES: "100000", QUOTA_RAM_MB: "100000000" };
  mesh = await startMesh({
    services: ["scheduler", "network-adapter", "conductor", "compute-agent"],
    serviceEnv: {
      scheduler: url("scheduler"),
      "network-adapter": url("network"),
      conductor: { ...url("conductor"), ...quotas },
      "compute-agent": { ...url("agent"), COMPUTE_HOSTS: "rep-[1-20]" },
    },
  });
  const m = mesh;
  // The second replicas: each conductor calls its own scheduler and network-adapter replica.
  const scheduler2 = await startService("scheduler", {
    ...m.env,
    ...url("scheduler"),
    PORT: String(await freePort()),
  });
  extra.push(scheduler2);
  const network2 = await startService("network-adapter", {
    ...m.env,
    ...url("network"),
    SCHEDULER_URL: scheduler2.url,
    PORT: String(await freePort()),
  });
  extra.push(network2);
  const conductor2 = await startService("conductor", {
    ...m.env,
    ...url("conductor"),
    ...quotas,
    SCHEDULER_URL: scheduler2.url,
    NETWORK_URL: network2.url,
    PORT: String(await freePort()),
  });
  extra.push(conductor2);
  conductors = [m.url("conductor"), conductor2.url].map((u) => serviceClient(ConductorService, u));
  await until(
    "the agent's hosts in placement",
    async () =>
      (await agentClient(m.url("compute-agent")).listHosts({})).hosts.every((h) => h.placementRegistered),
    120_000,
  );
}, 300_000);

afterAll(async () => {
  await Promise.all(extra.map((p) => p.stop()));
  await mesh?.close();
  for (const d of Object.values(databases)) await d.drop();
});

/** Connections the services hold on the server, by database. */
async function connections(): Promise<number> {
  const c = new pg.Client({ connectionString: databases.conductor!.url });
  await c.connect();
  try {
    const names = Object.values(databases).map((d) => new URL(d.url).pathname.slice(1));
    const [row] = (
      await c.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ANY($1)",
        [names],
      )
    ).rows;
    return row!.n - 1;
  } finally {
    await c.end();
  }
}

describe("two replicas at default pool settings on one PostgreSQL", () => {
  it(`${CREATES} creates at ${IN_FLIGHT} in flight: every one accepted and ACTIVE`, async (ctx) => {
    if (skipped) ctx.skip();
    const errors: string[] = [];
    const ids: string[] = [];
    let peak = 0;
    const sampling = setInterval(() => {
      void connections().then((n) => {
        peak = Math.max(peak, n);
      });
    }, 200);
    let next = 0;
    try {
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async (_, worker) => {
          while (next < CREATES) {
            const i = next++;
            try {
              const res = await as(`rep-${worker % 8}`, () =>
                conductors[i % 2]!.createServers({
                  name: `vm-${i}`,
                  flavorId: "1",
                  imageRef: "cirros",
                  networkMode: NetworkMode.NONE,
                }),
              );
              ids.push(res.servers[0]!.id);
            } catch (err) {
              errors.push(String(err));
            }
          }
        }),
      );
      const servers = await waitAll(conductors[0]!, ids, 240_000);
      expect(errors).toEqual([]);
      expect(servers.filter((s) => s.status !== "ACTIVE").map((s) => `${s.id}: ${s.status}`)).toEqual([]);
    } finally {
      clearInterval(sampling);
    }
    // Within what the pools allow (2 x each service's main and generic pools, one agent's).
    const budget =
      2 *
        (DATABASE_POOLS.conductor.pool +
          DATABASE_POOLS.conductor.generic +
          DATABASE_POOLS.scheduler.pool +
          DATABASE_POOLS.scheduler.generic +
          DATABASE_POOLS["network-adapter"].pool +
          DATABASE_POOLS["network-adapter"].generic) +
      DATABASE_POOLS["compute-agent"].pool;
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(budget);
  }, 400_000);
});
