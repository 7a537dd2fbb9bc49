// Two scheduler processes on one PostgreSQL database take 500 concurrent single-instance requests
// for 20 small hosts: no provider is ever over-committed (checked with SQL afterwards) and every
// refused request is a NoValidHost.
import { randomUUID } from "node:crypto";
import { PlacementService } from "@stratus/contracts/scheduler/v1/placement";
import { SchedulerService } from "@stratus/contracts/scheduler/v1/scheduler";
import { StratusError, serviceClient } from "@stratus/runtime";
import {
  createTempDatabase,
  postgresAvailable,
  type ServiceProcess,
  startNats,
  startService,
  type TempDatabase,
  type TestNats,
} from "@stratus/runtime/testing";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { big, registerHost } from "./helpers.js";

const havePostgres = await postgresAvailable();
if (!havePostgres) console.warn("concurrency.test: PostgreSQL on 127.0.0.1:5432 is not reachable; skipping");

describe.runIf(havePostgres)("two schedulers on one PostgreSQL database", () => {
  let nats: TestNats;
  let db: TempDatabase;
  const schedulers: ServiceProcess[] = [];

  beforeAll(async () => {
    nats = await startNats();
    db = await createTempDatabase("stratus_sched");
    const env = { NATS_URL: nats.url, DATABASE_URL: db.url, LOG_LEVEL: "warn" };
    // Started together: both run the migrations, serialised by the advisory lock.
    schedulers.push(...(await Promise.all([startService("scheduler", env), startService("scheduler", env)])));
  });
  afterAll(async () => {
    await Promise.all(schedulers.map((s) => s.stop()));
    await nats?.stop();
    await db?.drop();
  });

  it("500 concurrent requests against 20 hosts never over-commit; refusals are NoValidHost", async () => {
    const placement = serviceClient(PlacementService, schedulers[0]!.url);
    for (let i = 0; i < 20; i++) {
      await registerHost(placement, `small-${i}`, { vcpu: 4, ramMb: 4096, diskGb: 40 });
    }
    const clients = schedulers.map((s) => serviceClient(SchedulerService, s.url));
    const flavor = big({ VCPU: 1, MEMORY_MB: 1024, DISK_GB: 10 });
    const outcomes = await Promise.all(
      Array.from({ length: 500 }, async (_, i) => {
        try {
          const res = await clients[i % 2]!.selectDestinations(
            {
              spec: { instanceUuids: [randomUUID()], projectId: "p", userId: "u", resources: flavor },
            },
            { timeoutMs: 180_000 },
          ); // 500 in flight on 2 busy cores: latency is not what this test is about
          return { ok: true as const, host: res.destinations[0]!.selected!.host };
        } catch (err) {
          return { ok: false as const, err };
        }
      }),
    );
    const refused = outcomes.filter((o) => !o.ok);
    const placed = outcomes.filter((o) => o.ok);
    for (const r of refused) {
      expect(r.err).toBeInstanceOf(StratusError);
      expect((r.err as StratusError).kind).toBe("no_valid_host");
    }
    // 20 hosts x 4 instances each: at most 80, and the schedulers should find all of them.
    expect(placed.length).toBe(80);

    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const over = await client.query(
        `SELECT p.name, i.resource_class, i.capacity, sum(a.used) AS allocated
         FROM inventories i JOIN resource_providers p ON p.id = i.provider_id
         LEFT JOIN allocations a ON a.provider_id = i.provider_id AND a.resource_class = i.resource_class
         GROUP BY p.name, i.resource_class, i.capacity, i.used
         HAVING coalesce(sum(a.used), 0) > i.capacity OR coalesce(sum(a.used), 0) <> i.used`,
      );
      expect(over.rows).toEqual([]);
      const total = await client.query(
        "SELECT resource_class, sum(used)::int AS used FROM allocations GROUP BY resource_class ORDER BY 1",
      );
      expect(total.rows).toEqual([
        { resource_class: "DISK_GB", used: 800 },
        { resource_class: "MEMORY_MB", used: 80 * 1024 },
        { resource_class: "VCPU", used: 80 },
      ]);
      const consumers = await client.query("SELECT count(*)::int AS n FROM consumers WHERE generation > 0");
      expect(consumers.rows[0].n).toBe(placed.length);
    } finally {
      await client.end();
    }
  });
});
